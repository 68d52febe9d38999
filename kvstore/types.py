"""Records exchanged with kvstore: etcd's KV, Lease and MVCC messages as frozen dataclasses.

Field names follow etcd's protobuf messages (`etcdserverpb`, `mvccpb`) so the gRPC layer
translates field by field; enum values equal the proto enum numbers, so `SortOrder(pb.sort_order)`
is the whole conversion.

Choices that differ from the protobuf shape (documented once here):

* `Compare` carries one `target_value: int | bytes` instead of etcd's `target_union` oneof
  (version / create_revision / mod_revision / value / lease). It is `bytes` when `target` is
  VALUE and `int` otherwise. A value of the wrong type compares as etcd's unset union does:
  as 0 or as b"".
* Every response carries `revision`: the store revision etcd puts in `header.revision` (for a
  write: the revision after it; a write that changed nothing keeps the old revision).
* Lease IDs use etcd's field name `id` in requests and responses (`ID` on the wire).
* A DELETE event's `kv` carries only `key` and `mod_revision` (other fields zero), as etcd.
* `Event.prev_kv` is always filled by kvstore when a previous live version exists; the watch
  hub drops it for watchers that did not ask for prev_kv.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeAlias

__all__ = [
    "ApplyResult",
    "Compare",
    "CompareResult",
    "CompareTarget",
    "CompactionRequest",
    "CompactionResponse",
    "DeleteRangeRequest",
    "DeleteRangeResponse",
    "Event",
    "EventType",
    "HashKVResponse",
    "KeyValue",
    "Lease",
    "LeaseCheckpointRequest",
    "LeaseCheckpointResponse",
    "LeaseGrantRequest",
    "LeaseGrantResponse",
    "LeaseLeasesResponse",
    "LeaseRevokeRequest",
    "LeaseRevokeResponse",
    "LeaseTimeToLiveResponse",
    "PutRequest",
    "PutResponse",
    "RangeRequest",
    "RangeResponse",
    "Request",
    "RequestOp",
    "Response",
    "ResponseOp",
    "SortOrder",
    "SortTarget",
    "TxnRequest",
    "TxnResponse",
]


class EventType(IntEnum):
    PUT = 0
    DELETE = 1


class SortOrder(IntEnum):
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(IntEnum):
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class CompareResult(IntEnum):
    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


class CompareTarget(IntEnum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One version of a key (mvccpb.KeyValue)."""

    key: bytes
    create_revision: int
    mod_revision: int
    version: int
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """One change (mvccpb.Event). `prev_kv` is the key's live version just before it, if any."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None


# --- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RangeRequest:
    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: SortOrder = SortOrder.NONE
    sort_target: SortTarget = SortTarget.KEY
    serializable: bool = False
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


@dataclass(frozen=True, slots=True)
class PutRequest:
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


@dataclass(frozen=True, slots=True)
class DeleteRangeRequest:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    """A txn guard. `target_value` is bytes for VALUE, an int for the other targets."""

    result: CompareResult
    target: CompareTarget
    key: bytes
    target_value: int | bytes = 0
    range_end: bytes = b""


@dataclass(frozen=True, slots=True)
class TxnRequest:
    compare: tuple[Compare, ...] = ()
    success: tuple[RequestOp, ...] = ()
    failure: tuple[RequestOp, ...] = ()


RequestOp: TypeAlias = RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest


@dataclass(frozen=True, slots=True)
class CompactionRequest:
    revision: int
    physical: bool = False


@dataclass(frozen=True, slots=True)
class LeaseGrantRequest:
    """`ttl` in seconds; `id` 0 lets apply derive a deterministic ID from the raft index."""

    ttl: int
    id: int = 0


@dataclass(frozen=True, slots=True)
class LeaseRevokeRequest:
    id: int


@dataclass(frozen=True, slots=True)
class LeaseCheckpointRequest:
    """Persist a lease's remaining TTL (etcd's LeaseCheckpoint) so it survives a leader change."""

    id: int
    remaining_ttl: int


Request: TypeAlias = (
    RangeRequest
    | PutRequest
    | DeleteRangeRequest
    | TxnRequest
    | CompactionRequest
    | LeaseGrantRequest
    | LeaseRevokeRequest
    | LeaseCheckpointRequest
)


# --- responses ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RangeResponse:
    kvs: tuple[KeyValue, ...]
    more: bool
    count: int
    revision: int


@dataclass(frozen=True, slots=True)
class PutResponse:
    prev_kv: KeyValue | None
    revision: int


@dataclass(frozen=True, slots=True)
class DeleteRangeResponse:
    deleted: int
    prev_kvs: tuple[KeyValue, ...]
    revision: int


@dataclass(frozen=True, slots=True)
class TxnResponse:
    succeeded: bool
    responses: tuple[ResponseOp, ...]
    revision: int


ResponseOp: TypeAlias = RangeResponse | PutResponse | DeleteRangeResponse | TxnResponse


@dataclass(frozen=True, slots=True)
class CompactionResponse:
    revision: int


@dataclass(frozen=True, slots=True)
class LeaseGrantResponse:
    id: int
    ttl: int
    revision: int


@dataclass(frozen=True, slots=True)
class LeaseRevokeResponse:
    revision: int


@dataclass(frozen=True, slots=True)
class LeaseCheckpointResponse:
    revision: int


@dataclass(frozen=True, slots=True)
class LeaseTimeToLiveResponse:
    """`ttl` is -1 for an unknown lease (etcd answers so instead of an error)."""

    id: int
    ttl: int
    granted_ttl: int
    keys: tuple[bytes, ...] = ()
    revision: int = 0


@dataclass(frozen=True, slots=True)
class LeaseLeasesResponse:
    leases: tuple[int, ...]
    revision: int


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease's persisted state, for the node's expiry heap.

    `remaining_ttl` is the last checkpointed remaining TTL in seconds, 0 if never checkpointed
    (then the full `ttl` applies from the moment the node (re)starts tracking it).
    """

    id: int
    ttl: int
    remaining_ttl: int = 0


@dataclass(frozen=True, slots=True)
class HashKVResponse:
    """`compact_revision` is -1 when the store was never compacted (as etcd)."""

    hash: int
    compact_revision: int
    revision: int


Response: TypeAlias = (
    RangeResponse
    | PutResponse
    | DeleteRangeResponse
    | TxnResponse
    | CompactionResponse
    | LeaseGrantResponse
    | LeaseRevokeResponse
    | LeaseCheckpointResponse
)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What applying one raft entry produced.

    `revision` is the store revision after the request (the response's header revision);
    `events` are the changes in (main, sub) revision order with prev_kv filled, to be handed
    to the watch hub after the LMDB transaction commits.
    """

    index: int
    revision: int
    response: Response
    events: tuple[Event, ...] = field(default=())
