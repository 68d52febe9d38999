"""Apply: raft entries -> changes in ONE LMDB write transaction per batch.

`WriteTxn` wraps the batch's LMDB write transaction and the running store revision. For
each entry, `apply(index, request)`:

1. validates the request (txn.check_request) and reads what it depends on (lease
   existence, the key for ignore_value/ignore_lease, txn compares, range revisions),
   raising the etcd error *before writing anything*, so a failed entry leaves no trace and
   the rest of the batch carries on (`invariant(self.sub == 0)` guards this);
2. writes: every changed key gets the next revision (main = revision + 1, sub = 0, 1, ...)
   in the `key` database (escaped key + rev17 -> record) and the `rev` database
   (rev17 -> marker + key), and lease attachments in `lease_keys`;
3. bumps the revision only if something was written (a delete that matches nothing and a
   read-only txn keep it, as etcd does) and returns the response with the events.

Determinism: the result depends only on the request, the index (for lease IDs chosen by
apply), the prior LMDB state and the NOSPACE alarm flag (itself replicated); never on the
clock. The on-disk size is *not* deterministic (a replica restored from a compacted snapshot
or defragmented uses fewer pages), so the size-based quota check at apply time
(`Limits.quota_at_apply`) is the one input that is not (see store.py, "Space quota").

Txn (etcd 3.4 applierV3backend.Txn): all compares, including those of nested txns on the
chosen path, are evaluated against the state before the txn; then put checks (only for a
txn that can write), then range revision checks, then execution, where later ops see the
writes of earlier ones. A nested TxnResponse carries revision 0 (etcd leaves its header unset).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kvstore import lease as lease_ops
from kvstore.codec import (
    REV_PUT,
    REV_TOMBSTONE,
    TOMBSTONE_RECORD,
    decode_record,
    encode_record,
    pack_lease_id,
    pack_u64,
)
from kvstore.errors import (
    CompactedError,
    EmptyKeyError,
    FutureRevisionError,
    KeyNotFoundError,
    KvError,
    LeaseNotFoundError,
    NoSpaceError,
    StorageError,
    invariant,
)
from kvstore.revision import pack_rev, rev_main
from kvstore.txn import check_request, compare_kv, txn_cost, txn_is_readonly
from kvstore.types import (
    ApplyResult,
    CompactionRequest,
    CompactionResponse,
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    LeaseCheckpointRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    PutRequest,
    PutResponse,
    RangeRequest,
    RequestOp,
    Response,
    ResponseOp,
    TxnRequest,
    TxnResponse,
)
from kvstore.view import Dbs, check_read_revision, get_kv, iter_live, latest_raw, range_request
from kvstore.view import to_kv as _to_kv

__all__ = ["Limits", "WriteTxn"]

META_REVISION = b"revision"
_REV_PUT_MARK = bytes((REV_PUT,))
# Keys up to this length cannot hit LMDB's key limit even if every byte is escaped.
_SHORT_KEY_BYTES = 240
META_COMPACT_REVISION = b"compact_revision"


@dataclass(frozen=True, slots=True)
class Limits:
    max_txn_ops: int = 128
    min_lease_ttl_s: int = 2
    quota_bytes: int = 2 * 1024**3
    quota_at_apply: bool = True


class WriteTxn:
    """One batch being applied: the LMDB write txn plus the revision state it advances."""

    def __init__(
        self,
        txn: Any,
        dbs: Dbs,
        *,
        revision: int,
        compact_revision: int,
        limits: Limits,
        size_in_use_bytes: int,
        nospace_alarm: bool = False,
    ) -> None:
        self.txn = txn
        self.dbs = dbs
        self.kcur = txn.cursor(db=dbs.key)
        self.revision = revision
        self.compact_revision = compact_revision
        self.compaction_scheduled = False
        self.limits = limits
        self.index = 0
        self.main = revision + 1
        self.sub = 0
        self.events: list[Event] = []
        self._size_bytes = size_in_use_bytes
        self._nospace_alarm = nospace_alarm

    # --- entry point ----------------------------------------------------------------------

    def apply(self, index: int, request: object) -> ApplyResult:
        """Apply one request; a KvError means nothing was written for it."""
        self.index = index
        self.main = self.revision + 1
        self.sub = 0
        self.events = []
        try:
            response = self._dispatch(request)
        except KvError as e:
            if not isinstance(e, StorageError):
                invariant(self.sub == 0, f"entry {index} failed after {self.sub} changes")
            raise
        if self.sub:
            self.revision = self.main
        return ApplyResult(index, self.revision, response, tuple(self.events))

    def _dispatch(self, req: object) -> Response:
        max_ops = self.limits.max_txn_ops
        if type(req) is PutRequest:  # the hot path: keep it short
            if req.ignore_value or req.ignore_lease or len(req.key) > _SHORT_KEY_BYTES:
                check_request(req, max_txn_ops=max_ops)
            elif not req.key:
                raise EmptyKeyError()
            self.check_space(2 * len(req.key) + len(req.value) + 80)  # txn.put_cost
            # etcd's Put applier looks the lease up before the key (inside a txn it is the
            # other way round, see _check_put).
            if req.lease != 0 and not lease_ops.exists(self, req.lease):
                raise LeaseNotFoundError()
            if req.ignore_value or req.ignore_lease:
                self._check_put(req)
            return self._put(req)
        if isinstance(req, DeleteRangeRequest):
            check_request(req, max_txn_ops=max_ops)
            return self._delete_range(req)
        if isinstance(req, TxnRequest):
            check_request(req, max_txn_ops=max_ops)
            return self._txn(req)
        if isinstance(req, RangeRequest):
            check_request(req, max_txn_ops=max_ops)
            return range_request(
                self.kcur, req, current=self.revision, compact=self.compact_revision
            )
        if isinstance(req, CompactionRequest):
            return self._compact(req)
        if isinstance(req, LeaseGrantRequest):
            return lease_ops.grant(self, req)
        if isinstance(req, LeaseRevokeRequest):
            return lease_ops.revoke(self, req)
        if isinstance(req, LeaseCheckpointRequest):
            return lease_ops.checkpoint(self, req)
        raise TypeError(f"kvstore cannot apply {type(req).__name__}")

    def finish(self) -> None:
        """Record the revision reached by the batch (once, not per entry)."""
        self.txn.put(META_REVISION, pack_u64(self.revision), db=self.dbs.meta)

    # --- checks (no writes) ---------------------------------------------------------------

    def check_space(self, cost: int) -> None:
        """NoSpaceError if a request adding ~cost bytes would push the db past the quota."""
        if cost <= 0:
            return
        if self._nospace_alarm:
            raise NoSpaceError()
        if not self.limits.quota_at_apply:
            return
        if self._size_bytes + cost > self.limits.quota_bytes:
            raise NoSpaceError()
        # Pages written in this batch are not visible in env.info() until commit: count them.
        self._size_bytes += cost

    def _check_put(self, req: PutRequest) -> None:
        if req.ignore_value or req.ignore_lease:
            if get_kv(self.kcur, req.key, None) is None:
                raise KeyNotFoundError()
        if req.lease != 0 and not lease_ops.exists(self, req.lease):
            raise LeaseNotFoundError()

    # --- writes ---------------------------------------------------------------------------

    def _next_rev(self) -> bytes:
        rev17 = pack_rev(self.main, self.sub)
        self.sub += 1
        return rev17

    def _put(self, req: PutRequest) -> PutResponse:
        key = req.key
        enck = key.replace(b"\x00", b"\x00\xff") + b"\x00\x00"  # revision.escape_key
        main = self.main
        prev_kv: KeyValue | None = None
        found = latest_raw(self.kcur, enck, None)
        if found is not None and found[1][2] & 1 == 0:  # not a tombstone (codec.is_tombstone)
            prev_create, prev_version, prev_lease, prev_value = decode_record(found[1])
            prev_kv = KeyValue(key, prev_create, rev_main(found[0]), prev_version, prev_value,
                               prev_lease)
        value = req.value
        lease = req.lease
        if prev_kv is not None:
            create_revision, version = prev_create, prev_version + 1
            if req.ignore_value:
                value = prev_value
            if req.ignore_lease:
                lease = prev_lease
            old_lease = prev_lease
        else:
            invariant(not (req.ignore_value or req.ignore_lease), "ignore_* on a missing key")
            create_revision, version, old_lease = main, 1, 0
        rev17 = pack_rev(main, self.sub)
        self.sub += 1
        txn = self.txn
        dbs = self.dbs
        txn.put(enck + rev17, encode_record(create_revision, version, lease, value), db=dbs.key)
        # Revisions only grow: MDB_APPEND skips the B-tree search and packs pages full. LMDB
        # refuses an out-of-order append (put returns False): a revision monotonicity check.
        if not txn.put(rev17, _REV_PUT_MARK + key, db=dbs.rev, append=True):
            invariant(False, f"revision {main}.{self.sub - 1} is not above the last one")
        if old_lease != lease:
            # A key belongs to at most one lease: moving it detaches it from the old one.
            if old_lease:
                txn.delete(pack_lease_id(old_lease) + key, db=dbs.lease_keys)
            if lease:
                txn.put(pack_lease_id(lease) + key, b"", db=dbs.lease_keys)
        kv = KeyValue(key, create_revision, main, version, value, lease)
        self.events.append(Event(EventType.PUT, kv, prev_kv))
        return PutResponse(prev_kv if req.prev_kv else None, main)

    def tombstone(self, enck: bytes, prev_kv: KeyValue) -> None:
        """Delete the live key `prev_kv.key` at the next revision (also used by lease revoke)."""
        rev17 = self._next_rev()
        self.txn.put(enck + rev17, TOMBSTONE_RECORD, db=self.dbs.key)
        if not self.txn.put(rev17, bytes((REV_TOMBSTONE,)) + prev_kv.key, db=self.dbs.rev,
                            append=True):
            invariant(False, f"revision {self.main}.{self.sub - 1} is not above the last one")
        if prev_kv.lease:
            self.txn.delete(pack_lease_id(prev_kv.lease) + prev_kv.key, db=self.dbs.lease_keys)
        kv = KeyValue(prev_kv.key, 0, self.main, 0, b"", 0)
        event_prev: KeyValue | None = prev_kv
        if prev_kv.mod_revision == self.main:
            # Put earlier in this txn, then deleted by a "from key" delete: a watcher's
            # prev_kv is the state before the revision (etcd ranges at rev - 1), as
            # events_since computes it.
            event_prev = get_kv(self.kcur, prev_kv.key, self.main - 1)
        self.events.append(Event(EventType.DELETE, kv, event_prev))

    def _delete_range(self, req: DeleteRangeRequest) -> DeleteRangeResponse:
        # Collect first: the cursor must not walk the database it is writing to.
        live = list(iter_live(self.kcur, key=req.key, range_end=req.range_end,
                              max_main=self.main))
        prev_kvs: list[KeyValue] = []
        for enck, lk, raw in live:
            kv = _to_kv(enck[:-2].replace(b"\x00\xff", b"\x00"), lk, raw)
            self.tombstone(enck, kv)
            prev_kvs.append(kv)
        revision = self.main if self.sub else self.revision
        return DeleteRangeResponse(len(live), tuple(prev_kvs) if req.prev_kv else (), revision)

    def _compact(self, req: CompactionRequest) -> CompactionResponse:
        if req.revision <= self.compact_revision:
            raise CompactedError()
        if req.revision > self.revision:
            raise FutureRevisionError()
        self.compact_revision = req.revision
        self.compaction_scheduled = True
        self.txn.put(META_COMPACT_REVISION, pack_u64(req.revision), db=self.dbs.meta)
        return CompactionResponse(self.revision)

    # --- txn ------------------------------------------------------------------------------

    def _txn(self, req: TxnRequest) -> TxnResponse:
        path: list[bool] = []
        self._compare_path(req, path)
        writes = not txn_is_readonly(req)
        if writes:
            self.check_space(txn_cost(req))
            self._check_ops(req, iter(path), puts=True)
        self._check_ops(req, iter(path), puts=False)
        resp = self._exec_txn(req, iter(path))
        return TxnResponse(resp.succeeded, resp.responses, self.main if self.sub else self.revision)

    def _compare(self, c: Any) -> bool:
        if c.range_end == b"":
            return compare_kv(c, get_kv(self.kcur, c.key, None))
        kvs = [
            _to_kv(enck[:-2].replace(b"\x00\xff", b"\x00"), lk, raw)
            for enck, lk, raw in iter_live(
                self.kcur, key=c.key, range_end=c.range_end, max_main=self.main
            )
        ]
        if not kvs:
            return compare_kv(c, None)
        return all(compare_kv(c, kv) for kv in kvs)

    def _compare_path(self, req: TxnRequest, path: list[bool]) -> None:
        """Pre-order outcomes of this txn and its nested txns on the taken branches."""
        ok = all(self._compare(c) for c in req.compare)
        path.append(ok)
        for op in req.success if ok else req.failure:
            if isinstance(op, TxnRequest):
                self._compare_path(op, path)

    def _check_ops(
        self,
        req: TxnRequest,
        path: Iterator[bool],
        *,
        puts: bool,
        from_key_dels: list[bytes] | None = None,
    ) -> None:
        if from_key_dels is None:
            from_key_dels = []
        for op in req.success if next(path) else req.failure:
            if isinstance(op, TxnRequest):
                self._check_ops(op, path, puts=puts, from_key_dels=from_key_dels)
            elif puts and isinstance(op, PutRequest):
                self._check_put(op)
                if (op.ignore_value or op.ignore_lease) and any(
                    start <= op.key for start in from_key_dels
                ):
                    # The key exists now but an earlier "from key" delete of this txn (the
                    # one delete form the duplicate-key rule lets through) removes it first.
                    # etcd 3.4 panics here; we refuse the txn before writing anything.
                    raise KeyNotFoundError()
            elif puts and isinstance(op, DeleteRangeRequest) and op.range_end == b"\x00":
                from_key_dels.append(op.key)
            elif not puts and isinstance(op, RangeRequest) and op.revision != 0:
                check_read_revision(op.revision, current=self.revision,
                                    compact=self.compact_revision)

    def _exec_txn(self, req: TxnRequest, path: Iterator[bool]) -> TxnResponse:
        ok = next(path)
        responses: list[ResponseOp] = []
        for op in req.success if ok else req.failure:
            responses.append(self._exec_op(op, path))
        return TxnResponse(ok, tuple(responses), 0)

    def _exec_op(self, op: RequestOp, path: Iterator[bool]) -> ResponseOp:
        if isinstance(op, PutRequest):
            return self._put(op)
        if isinstance(op, DeleteRangeRequest):
            return self._delete_range(op)
        if isinstance(op, RangeRequest):
            # Reads inside a txn see its earlier writes (etcd: rev = begin + 1 once changed).
            current = self.main if self.sub else self.revision
            return range_request(self.kcur, op, current=current, compact=self.compact_revision)
        return self._exec_txn(op, path)
