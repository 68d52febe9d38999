"""Request validation (etcd's v3rpc checks) and txn compare evaluation.

etcd validates a request at its gRPC front door, before proposing it (v3rpc/key.go):
empty keys, ignore_value/ignore_lease misuse, the txn op count and the "duplicate key"
interval rules. `check_request` is that front door; the node may call it before proposing
to fail fast, and apply calls it again for every entry (it is cheap and deterministic, and
a store must not trust its log to hold only valid requests).

Op counting (checkTxnRequest): a txn may hold at most `max_txn_ops` of
max(len(compare), len(success), len(failure)); a nested txn gets what its parent leaves,
`max_txn_ops - parent_count`, as its own limit.

Duplicate keys (checkIntervals): within one branch list, a key may be put at most once, and
a put may not fall inside a delete range of the same level or of a nested txn at that level;
the two branches of a nested txn may put the same key (only one of them runs). A delete's
interval is [key, range_end), or the point key when range_end is empty; like etcd, a
"from key" delete (range_end b"\\x00") forms an empty interval and so conflicts with nothing.
Deletes may overlap each other.
"""

from __future__ import annotations

from kvstore.errors import (
    DuplicateKeyError,
    EmptyKeyError,
    LeaseProvidedError,
    RequestTooLargeError,
    TooManyOpsError,
    ValueProvidedError,
)
from kvstore.revision import REV_BYTES, escape_key
from kvstore.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    KeyValue,
    PutRequest,
    RangeRequest,
    RequestOp,
    TxnRequest,
)

__all__ = [
    "LMDB_KEY_BYTES_MAX",
    "check_key",
    "check_request",
    "compare_kv",
    "txn_cost",
    "txn_is_readonly",
]

# LMDB's compile-time key limit (mdb_env_get_maxkeysize) is 511 bytes; a `key` database key
# is the escaped user key plus a 17-byte revision.
LMDB_KEY_BYTES_MAX = 511


def check_key(key: bytes) -> None:
    if not key:
        raise EmptyKeyError()
    if len(key) + REV_BYTES + 2 > LMDB_KEY_BYTES_MAX and (
        len(escape_key(key)) + REV_BYTES > LMDB_KEY_BYTES_MAX
    ):
        raise RequestTooLargeError(f"key of {len(key)} bytes")


def check_request(req: object, *, max_txn_ops: int) -> None:
    """Raise the error etcd's gRPC layer returns for `req`, if any (before any state is read)."""
    if isinstance(req, PutRequest):
        _check_put(req)
    elif isinstance(req, RangeRequest | DeleteRangeRequest):
        check_key(req.key)
    elif isinstance(req, TxnRequest):
        _check_txn(req, max_txn_ops)
        _check_intervals(req.success)
        _check_intervals(req.failure)


def _check_put(req: PutRequest) -> None:
    check_key(req.key)
    if req.ignore_value and req.value:
        raise ValueProvidedError()
    if req.ignore_lease and req.lease != 0:
        raise LeaseProvidedError()


def _check_txn(req: TxnRequest, max_txn_ops: int) -> None:
    opc = max(len(req.compare), len(req.success), len(req.failure))
    if opc > max_txn_ops:
        raise TooManyOpsError()
    for c in req.compare:
        check_key(c.key)
    for op in (*req.success, *req.failure):
        if isinstance(op, TxnRequest):
            _check_txn(op, max_txn_ops - opc)
        else:
            check_request(op, max_txn_ops=max_txn_ops - opc)


def _intersects(dels: list[tuple[bytes, bytes]], k: bytes) -> bool:
    for begin, end in dels:
        if end == b"":
            if k == begin:
                return True
        elif begin <= k < end:
            return True
    return False


def _check_intervals(ops: tuple[RequestOp, ...]) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    """Puts and delete intervals of one branch list; DuplicateKeyError on a conflict."""
    dels = [(op.key, op.range_end) for op in ops if isinstance(op, DeleteRangeRequest)]
    puts: set[bytes] = set()
    for op in ops:
        if not isinstance(op, TxnRequest):
            continue
        puts_then, dels_then = _check_intervals(op.success)
        puts_else, dels_else = _check_intervals(op.failure)
        for k in puts_then:
            if k in puts or _intersects(dels, k):
                raise DuplicateKeyError()
            puts.add(k)
        for k in puts_else:
            # The same key in both branches is fine: then and else are mutually exclusive.
            if (k in puts and k not in puts_then) or _intersects(dels, k):
                raise DuplicateKeyError()
            puts.add(k)
        dels.extend(dels_then)
        dels.extend(dels_else)
    for op in ops:
        if not isinstance(op, PutRequest):
            continue
        if op.key in puts or _intersects(dels, op.key):
            raise DuplicateKeyError()
        puts.add(op.key)
    return puts, dels


def txn_is_readonly(req: TxnRequest) -> bool:
    """True when neither branch (at any depth) writes: such a txn never bumps the revision."""
    for op in (*req.success, *req.failure):
        if isinstance(op, TxnRequest):
            if not txn_is_readonly(op):
                return False
        elif not isinstance(op, RangeRequest):
            return False
    return True


def txn_cost(req: TxnRequest) -> int:
    """Bytes the puts of both branches may add (etcd's quota counts both branches)."""
    cost = 0
    for op in (*req.success, *req.failure):
        if isinstance(op, TxnRequest):
            cost += txn_cost(op)
        elif isinstance(op, PutRequest):
            cost += put_cost(op)
    return cost


def put_cost(req: PutRequest) -> int:
    # Key twice (key and rev databases), the value, and LMDB node/record headers.
    return 2 * len(req.key) + len(req.value) + 80


_ZERO_KV = KeyValue(b"", 0, 0, 0, b"", 0)


def compare_kv(c: Compare, kv: KeyValue | None) -> bool:
    """One compare against one key (None: the key is missing, compared as all zeros).

    etcd: a VALUE compare on a missing key is always false ("no way to represent a missing
    value"); the other targets compare the missing key's 0.
    """
    if kv is None:
        if c.target == CompareTarget.VALUE:
            return False
        kv = _ZERO_KV
    result: int
    if c.target == CompareTarget.VALUE:
        want = c.target_value if isinstance(c.target_value, bytes) else b""
        result = (kv.value > want) - (kv.value < want)
    else:
        got = {
            CompareTarget.VERSION: kv.version,
            CompareTarget.CREATE: kv.create_revision,
            CompareTarget.MOD: kv.mod_revision,
            CompareTarget.LEASE: kv.lease,
        }[c.target]
        want_int = c.target_value if isinstance(c.target_value, int) else 0
        result = (got > want_int) - (got < want_int)
    if c.result == CompareResult.EQUAL:
        return result == 0
    if c.result == CompareResult.NOT_EQUAL:
        return result != 0
    if c.result == CompareResult.GREATER:
        return result > 0
    return result < 0
