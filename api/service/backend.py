"""The seam between the gRPC servicers and the node: what a servicer may ask of a member.

`api/grpc/*` (thin servicers) and `api/service/*` (etcd semantics above the store) call only
this protocol; `api/server/node.py` implements it. Keeping the seam narrow lets the node
change (single member now, a replicated cluster later) without touching the wire layer.

Errors: methods raise `kvstore.errors.KvError` subclasses for request errors decided by the
state machine (they carry etcd's exact message and a `grpc_code`), and `NodeError`
subclasses below for errors decided by the node (no leader, timeouts, learner limits...).
`api/errors.py` maps both to gRPC status codes through one table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from kvstore.types import (
    ApplyResult,
    HashKVResponse,
    LeaseLeasesResponse,
    LeaseTimeToLiveResponse,
    RangeRequest,
    RangeResponse,
    Request,
)
from kvstore.watch import WatchHub


class NodeError(Exception):
    """An error decided by the node rather than the state machine; str() is etcd's message."""

    grpc_code = "UNAVAILABLE"


class NoLeaderError(NodeError):
    def __init__(self) -> None:
        super().__init__("etcdserver: no leader")


class LeaderChangedError(NodeError):
    def __init__(self) -> None:
        super().__init__("etcdserver: leader changed")


class RequestTimeoutError(NodeError):
    def __init__(self) -> None:
        super().__init__("etcdserver: request timed out")


class StoppedError(NodeError):
    def __init__(self) -> None:
        super().__init__("etcdserver: server stopped")


class NotLeaderError(NodeError):
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self) -> None:
        super().__init__("etcdserver: not leader")


class BadLeaderTransfereeError(NodeError):
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self) -> None:
        super().__init__("etcdserver: bad leader transferee")


class MemberNotFoundError(NodeError):
    grpc_code = "NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("etcdserver: member not found")


class NoSpaceAlarmError(NodeError):
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self) -> None:
        super().__init__("etcdserver: mvcc: database space exceeded")


class UnsupportedError(NodeError):
    """A cluster RPC this member cannot serve yet; etcd's code for an unimplemented method."""

    grpc_code = "UNIMPLEMENTED"


@dataclass(frozen=True, slots=True)
class Header:
    cluster_id: int
    member_id: int
    revision: int
    raft_term: int


@dataclass(frozen=True, slots=True)
class MemberInfo:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool = False


@dataclass(frozen=True, slots=True)
class StatusInfo:
    version: str
    db_size: int
    db_size_in_use: int
    leader: int
    raft_index: int
    raft_term: int
    raft_applied_index: int
    errors: tuple[str, ...]
    is_learner: bool


@dataclass(frozen=True, slots=True)
class AlarmMember:
    member_id: int
    alarm: int  # etcdserverpb.AlarmType: NONE=0, NOSPACE=1, CORRUPT=2


class Backend(Protocol):
    """What one member offers to the client-facing services."""

    @property
    def cluster_id(self) -> int: ...

    @property
    def member_id(self) -> int: ...

    @property
    def hub(self) -> WatchHub:
        """The watch hub; the node calls hub.notify after each applied batch.

        The node also owns `hub.set_wakeup` and runs `hub.sync_unsynced` (it reads the
        store), and touches the hub only on the event loop thread: the Watch servicer calls
        `hub.watch`, `hub.cancel`, `watcher.take` and `hub.progress_revision` from it too.
        """

    def header(self) -> Header:
        """A header with the current store revision and raft term."""

    async def propose(self, request: Request, *, timeout_s: float | None = None) -> ApplyResult:
        """Replicate a write (Put, DeleteRange, Txn with writes, Compaction, LeaseGrant,
        LeaseRevoke) through Raft and return its apply result once applied on this member.
        A read-only Txn is also accepted (it is served as a linearizable read)."""

    async def range(self, request: RangeRequest) -> RangeResponse:
        """Linearizable (ReadIndex) unless request.serializable."""

    async def lease_keep_alive(self, lease_id: int) -> int:
        """Renew a lease on the leader; returns the new TTL, or 0 if it does not exist."""

    async def lease_time_to_live(self, lease_id: int, *, keys: bool) -> LeaseTimeToLiveResponse:
        """Remaining TTL as the leader's lessor sees it (-1 for an unknown lease)."""

    async def lease_leases(self) -> LeaseLeasesResponse: ...

    async def hash_kv(self, revision: int) -> HashKVResponse: ...

    async def hash(self) -> int: ...

    def status(self) -> StatusInfo: ...

    def members(self) -> Sequence[MemberInfo]: ...

    async def alarm(self, action: int, member_id: int, alarm: int) -> Sequence[AlarmMember]:
        """etcdserverpb.AlarmRequest.AlarmAction: GET=0, ACTIVATE=1, DEACTIVATE=2."""

    async def defragment(self) -> None: ...

    def snapshot_chunks(self, chunk_bytes: int) -> AsyncIterator[bytes]:
        """A consistent copy of the store, streamed in chunks (the caller adds the checksum)."""

    def snapshot_size_hint(self) -> int:
        """The expected size of the next snapshot_chunks stream, read before it starts.

        etcd sets `remaining_bytes` on each Snapshot message to the total minus what was
        sent; the servicer uses this hint as the total (clamped at 0), so it should be the
        store's in-use size, which the compacting copy matches closely."""

    async def move_leader(self, target_id: int) -> None: ...


class PeerURLExistsError(NodeError):
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self) -> None:
        super().__init__("etcdserver: Peer URLs already exists")


class TooManyLearnersError(NodeError):
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self) -> None:
        super().__init__("etcdserver: too many learner members in cluster")


class LearnerNotReadyError(NodeError):
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self) -> None:
        super().__init__("etcdserver: can only promote a learner member which is in sync with leader")


class NotLearnerError(NodeError):
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self) -> None:
        super().__init__("etcdserver: can only promote a learner member")


class UnhealthyClusterError(NodeError):
    grpc_code = "UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("etcdserver: unhealthy cluster")


class NotEnoughStartedMembersError(NodeError):
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self) -> None:
        super().__init__("etcdserver: re-configuration failed due to not enough started members")


class LearnerNotSupportedError(NodeError):
    def __init__(self) -> None:
        super().__init__("etcdserver: rpc not supported for learner")


class MemberRemovedError(NodeError):
    """This member was removed from the cluster (etcd stops such a member)."""

    grpc_code = "FAILED_PRECONDITION"

    def __init__(self) -> None:
        super().__init__("etcdserver: the member has been permanently removed from the cluster")


class MembershipBackend(Protocol):
    """Membership changes (the cluster issue); node implements it next to Backend."""

    def is_learner(self) -> bool: ...

    async def member_add(
        self, peer_urls: Sequence[str], *, is_learner: bool
    ) -> tuple[MemberInfo, Sequence[MemberInfo]]: ...

    async def member_remove(self, member_id: int) -> Sequence[MemberInfo]: ...

    async def member_update(self, member_id: int, peer_urls: Sequence[str]) -> Sequence[MemberInfo]: ...

    async def member_promote(self, member_id: int) -> Sequence[MemberInfo]: ...
