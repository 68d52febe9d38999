"""MVCC reads over one LMDB transaction: latest version, Range at a revision, event history.

The key index lives in LMDB, not in Python memory (etcd keeps a B-tree of key -> generations
in RAM; a million such Python objects would cost seconds to load and hundreds of MiB). The
`key` database is ordered by (user key, revision) thanks to revision.escape_key, so

* "key K as of revision R" is one B-tree seek: position at escape(K) + rev(R + 1, 0) and
  step back one entry; if that entry belongs to K and is not a tombstone, it is the answer;
* a Range at R walks the versions of the keys in [key, range_end) in order, keeping per key
  the last version with main <= R.

Every function takes the transaction's cursor(s) from the caller, so a read inside a write
txn sees the writes made earlier in that txn (etcd's "a txn reads its own writes").

Range semantics follow etcd 3.4's applier (etcdserver/apply.go, mvcc/kvstore_txn.go):
`count` is the number of keys in the range at that revision before limit and before the
min/max revision filters; when a sort order is given or a filter is set, etcd fetches every
key, filters, sorts and only then applies `limit`, so we do the same. Quirk: with sort order
NONE and a non-key sort target, etcd fetches only limit+1 keys in key order and then sorts
those ascending by the target. `more` is true when keys were cut by `limit`. Our sort is stable (Go's sort.Sort is not;
ties come out in key order here).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kvstore.codec import REV_TOMBSTONE, decode_record, is_tombstone
from kvstore.errors import CompactedError, FutureRevisionError
from kvstore.revision import REV_BYTES, REV_MAX_SUFFIX, escape_key, pack_rev, rev_main
from kvstore.types import (
    Event,
    EventType,
    KeyValue,
    RangeRequest,
    RangeResponse,
    SortOrder,
    SortTarget,
)

__all__ = [
    "Dbs",
    "check_read_revision",
    "events_between",
    "get_kv",
    "in_range",
    "iter_live",
    "latest_raw",
    "range_request",
]

_MAIN8 = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class Dbs:
    """Handles of the named LMDB databases (py-lmdb has no type stubs, hence Any)."""

    key: Any
    rev: Any
    meta: Any
    lease: Any
    lease_keys: Any


def latest_raw(cur: Any, enck: bytes, max_main: int | None) -> tuple[bytes, bytes] | None:
    """The last stored version (maybe a tombstone) of escaped key `enck` with main <= max_main."""
    bound = enck + (REV_MAX_SUFFIX if max_main is None else pack_rev(max_main + 1, 0))
    found = cur.prev() if cur.set_range(bound) else cur.last()
    if not found:
        return None
    k: bytes = cur.key()
    if len(k) != len(enck) + REV_BYTES or not k.startswith(enck):
        return None
    return k, cur.value()


def to_kv(key: bytes, lmdb_key: bytes, raw: bytes) -> KeyValue:
    create_revision, version, lease, value = decode_record(raw)
    return KeyValue(key, create_revision, rev_main(lmdb_key), version, value, lease)


def get_kv(cur: Any, key: bytes, max_main: int | None) -> KeyValue | None:
    """The live version of `key` as of max_main (None: the newest), or None."""
    found = latest_raw(cur, escape_key(key), max_main)
    if found is None or is_tombstone(found[1]):
        return None
    return to_kv(key, found[0], found[1])


def iter_live(
    cur: Any, *, key: bytes, range_end: bytes, max_main: int
) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(escaped key, lmdb key, record) of each key live at max_main in etcd range [key, range_end).

    range_end b"" means the single key, b"\\x00" means "every key >= key".
    """
    if range_end == b"":
        enck = escape_key(key)
        found = latest_raw(cur, enck, max_main)
        if found is not None and not is_tombstone(found[1]):
            yield enck, found[0], found[1]
        return
    lo = escape_key(key)
    hi = None if range_end == b"\x00" else escape_key(range_end)
    if hi is not None and hi <= lo:
        return
    if not cur.set_range(lo):
        return
    max8 = _MAIN8.pack(max_main)
    group = b""
    cand_k = cand_v = b""
    # Versions of one key are adjacent and in revision order: remember the last one <= max_main
    # and emit it when the next key starts.
    for k, v in cur.iternext():
        if hi is not None and k >= hi:
            break
        g = k[:-REV_BYTES]
        if g != group:
            if cand_k and not is_tombstone(cand_v):
                yield group, cand_k, cand_v
            group, cand_k, cand_v = g, b"", b""
        if k[-REV_BYTES:-9] <= max8:
            cand_k, cand_v = k, v
    if cand_k and not is_tombstone(cand_v):
        yield group, cand_k, cand_v


def in_range(k: bytes, key: bytes, range_end: bytes) -> bool:
    if range_end == b"":
        return k == key
    if range_end == b"\x00":
        return k >= key
    return key <= k < range_end


def check_read_revision(revision: int, *, current: int, compact: int) -> int:
    """The main revision a read at `revision` sees, or the etcd error for it."""
    if revision > current:
        raise FutureRevisionError()
    if revision <= 0:
        return current
    if revision < compact:
        raise CompactedError()
    return revision


_SORT_KEYS = {
    SortTarget.KEY: lambda kv: kv.key,
    SortTarget.VERSION: lambda kv: kv.version,
    SortTarget.CREATE: lambda kv: kv.create_revision,
    SortTarget.MOD: lambda kv: kv.mod_revision,
    SortTarget.VALUE: lambda kv: kv.value,
}


def range_request(cur: Any, req: RangeRequest, *, current: int, compact: int) -> RangeResponse:
    """etcd's Range over the `key` cursor at the view whose revision is `current`."""
    max_main = check_read_revision(req.revision, current=current, compact=compact)
    filtered = bool(
        req.min_mod_revision
        or req.max_mod_revision
        or req.min_create_revision
        or req.max_create_revision
    )
    if req.range_end == b"" and not filtered:
        # One key: no page to cut, nothing to sort (the common Get, kept short).
        found = latest_raw(cur, escape_key(req.key), max_main)
        if found is None or is_tombstone(found[1]):
            return RangeResponse((), False, 0, current)
        if req.count_only:
            return RangeResponse((), False, 1, current)
        kv = to_kv(req.key, found[0], found[1])
        if req.keys_only:
            kv = KeyValue(kv.key, kv.create_revision, kv.mod_revision, kv.version, b"", kv.lease)
        return RangeResponse((kv,), False, 1, current)
    # etcd decides whether to fetch everything on the *requested* order, before it turns
    # NONE into ASCEND for a non-key target: with NONE, limit+1 keys (in key order) are
    # fetched first and only those are sorted (verified against etcd 3.4.23).
    fetch_all = filtered or req.sort_order != SortOrder.NONE
    sort_order = req.sort_order
    if req.sort_target != SortTarget.KEY and sort_order == SortOrder.NONE:
        sort_order = SortOrder.ASCEND
    want = 0 if req.count_only else (0 if fetch_all or req.limit <= 0 else req.limit + 1)
    kvs: list[KeyValue] = []
    count = 0
    for _, lk, raw in iter_live(cur, key=req.key, range_end=req.range_end, max_main=max_main):
        count += 1
        if req.count_only or (want and len(kvs) >= want):
            continue
        # The user key is recovered from the escaped form only for keys actually returned.
        kvs.append(to_kv(_unescape_from(lk), lk, raw))
    if req.count_only:
        return RangeResponse((), False, count, current)
    if filtered:
        kvs = [kv for kv in kvs if _passes_filters(kv, req)]
    if sort_order != SortOrder.NONE:
        kvs.sort(key=_SORT_KEYS[req.sort_target], reverse=sort_order == SortOrder.DESCEND)
    more = False
    if req.limit > 0 and len(kvs) > req.limit:
        kvs = kvs[: req.limit]
        more = True
    if req.keys_only:
        kvs = [KeyValue(kv.key, kv.create_revision, kv.mod_revision, kv.version, b"", kv.lease)
               for kv in kvs]
    return RangeResponse(tuple(kvs), more, count, current)


def _unescape_from(lmdb_key: bytes) -> bytes:
    return lmdb_key[: -REV_BYTES - 2].replace(b"\x00\xff", b"\x00")


def _passes_filters(kv: KeyValue, req: RangeRequest) -> bool:
    if req.max_mod_revision and kv.mod_revision > req.max_mod_revision:
        return False
    if req.min_mod_revision and kv.mod_revision < req.min_mod_revision:
        return False
    if req.max_create_revision and kv.create_revision > req.max_create_revision:
        return False
    return not (req.min_create_revision and kv.create_revision < req.min_create_revision)


def events_between(
    txn: Any,
    dbs: Dbs,
    *,
    start: int,
    end: int,
    key: bytes,
    range_end: bytes,
    limit: int,
    compact: int = -1,
) -> list[Event]:
    """Events with start <= main <= end for keys in range, in (main, sub) order, prev_kv filled.

    prev_kv is what etcd's watch sends: the key's live version at main - 1 (a Range at the
    previous revision), None for a create event (version 1), and None when main - 1 is below
    the compact revision (etcd's Range fails there; physically those versions may or may not
    be gone yet, so we never look).

    At most `limit` events, but a main revision is never split: the result stops before the
    first revision that would not fit entirely (a single revision larger than `limit` is
    returned whole, so the caller always makes progress).
    """
    rcur = txn.cursor(db=dbs.rev)
    kcur = txn.cursor(db=dbs.key)
    out: list[Event] = []
    pending: list[Event] = []
    pending_main = -1
    if not rcur.set_range(pack_rev(start, 0)):
        return out
    for rk, rv in rcur.iternext():
        main = rev_main(rk)
        if main > end:
            break
        if main != pending_main:
            if pending:
                if out and len(out) + len(pending) > limit:
                    return out
                out.extend(pending)
                pending = []
                if len(out) >= limit:
                    return out
            pending_main = main
        ukey = bytes(rv[1:])
        if not in_range(ukey, key, range_end):
            continue
        enck = escape_key(ukey)
        if rv[0] == REV_TOMBSTONE:
            kv = KeyValue(ukey, 0, main, 0, b"", 0)
            prev = None if main - 1 < compact else get_kv(kcur, ukey, main - 1)
            pending.append(Event(EventType.DELETE, kv, prev))
        else:
            kv = to_kv(ukey, enck + rk, txn.get(enck + rk, db=dbs.key))
            # etcd's watch gives a create event (version 1) no prev_kv, whatever came before.
            no_prev = kv.version == 1 or main - 1 < compact
            prev = None if no_prev else get_kv(kcur, ukey, main - 1)
            pending.append(Event(EventType.PUT, kv, prev))
    if pending and not (out and len(out) + len(pending) > limit):
        out.extend(pending)
    return out
