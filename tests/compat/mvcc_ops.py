"""Random etcd KV/Lease request sequences for the differential test, and their etcd executor.

Requests are kvstore.types records (the store's own language); `EtcdExecutor` sends them to a
real etcd through api/proto stubs (translated by api.service.convert) and returns the answer
as a kvstore.types response, or an `Error(code, message)`. Lease IDs differ between the two
servers (etcd picks random ones, kvstore derives them from the raft index): requests are
generated in etcd's ID space and `LeaseMap` translates requests to, and etcd's answers into,
the store's ID space, so the two outcomes compare with plain `==`.

The generator draws from a small key space so that ops collide: prefixes, from-key and
all-keys ranges, inverted ranges, past, compacted and future revisions, every sort and
compare target, nested txns, duplicate keys in txns, over-long txns, unknown leases,
ignore_value/ignore_lease misuse.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

import grpc

from api.proto import rpc_pb2_grpc
from api.service import convert
from kvstore import types as t

# Zero bytes inside keys exercise kvstore's key escaping (revision.escape_key).
KEYS = (b"a", b"a\x00", b"a\x00\x01", b"a/1", b"a/2", b"a/3", b"b", b"b/1", b"c", b"\xff", b"z", b"\x00")
BOUNDS = (
    b"a", b"a\x00", b"a\x00\xff", b"a/", b"a0", b"a/2", b"b", b"b0", b"c", b"d", b"\xff",
    b"\xff\xff", b"\x00", b"\x00\x00",
)
UNKNOWN_LEASE = 0x7E57  # never granted on either side
LONG_TTL_S = 3600  # leases that must not expire while the test runs


@dataclass(frozen=True, slots=True)
class Error:
    code: str  # grpc.StatusCode name, e.g. "OUT_OF_RANGE"
    message: str


Outcome = t.Response | Error


@dataclass
class LeaseMap:
    """etcd lease ID -> store lease ID; explicitly requested IDs map to themselves."""

    to_store: dict[int, int] = field(default_factory=dict)
    usable: list[int] = field(default_factory=list)  # etcd IDs of live, long leases

    def add(self, etcd_id: int, store_id: int, *, usable: bool) -> None:
        self.to_store[etcd_id] = store_id
        if usable:
            self.usable.append(etcd_id)

    def revoke(self, etcd_id: int) -> None:
        if etcd_id in self.usable:
            self.usable.remove(etcd_id)

    def map(self, etcd_id: int) -> int:
        return self.to_store.get(etcd_id, etcd_id)


def map_leases_in_request(req: t.Request, leases: LeaseMap) -> t.Request:
    """The same request with every etcd lease ID replaced by the store's."""
    if isinstance(req, t.PutRequest):
        return dataclasses.replace(req, lease=leases.map(req.lease)) if req.lease else req
    if isinstance(req, t.TxnRequest):
        return t.TxnRequest(
            compare=tuple(
                dataclasses.replace(c, target_value=leases.map(c.target_value))
                if c.target is t.CompareTarget.LEASE and isinstance(c.target_value, int)
                else c
                for c in req.compare
            ),
            success=tuple(_map_op(op, leases) for op in req.success),
            failure=tuple(_map_op(op, leases) for op in req.failure),
        )
    if isinstance(req, t.LeaseRevokeRequest):
        return t.LeaseRevokeRequest(id=leases.map(req.id))
    return req


def _map_op(op: t.RequestOp, leases: LeaseMap) -> t.RequestOp:
    mapped = map_leases_in_request(op, leases)
    assert isinstance(mapped, t.RangeRequest | t.PutRequest | t.DeleteRangeRequest | t.TxnRequest)
    return mapped


def map_leases_in_outcome(out: Outcome, leases: LeaseMap) -> Outcome:
    """etcd's answer with every lease ID in it replaced by the store's."""

    def kv(x: t.KeyValue) -> t.KeyValue:
        return dataclasses.replace(x, lease=leases.map(x.lease)) if x.lease else x

    if isinstance(out, t.RangeResponse):
        return dataclasses.replace(out, kvs=tuple(kv(x) for x in out.kvs))
    if isinstance(out, t.PutResponse):
        return dataclasses.replace(out, prev_kv=kv(out.prev_kv) if out.prev_kv else None)
    if isinstance(out, t.DeleteRangeResponse):
        return dataclasses.replace(out, prev_kvs=tuple(kv(x) for x in out.prev_kvs))
    if isinstance(out, t.TxnResponse):
        responses = []
        for r in out.responses:
            mapped = map_leases_in_outcome(r, leases)
            assert not isinstance(mapped, Error)
            responses.append(mapped)
        return dataclasses.replace(out, responses=tuple(responses))  # type: ignore[arg-type]
    if isinstance(out, t.LeaseGrantResponse):
        return dataclasses.replace(out, id=leases.map(out.id))
    return out


class EtcdExecutor:
    """Sends kvstore.types requests to a real etcd and converts the answers back."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.lease = rpc_pb2_grpc.LeaseStub(channel)

    def execute(self, req: t.Request) -> Outcome:
        pb = convert.request_to_pb(req)
        call = {
            t.RangeRequest: self.kv.Range,
            t.PutRequest: self.kv.Put,
            t.DeleteRangeRequest: self.kv.DeleteRange,
            t.TxnRequest: self.kv.Txn,
            t.CompactionRequest: self.kv.Compact,
            t.LeaseGrantRequest: self.lease.LeaseGrant,
            t.LeaseRevokeRequest: self.lease.LeaseRevoke,
        }[type(req)]
        try:
            resp = call(pb, timeout=10)
        except grpc.RpcError as e:
            return Error(e.code().name, e.details() or "")
        return convert.response_from_pb(resp)


# --- generation ---------------------------------------------------------------------------------


class Generator:
    """Draws one request at a time; `observe` feeds back the outcome (revision, leases)."""

    def __init__(self, rng: random.Random, *, negative_lease_ids: bool = True) -> None:
        self.rng = rng
        self.negative_lease_ids = negative_lease_ids
        self.revision = 1
        self.compact_revision = 0
        self.leases = LeaseMap()
        self.explicit_ids: list[int] = []

    # helpers
    def key(self) -> bytes:
        return self.rng.choice(KEYS)

    def key_range(self) -> tuple[bytes, bytes]:
        r = self.rng.random()
        if r < 0.35:
            return self.key(), b""
        if r < 0.55:  # prefix
            k = self.rng.choice((b"a", b"a/", b"b", b"b/", b"\xff"))
            return k, _prefix_end(k)
        if r < 0.65:  # from key
            return self.key(), b"\x00"
        if r < 0.7:  # everything
            return b"\x00", b"\x00"
        return self.rng.choice(BOUNDS), self.rng.choice(BOUNDS)  # may be empty or inverted

    def value(self) -> bytes:
        return self.rng.choice((b"", b"v", b"w", b"value-" + bytes([self.rng.randrange(97, 123)])))

    def some_revision(self) -> int:
        r = self.rng.random()
        if r < 0.5:
            return 0
        if r < 0.6:
            return self.revision + self.rng.randint(1, 2)  # future
        if r < 0.7 and self.compact_revision > 1:
            return self.rng.randint(1, self.compact_revision)  # compacted (or exactly at it)
        return self.rng.randint(max(1, self.revision - 6), self.revision)

    def lease_ref(self) -> int:
        r = self.rng.random()
        if self.leases.usable and r < 0.8:
            return self.rng.choice(self.leases.usable)
        return UNKNOWN_LEASE

    # requests
    def range(self) -> t.RangeRequest:
        rng = self.rng
        key, end = self.key_range()
        return t.RangeRequest(
            key=key,
            range_end=end,
            limit=rng.choice((0, 0, 1, 2, 3)),
            revision=self.some_revision(),
            sort_order=rng.choice(list(t.SortOrder)) if rng.random() < 0.4 else t.SortOrder.NONE,
            sort_target=rng.choice(list(t.SortTarget)) if rng.random() < 0.4 else t.SortTarget.KEY,
            serializable=rng.random() < 0.2,
            keys_only=rng.random() < 0.2,
            count_only=rng.random() < 0.15,
            min_mod_revision=self._maybe_rev(0.1),
            max_mod_revision=self._maybe_rev(0.1),
            min_create_revision=self._maybe_rev(0.1),
            max_create_revision=self._maybe_rev(0.1),
        )

    def _maybe_rev(self, p: float) -> int:
        return self.rng.randint(1, self.revision + 1) if self.rng.random() < p else 0

    def put(self, *, in_txn: bool = False) -> t.PutRequest:
        rng = self.rng
        ignore_value = rng.random() < 0.1
        ignore_lease = rng.random() < 0.1
        value = self.value()
        if ignore_value and rng.random() < 0.7:
            value = b""
        lease = 0
        if rng.random() < 0.25:
            lease = self.lease_ref()
        if ignore_lease and rng.random() < 0.7:
            lease = 0
        return t.PutRequest(
            key=self.key(),
            value=value,
            lease=lease,
            prev_kv=rng.random() < 0.4,
            ignore_value=ignore_value,
            ignore_lease=ignore_lease,
        )

    def delete(self) -> t.DeleteRangeRequest:
        key, end = self.key_range()
        return t.DeleteRangeRequest(key=key, range_end=end, prev_kv=self.rng.random() < 0.5)

    def compare(self) -> t.Compare:
        rng = self.rng
        target = rng.choice(list(t.CompareTarget))
        value: int | bytes
        if target is t.CompareTarget.VALUE:
            value = self.value()
        elif target is t.CompareTarget.LEASE:
            value = rng.choice((0, self.lease_ref()))
        elif target is t.CompareTarget.VERSION:
            value = rng.randint(0, 3)
        else:
            value = rng.randint(0, self.revision + 1)
        key, end = (self.key(), b"") if rng.random() < 0.7 else self.key_range()
        results = list(t.CompareResult)
        if target is t.CompareTarget.LEASE:
            # Mapped lease IDs do not keep their order: only (in)equality compares alike.
            results = [t.CompareResult.EQUAL, t.CompareResult.NOT_EQUAL]
        return t.Compare(
            result=rng.choice(results),
            target=target,
            key=key,
            target_value=value,
            range_end=end,
        )

    def op(self, depth: int) -> t.RequestOp:
        r = self.rng.random()
        if r < 0.3:
            return self.range()
        if r < 0.65:
            return self.put(in_txn=True)
        if r < 0.9 or depth >= 2:
            return self.delete()
        return self.txn(depth + 1)

    def txn(self, depth: int = 0) -> t.TxnRequest:
        rng = self.rng
        if depth == 0 and rng.random() < 0.03:  # over the 128-op limit
            if rng.random() < 0.5:
                return t.TxnRequest(compare=tuple(self.compare() for _ in range(129)))
            return t.TxnRequest(success=tuple(self.range() for _ in range(129)))
        compares = tuple(self.compare() for _ in range(rng.randint(0, 3)))
        success = [self.op(depth) for _ in range(rng.randint(0, 3))]
        failure = [self.op(depth) for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.1:  # the same key written twice: "duplicate key given"
            k = self.key()
            success += [t.PutRequest(key=k, value=b"1"), t.PutRequest(key=k, value=b"2")]
        txn = t.TxnRequest(compare=compares, success=tuple(success), failure=tuple(failure))
        return _strip_ignore_flags(txn) if depth == 0 and _has_delete(txn) else txn

    def compact(self) -> t.CompactionRequest:
        r = self.rng.random()
        if r < 0.15:
            rev = self.revision + 1  # future
        elif r < 0.3 and self.compact_revision:
            rev = self.rng.randint(1, self.compact_revision)  # already compacted
        else:
            rev = self.rng.randint(max(1, self.revision - 5), self.revision)
        return t.CompactionRequest(revision=rev, physical=self.rng.random() < 0.5)

    def lease_grant(self) -> t.LeaseGrantRequest:
        rng = self.rng
        r = rng.random()
        if r < 0.04:
            return t.LeaseGrantRequest(ttl=9_000_000_001)  # "too large lease TTL"
        if r < 0.08 and self.negative_lease_ids:
            # etcd 3.4 grants a negative ID as asked (its lessor only special-cases 0).
            lease_id = -rng.randint(1, 10**6)
            self.explicit_ids.append(lease_id)
            return t.LeaseGrantRequest(ttl=LONG_TTL_S, id=lease_id)
        if rng.random() < 0.2:
            # A chosen ID: sometimes one already granted ("lease already exists").
            if self.explicit_ids and rng.random() < 0.4:
                return t.LeaseGrantRequest(ttl=LONG_TTL_S, id=rng.choice(self.explicit_ids))
            lease_id = rng.randint(1, 10**6) * 1000 + 1
            self.explicit_ids.append(lease_id)
            return t.LeaseGrantRequest(ttl=LONG_TTL_S, id=lease_id)
        if rng.random() < 0.15:
            # Below the minimum TTL (raised by the server) or invalid; never used afterwards,
            # since it expires during the run.
            return t.LeaseGrantRequest(ttl=rng.choice((-5, 0, 1)))
        return t.LeaseGrantRequest(ttl=LONG_TTL_S)

    def lease_revoke(self) -> t.LeaseRevokeRequest:
        return t.LeaseRevokeRequest(id=self.lease_ref())

    def next(self) -> t.Request:
        r = self.rng.random()
        if r < 0.02:  # "etcdserver: key is not provided"
            return self.rng.choice(
                (t.RangeRequest(key=b""), t.PutRequest(key=b""), t.DeleteRangeRequest(key=b""))
            )
        if r < 0.25:
            return self.put()
        if r < 0.45:
            return self.range()
        if r < 0.55:
            return self.delete()
        if r < 0.8:
            return self.txn()
        if r < 0.86:
            return self.compact()
        if r < 0.95:
            return self.lease_grant()
        return self.lease_revoke()

    def observe(self, req: t.Request, etcd_out: Outcome, store_out: Outcome) -> None:
        """Track revision, compaction and revoked leases from the (already compared) outcomes.

        Granted leases are registered by the caller (before comparing, to map the IDs)."""
        if isinstance(etcd_out, Error):
            return
        self.revision = max(self.revision, etcd_out.revision)
        if isinstance(req, t.CompactionRequest):
            self.compact_revision = req.revision
        if isinstance(req, t.LeaseRevokeRequest):
            self.leases.revoke(req.id)


def _has_delete(txn: t.TxnRequest) -> bool:
    return any(
        isinstance(op, t.DeleteRangeRequest) or (isinstance(op, t.TxnRequest) and _has_delete(op))
        for op in (*txn.success, *txn.failure)
    )


def _strip_ignore_flags(txn: t.TxnRequest) -> t.TxnRequest:
    """etcd 3.4 panics (the whole server exits) on a txn that deletes a key and then puts it
    with ignore_value/ignore_lease: the existence check runs before the txn, the put fails
    inside it ("unexpected error during txn"). Such txns are kept out of the sequences."""

    def fix(op: t.RequestOp) -> t.RequestOp:
        if isinstance(op, t.PutRequest):
            return dataclasses.replace(op, ignore_value=False, ignore_lease=False)
        if isinstance(op, t.TxnRequest):
            return _strip_ignore_flags(op)
        return op

    return dataclasses.replace(
        txn, success=tuple(fix(op) for op in txn.success), failure=tuple(fix(op) for op in txn.failure)
    )


def _prefix_end(prefix: bytes) -> bytes:
    b = bytearray(prefix)
    while b and b[-1] == 0xFF:
        b.pop()
    if not b:
        return b"\x00"
    b[-1] += 1
    return bytes(b)
