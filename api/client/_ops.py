"""Request values (Get, Put, Delete, Txn, Compare) and the txn builder.

Every KV call of the client is first a frozen value here, then `to_pb()`: `client.get(k,
prefix=True)` builds `Get(k, prefix=True)`, and the same `Get` can be an operation inside a
transaction. That keeps one translation per request type, shared by plain calls and txns.

Key ranges follow etcd: `range_end` empty means the single `key`; `prefix=True` computes
`prefix_range_end(key)`; `from_key=True` means every key >= `key` (range_end = b"\\0").

Compares are built with Python operators on a target:

    Compare.value(b"k") == b"v"      Compare.version(b"k") > 0
    Compare.mod(b"k") < 7            Compare.create(b"k") != 0     Compare.lease(b"k") == lid

and a transaction reads as etcd's If/Then/Else:

    await client.txn().if_(Compare.mod(b"k") == 0).then(Put(b"k", b"v")).else_(Get(b"k")).commit()
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from api.proto import rpc_pb2

__all__ = [
    "Compare",
    "Comparison",
    "Delete",
    "Get",
    "Op",
    "Put",
    "SortOrder",
    "SortTarget",
    "Txn",
    "TxnBuilder",
    "prefix_range_end",
]


class SortOrder(enum.Enum):
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(enum.Enum):
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


def prefix_range_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with `prefix` (etcd's GetPrefixRangeEnd).

    The last byte below 0xff is incremented and the rest dropped; a prefix of only 0xff bytes
    (or empty) has no such key, so the range runs to the end of the keyspace (b"\\0").
    """
    for i in range(len(prefix) - 1, -1, -1):
        if prefix[i] < 0xFF:
            return prefix[:i] + bytes([prefix[i] + 1])
    return b"\0"


def _range_end(key: bytes, range_end: bytes | None, prefix: bool, from_key: bool) -> bytes:
    chosen = sum((range_end is not None, prefix, from_key))
    if chosen > 1:
        raise ValueError("give at most one of range_end, prefix, from_key")
    if prefix:
        return prefix_range_end(key)
    if from_key:
        return b"\0"
    return range_end or b""


@dataclass(frozen=True, slots=True)
class Get:
    """A Range request with every etcd 3.4 option."""

    key: bytes
    range_end: bytes | None = None
    prefix: bool = False
    from_key: bool = False
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

    def to_pb(self) -> rpc_pb2.RangeRequest:
        return rpc_pb2.RangeRequest(
            key=self.key,
            range_end=_range_end(self.key, self.range_end, self.prefix, self.from_key),
            limit=self.limit, revision=self.revision,
            sort_order=self.sort_order.value,  # type: ignore[arg-type]
            sort_target=self.sort_target.value,  # type: ignore[arg-type]
            serializable=self.serializable, keys_only=self.keys_only,
            count_only=self.count_only, min_mod_revision=self.min_mod_revision,
            max_mod_revision=self.max_mod_revision, min_create_revision=self.min_create_revision,
            max_create_revision=self.max_create_revision,
        )


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes = b""
    lease_id: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False

    def to_pb(self) -> rpc_pb2.PutRequest:
        return rpc_pb2.PutRequest(
            key=self.key, value=self.value, lease=self.lease_id, prev_kv=self.prev_kv,
            ignore_value=self.ignore_value, ignore_lease=self.ignore_lease,
        )


@dataclass(frozen=True, slots=True)
class Delete:
    key: bytes
    range_end: bytes | None = None
    prefix: bool = False
    from_key: bool = False
    prev_kv: bool = False

    def to_pb(self) -> rpc_pb2.DeleteRangeRequest:
        return rpc_pb2.DeleteRangeRequest(
            key=self.key,
            range_end=_range_end(self.key, self.range_end, self.prefix, self.from_key),
            prev_kv=self.prev_kv,
        )


class _Target(enum.Enum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


class _Result(enum.Enum):
    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


@dataclass(frozen=True, slots=True)
class Comparison:
    """One txn compare: `target` of `key` (or of every key in [key, range_end)) vs `operand`."""

    key: bytes
    target: str
    result: str
    operand: int | bytes
    range_end: bytes = b""

    def to_pb(self) -> rpc_pb2.Compare:
        target = _Target[self.target]
        c = rpc_pb2.Compare(
            key=self.key, range_end=self.range_end,
            target=target.value,  # type: ignore[arg-type]
            result=_Result[self.result].value,  # type: ignore[arg-type]
        )
        if target is _Target.VALUE:
            if not isinstance(self.operand, bytes):
                raise TypeError("a value compare needs a bytes operand")
            c.value = self.operand
        else:
            if not isinstance(self.operand, int):
                raise TypeError(f"a {self.target.lower()} compare needs an int operand")
            setattr(c, {
                _Target.VERSION: "version", _Target.CREATE: "create_revision",
                _Target.MOD: "mod_revision", _Target.LEASE: "lease",
            }[target], self.operand)
        return c


class Compare:
    """A compare target; Python's ==, !=, <, > on it build a `Comparison`.

    (The class deliberately overrides __eq__ to build a value, as SQLAlchemy columns do, so
    targets are not hashable and must not be used as dict keys.)
    """

    __slots__ = ("_key", "_range_end", "_target")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, key: bytes, target: str, *, range_end: bytes = b"", prefix: bool = False):
        self._key = key
        self._target = target
        self._range_end = prefix_range_end(key) if prefix else range_end

    @classmethod
    def version(cls, key: bytes, *, range_end: bytes = b"", prefix: bool = False) -> Compare:
        return cls(key, "VERSION", range_end=range_end, prefix=prefix)

    @classmethod
    def create(cls, key: bytes, *, range_end: bytes = b"", prefix: bool = False) -> Compare:
        return cls(key, "CREATE", range_end=range_end, prefix=prefix)

    @classmethod
    def mod(cls, key: bytes, *, range_end: bytes = b"", prefix: bool = False) -> Compare:
        return cls(key, "MOD", range_end=range_end, prefix=prefix)

    @classmethod
    def value(cls, key: bytes, *, range_end: bytes = b"", prefix: bool = False) -> Compare:
        return cls(key, "VALUE", range_end=range_end, prefix=prefix)

    @classmethod
    def lease(cls, key: bytes, *, range_end: bytes = b"", prefix: bool = False) -> Compare:
        return cls(key, "LEASE", range_end=range_end, prefix=prefix)

    def _cmp(self, result: str, operand: object) -> Comparison:
        if not isinstance(operand, int | bytes) or isinstance(operand, bool):
            raise TypeError(f"cannot compare with {operand!r}")
        return Comparison(self._key, self._target, result, operand, self._range_end)

    def __eq__(self, other: object) -> Comparison:  # type: ignore[override]
        return self._cmp("EQUAL", other)

    def __ne__(self, other: object) -> Comparison:  # type: ignore[override]
        return self._cmp("NOT_EQUAL", other)

    def __lt__(self, other: object) -> Comparison:
        return self._cmp("LESS", other)

    def __gt__(self, other: object) -> Comparison:
        return self._cmp("GREATER", other)


@dataclass(frozen=True, slots=True)
class Txn:
    """A transaction value; also usable as an op inside another txn (etcd >= 3.3)."""

    compare: tuple[Comparison, ...] = ()
    success: tuple[Op, ...] = ()
    failure: tuple[Op, ...] = ()

    def to_pb(self) -> rpc_pb2.TxnRequest:
        return rpc_pb2.TxnRequest(
            compare=[c.to_pb() for c in self.compare],
            success=[_request_op(op) for op in self.success],
            failure=[_request_op(op) for op in self.failure],
        )


Op = Get | Put | Delete | Txn


def _request_op(op: Op) -> rpc_pb2.RequestOp:
    if isinstance(op, Get):
        return rpc_pb2.RequestOp(request_range=op.to_pb())
    if isinstance(op, Put):
        return rpc_pb2.RequestOp(request_put=op.to_pb())
    if isinstance(op, Delete):
        return rpc_pb2.RequestOp(request_delete_range=op.to_pb())
    if isinstance(op, Txn):
        return rpc_pb2.RequestOp(request_txn=op.to_pb())
    raise TypeError(f"not a txn op: {op!r}")


R = TypeVar("R")


class TxnBuilder(Generic[R]):
    """Fluent If/Then/Else; `commit()` hands the built `Txn` to the client that made it.

    Each clause may be given once, in order (etcd's clientv3 panics on a repeated If/Then/Else;
    we raise ValueError), so a builder reads exactly like the request it sends.
    """

    def __init__(self, commit: Callable[[Txn], R]) -> None:
        self._commit = commit
        self._compare: tuple[Comparison, ...] | None = None
        self._success: tuple[Op, ...] | None = None
        self._failure: tuple[Op, ...] | None = None

    def if_(self, *compares: Comparison) -> TxnBuilder[R]:
        if self._compare is not None or self._success is not None or self._failure is not None:
            raise ValueError("if_ must come first and only once")
        self._compare = compares
        return self

    def then(self, *ops: Op) -> TxnBuilder[R]:
        if self._success is not None or self._failure is not None:
            raise ValueError("then must come before else_ and only once")
        self._success = ops
        return self

    def else_(self, *ops: Op) -> TxnBuilder[R]:
        if self._failure is not None:
            raise ValueError("else_ may be given only once")
        self._failure = ops
        return self

    def build(self) -> Txn:
        return Txn(self._compare or (), self._success or (), self._failure or ())

    def commit(self) -> R:
        return self._commit(self.build())
