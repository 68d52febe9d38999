"""The records and enums of the Raft core: what goes into it, what comes out of it.

Everything here is an immutable value or an enum. Records are shared by reference between
the log, messages and Ready values (an entry is created once by the leader and never
copied), which is why they must never be mutated. `Sequence` fields hold lists or tuples
that the receiver must treat as read-only.

Most records are `@dataclass(frozen=True, slots=True)`. The ones built on every round
trip (`Entry`, `Message`, `HardState`, and `Ready` in ready.py) use `@hot_record` instead: a
slotted dataclass WITHOUT runtime freezing, declared frozen to type checkers through
`dataclass_transform(frozen_default=True)`. Why: a frozen dataclass's `__init__` sets each
field through `object.__setattr__` (to get past its own `__setattr__` guard), which made a
12-field Message cost ~2.7 us to build against ~0.9 us for a plain slotted one, and one
committed entry needs 8 messages and 6 Readies (measured with `kvbench raft`, case
`single`). Immutability is kept where it is checked: `mypy --strict` rejects any assignment
to a field of a hot record exactly as for a frozen one, and the rule "never mutate after
construction" stands. Equality and hashing are the same as a frozen dataclass's
(`unsafe_hash=True` generates the same field-based `__hash__`).

The hot paths build these records with positional arguments (commented with the field
order): a keyword call costs ~0.2 us more per record.

Enum members are also defined here as module globals (`MSG_APP is MessageType.APP`,
`STATE_LEADER`, `PR_REPLICATE`, `ENTRY_NORMAL`, `READ_SAFE`, ...), and the core uses those:
on Python 3.11 `EnumType` defines `__getattr__`, which turns every `MessageType.APP` into a
slow Python-level lookup (~250 ns against ~25 ns for a global). Code outside the core may
use either spelling.

Names follow etcd-io/raft's `raftpb` (Entry, Message, HardState, ConfState, ConfChange,
Snapshot) in Python spelling: `Message.from_` is etcd's `From`.

A `ConfChange` travels inside an `EntryType.CONF_CHANGE` entry. Its byte layout is explicit
and versioned (never pickle): version byte 1, change type byte, node id as 8 bytes
big-endian, then the opaque context.
"""

from __future__ import annotations

import enum
import random
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def hot_record(cls: type[_T]) -> type[_T]:
    """A value record built on hot paths: see the module docstring (frozen for mypy, a plain
    slotted dataclass at runtime; never mutate one after construction)."""
    return dataclass(slots=True, unsafe_hash=True)(cls)

NONE = 0
"""The node id meaning "no node" (no leader, no vote). Real node ids are >= 1."""

# Kinds of campaign. CAMPAIGN_TRANSFER also travels as the context of a MsgVote sent on a
# leader's MsgTimeoutNow: it tells voters to bypass their leader lease (check_quorum).
CAMPAIGN_PRE_ELECTION = b"CampaignPreElection"
CAMPAIGN_ELECTION = b"CampaignElection"
CAMPAIGN_TRANSFER = b"CampaignTransfer"


class EntryType(enum.Enum):
    NORMAL = "EntryNormal"
    CONF_CHANGE = "EntryConfChange"


class MessageType(enum.Enum):
    """Raft message types; the value is etcd's name, used by describe.py.

    Local messages (HUP, BEAT, UNREACHABLE, SNAP_STATUS, CHECK_QUORUM) never cross the network;
    `RawNode.step` refuses them.
    """

    HUP = "MsgHup"
    BEAT = "MsgBeat"
    PROP = "MsgProp"
    APP = "MsgApp"
    APP_RESP = "MsgAppResp"
    VOTE = "MsgVote"
    VOTE_RESP = "MsgVoteResp"
    SNAP = "MsgSnap"
    HEARTBEAT = "MsgHeartbeat"
    HEARTBEAT_RESP = "MsgHeartbeatResp"
    UNREACHABLE = "MsgUnreachable"
    SNAP_STATUS = "MsgSnapStatus"
    CHECK_QUORUM = "MsgCheckQuorum"
    TRANSFER_LEADER = "MsgTransferLeader"
    TIMEOUT_NOW = "MsgTimeoutNow"
    READ_INDEX = "MsgReadIndex"
    READ_INDEX_RESP = "MsgReadIndexResp"
    PRE_VOTE = "MsgPreVote"
    PRE_VOTE_RESP = "MsgPreVoteResp"

    # Members are singletons compared by identity: the C-level object hash is consistent
    # with that and much cheaper than Enum's (set lookups on every step()).
    __hash__ = object.__hash__


LOCAL_MESSAGE_TYPES = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
        MessageType.CHECK_QUORUM,
    }
)
RESPONSE_MESSAGE_TYPES = frozenset(
    {
        MessageType.APP_RESP,
        MessageType.VOTE_RESP,
        MessageType.HEARTBEAT_RESP,
        MessageType.UNREACHABLE,
        MessageType.READ_INDEX_RESP,
        MessageType.PRE_VOTE_RESP,
    }
)


class StateType(enum.Enum):
    FOLLOWER = "StateFollower"
    CANDIDATE = "StateCandidate"
    LEADER = "StateLeader"
    PRE_CANDIDATE = "StatePreCandidate"


class ProgressState(enum.Enum):
    """How the leader replicates to one follower (etcd tracker.StateType)."""

    PROBE = "StateProbe"
    REPLICATE = "StateReplicate"
    SNAPSHOT = "StateSnapshot"


class ReadOnlyOption(enum.Enum):
    """SAFE confirms leadership with a heartbeat round per ReadIndex; LEASE_BASED trusts the
    leader lease (check_quorum) and therefore bounded clock drift. SAFE is the default."""

    SAFE = "Safe"
    LEASE_BASED = "LeaseBased"


class ConfChangeType(enum.Enum):
    ADD_NODE = 0
    REMOVE_NODE = 1
    ADD_LEARNER_NODE = 3



# Enum members as plain module globals, for the hot paths: on Python 3.11 `EnumType` defines
# `__getattr__`, so `MessageType.APP` is a slow Python-level lookup (~250 ns) where a global
# is ~25 ns. Same objects: `MSG_APP is MessageType.APP`.
MSG_HUP = MessageType.HUP
MSG_BEAT = MessageType.BEAT
MSG_PROP = MessageType.PROP
MSG_APP = MessageType.APP
MSG_APP_RESP = MessageType.APP_RESP
MSG_VOTE = MessageType.VOTE
MSG_VOTE_RESP = MessageType.VOTE_RESP
MSG_SNAP = MessageType.SNAP
MSG_HEARTBEAT = MessageType.HEARTBEAT
MSG_HEARTBEAT_RESP = MessageType.HEARTBEAT_RESP
MSG_UNREACHABLE = MessageType.UNREACHABLE
MSG_SNAP_STATUS = MessageType.SNAP_STATUS
MSG_CHECK_QUORUM = MessageType.CHECK_QUORUM
MSG_TRANSFER_LEADER = MessageType.TRANSFER_LEADER
MSG_TIMEOUT_NOW = MessageType.TIMEOUT_NOW
MSG_READ_INDEX = MessageType.READ_INDEX
MSG_READ_INDEX_RESP = MessageType.READ_INDEX_RESP
MSG_PRE_VOTE = MessageType.PRE_VOTE
MSG_PRE_VOTE_RESP = MessageType.PRE_VOTE_RESP
STATE_FOLLOWER = StateType.FOLLOWER
STATE_CANDIDATE = StateType.CANDIDATE
STATE_LEADER = StateType.LEADER
STATE_PRE_CANDIDATE = StateType.PRE_CANDIDATE
PR_PROBE = ProgressState.PROBE
PR_REPLICATE = ProgressState.REPLICATE
PR_SNAPSHOT = ProgressState.SNAPSHOT
ENTRY_NORMAL = EntryType.NORMAL
ENTRY_CONF_CHANGE = EntryType.CONF_CHANGE
READ_SAFE = ReadOnlyOption.SAFE
READ_LEASE_BASED = ReadOnlyOption.LEASE_BASED


@hot_record
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class ConfState:
    """Cluster membership: sorted voter and learner ids (disjoint)."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    index: int = 0
    term: int = 0
    conf_state: ConfState = ConfState()


@dataclass(frozen=True, slots=True)
class Snapshot:
    metadata: SnapshotMetadata = SnapshotMetadata()
    data: bytes = b""

    @property
    def is_empty(self) -> bool:
        return self.metadata.index == 0


EMPTY_SNAPSHOT = Snapshot()


@hot_record
class Message:
    type: MessageType
    to: int = NONE
    from_: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: Sequence[Entry] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


@hot_record
class HardState:
    """What must be durable before messages go out: current term, vote in it, commit index."""

    term: int = 0
    vote: int = NONE
    commit: int = 0

    @property
    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == NONE and self.commit == 0


EMPTY_HARD_STATE = HardState()


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state, useful for logging and routing: who leads, and our role."""

    lead: int
    raft_state: StateType


@dataclass(frozen=True, slots=True)
class ReadState:
    """A ReadIndex answer: once the applied index reaches `index`, a read issued with
    `request_ctx` is linearizable."""

    index: int
    request_ctx: bytes


_CC_HEADER = struct.Struct(">BBQ")
_CC_VERSION = 1


@dataclass(frozen=True, slots=True)
class ConfChange:
    type: ConfChangeType
    node_id: int
    context: bytes = b""

    def marshal(self) -> bytes:
        return _CC_HEADER.pack(_CC_VERSION, self.type.value, self.node_id) + self.context

    @classmethod
    def unmarshal(cls, data: bytes) -> ConfChange:
        """Decode; raises ValueError on a malformed or unknown-version payload."""
        if len(data) < _CC_HEADER.size:
            raise ValueError("conf change payload too short")
        version, kind, node_id = _CC_HEADER.unpack_from(data)
        if version != _CC_VERSION:
            raise ValueError(f"unknown conf change version {version}")
        return cls(ConfChangeType(kind), node_id, bytes(data[_CC_HEADER.size :]))


@dataclass(frozen=True, slots=True)
class Config:
    """Configuration of one Raft node. `rng` is required: it is the only source of randomness
    (the randomized election timeout), so the same seed and inputs give the same outputs."""

    id: int
    rng: random.Random
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    pre_vote: bool = False
    check_quorum: bool = False
    max_size_per_msg_bytes: int = 1024 * 1024
    max_inflight_msgs: int = 256
    # 0 means no limit on the payload bytes of proposals appended but not yet committed.
    max_uncommitted_entries_size: int = 0
    # 0 means no limit on the bytes of committed entries handed out in one Ready.
    max_committed_size_per_ready_bytes: int = 0
    read_only_option: ReadOnlyOption = ReadOnlyOption.SAFE
    applied: int = 0
    disable_proposal_forwarding: bool = False
    step_down_on_removal: bool = False

    def validate(self) -> None:
        """Raise ValueError for an unusable configuration (caller misuse)."""
        if self.id == NONE:
            raise ValueError("cannot use none as id")
        if self.heartbeat_ticks <= 0:
            raise ValueError("heartbeat tick must be greater than 0")
        if self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("election tick must be greater than heartbeat tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max inflight messages must be greater than 0")
        if self.read_only_option is ReadOnlyOption.LEASE_BASED and not self.check_quorum:
            raise ValueError("check_quorum must be enabled when read_only_option is LEASE_BASED")


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    """A copy of the leader's view of one peer, for `RawNode.status()`."""

    match: int
    next: int
    state: ProgressState
    pending_snapshot: int
    recent_active: bool
    is_learner: bool
    paused: bool
    inflight: int


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    # Empty unless this node is the leader.
    progress: Mapping[int, ProgressStatus] = field(default_factory=dict)
    lead_transferee: int = NONE
    conf_state: ConfState = ConfState()


_DATA = attrgetter("data")


def payload_size(entries: Sequence[Entry]) -> int:
    """Bytes of proposal data, as counted against `max_uncommitted_entries_size`."""
    return sum(map(len, map(_DATA, entries)))  # in C: runs on every advance()


ENTRY_OVERHEAD_BYTES = 16
"""Fixed per-entry cost counted against message and Ready size limits (an approximation of
the protobuf framing of term, index and type), so that even empty entries are bounded."""


def entry_size(e: Entry) -> int:
    return len(e.data) + ENTRY_OVERHEAD_BYTES
