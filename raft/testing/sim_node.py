"""One simulated member: a RawNode, its "disk" and its replicated key-value state machine.

Theory of operation
-------------------
The *disk* of a node is a `MemoryStorage` that only ever receives what the Ready contract
says is persisted (snapshot, hard state, entries) plus the snapshots the node cuts of its
own applied state. A crash drops the `RawNode` and everything volatile (the state machine,
pending reads, a Ready half handled); the disk survives. A restart rebuilds the state
machine from the disk's snapshot and builds a fresh RawNode on the same disk with
`applied = snapshot index`, so the core hands out the committed entries after it again and
the node re-applies them, as a real member recovering from its WAL would.

The state machine is a tiny deterministic KV store. A proposal is the text
`put <key> <value>` where the value embeds a unique proposal id, so every committed write
is distinguishable and a read can be matched to exactly one write. Its snapshot encoding is
sorted `key=value` lines (explicit, no pickle); its digest also covers the membership, so
two nodes at the same applied index must agree on data and configuration.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from raft.raw_node import RawNode
from raft.storage import MemoryStorage
from raft.testing.checkers import EntryRecord, Role
from raft.types import ConfState, Entry, EntryType, SoftState, StateType

ROLE_OF_STATE = {
    StateType.FOLLOWER: Role.FOLLOWER,
    StateType.PRE_CANDIDATE: Role.PRE_CANDIDATE,
    StateType.CANDIDATE: Role.CANDIDATE,
    StateType.LEADER: Role.LEADER,
}


class CrashPoint(enum.Enum):
    """Where in the handling of its next Ready a node scheduled to crash dies."""

    AFTER_SNAPSHOT = "after-snapshot"  # snapshot persisted, hard state and entries not
    AFTER_PERSIST = "after-persist"  # everything persisted, no message sent
    AFTER_SEND = "after-send"  # messages sent, nothing applied
    AFTER_APPLY = "after-apply"  # applied, advance() never called


def encode_put(key: str, value: str) -> bytes:
    return f"put {key} {value}".encode()


def decode_put(data: bytes) -> tuple[str, str] | None:
    """The (key, value) of a put command, or None for an empty entry."""
    if not data:
        return None
    verb, key, value = data.decode().split(" ")
    if verb != "put":
        raise ValueError(f"unknown command {data!r}")
    return key, value


def entry_record(e: Entry) -> EntryRecord:
    # The payload itself is the digest: proposals are unique, and short.
    tag = b"C" if e.type is EntryType.CONF_CHANGE else b"N"
    return EntryRecord(index=e.index, term=e.term, digest=tag + e.data)


class KvStateMachine:
    """The applied state: key -> value, the applied index and the applied membership."""

    __slots__ = ("kv", "applied", "conf_state")

    def __init__(self, kv: dict[str, str], applied: int, conf_state: ConfState) -> None:
        self.kv = kv
        self.applied = applied
        self.conf_state = conf_state

    @classmethod
    def from_snapshot(cls, data: bytes, *, applied: int, conf_state: ConfState) -> KvStateMachine:
        kv: dict[str, str] = {}
        for line in data.decode().splitlines():
            key, _, value = line.partition("=")
            kv[key] = value
        return cls(kv, applied, conf_state)

    def encode(self) -> bytes:
        return "\n".join(f"{k}={v}" for k, v in sorted(self.kv.items())).encode()

    def digest(self) -> bytes:
        cs = self.conf_state
        h = hashlib.blake2b(self.encode(), digest_size=12)
        h.update(repr((cs.voters, cs.learners)).encode())
        return h.digest()

    def apply_put(self, index: int, data: bytes) -> tuple[str, str] | None:
        put = decode_put(data)
        if put is not None:
            self.kv[put[0]] = put[1]
        self.applied = index
        return put


@dataclass(slots=True)
class PendingRead:
    """A ReadIndex request in flight on one node."""

    key: str
    invoked_step: int
    commit_at_invoke: int
    read_index: int | None = None


@dataclass(slots=True)
class SimNode:
    """A member's durable disk and, while it runs, its volatile parts."""

    id: int
    disk: MemoryStorage
    raw: RawNode | None = None
    sm: KvStateMachine = field(default_factory=lambda: KvStateMachine({}, 0, ConfState()))
    incarnation: int = -1
    soft: SoftState = SoftState(0, StateType.FOLLOWER)
    term: int = 0
    commit: int = 0
    crash_point: CrashPoint | None = None
    stopped: bool = False  # kept down on purpose (removed member in the liveness phase)
    reads: dict[bytes, PendingRead] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.raw is not None

    @property
    def is_learner(self) -> bool:
        return self.id in self.sm.conf_state.learners

    @property
    def is_member(self) -> bool:
        cs = self.sm.conf_state
        return self.id in cs.voters or self.id in cs.learners

    @property
    def is_leader(self) -> bool:
        return self.raw is not None and self.soft.raft_state is StateType.LEADER
