"""Physical compaction (batched) and the KV hashes used for corruption checks.

Compaction at revision C (etcd mvcc/kvstore_compaction.go) keeps, for every key, only the
latest version with main <= C, and not even that one when it is a tombstone older than C;
versions at C itself and above are untouched. Keeping everything *at* C (tombstones too) is
etcd's fix for watches losing a delete event around compaction (etcd-io/etcd#18089, fixed
by #18274 "keep tombstone if revision == compactAtRev", backported to 3.4 and 3.5): a
watcher told "compacted at C" re-watches from C, and `events_since(C)` must still hold every
event of revision C. (Removing the last revision's tombstone also made etcd's revision go
back after a restart, #17780; our revision lives in `meta`, so it never depends on what
compaction keeps.)
The logical part (reads below C fail from now on) happens in the apply transaction that
records `compact_revision`. The physical part walks the `rev` database in revision order
from the saved cursor, over main < C, in LMDB write transactions of at most `batch_limit`
revisions (etcd's --experimental-compaction-batch-limit, default 1000), so a large
compaction never holds one huge transaction. The cursor is saved in `meta` in each batch's
transaction, so a crash resumes where it stopped (Store() finishes it on open, or the
node through run_pending_compaction when compact_inline=False).

Walking in revision order means that when we look at a version, every older version of
the same key has already been decided, and "superseded" is simply: the next version of the
same key exists and has main <= C.

Hashes: crc32c (Castagnoli, as etcd) over LMDB keys and values.
* `hash_kv(rev)` covers the `key` database entries with main <= rev that survive a
  compaction at the current compact revision, plus the compact revision itself: it does not
  depend on how far the physical compaction has progressed, and two replicas that applied
  the same entries agree even if one of them has not finished compacting.
* `hash_all()` covers every entry of the key, rev, lease and lease_keys databases (not
  `meta`, which holds member-local bookkeeping such as the compaction cursor).
"""

from __future__ import annotations

import struct
from typing import Any

import crc32c

from kvstore.codec import REV_TOMBSTONE, is_tombstone, pack_u64
from kvstore.errors import CorruptRecordError
from kvstore.revision import REV_BYTES, escape_key, pack_rev
from kvstore.view import Dbs

__all__ = [
    "META_COMPACT_CURSOR",
    "META_COMPACT_FINISHED",
    "compact_batch",
    "hash_all",
    "hash_kv",
]

META_COMPACT_CURSOR = b"compact_cursor"
META_COMPACT_FINISHED = b"compact_finished"
_MAIN8 = struct.Struct(">Q")


def compact_batch(txn: Any, dbs: Dbs, *, compact_revision: int, batch_limit: int) -> bool:
    """Compact up to `batch_limit` revisions from the saved cursor; True when finished."""
    start = txn.get(META_COMPACT_CURSOR, db=dbs.meta) or pack_rev(0, 0)
    limit8 = _MAIN8.pack(compact_revision)
    rcur = txn.cursor(db=dbs.rev)
    kcur = txn.cursor(db=dbs.key)
    done = not rcur.set_range(start)
    n = 0
    while not done and n < batch_limit:
        rk = bytes(rcur.key())
        if rk[:8] >= limit8:  # revision C itself is kept whole (module docstring)
            done = True
            break
        rv = bytes(rcur.value())
        ukey = rv[1:]
        enck = escape_key(ukey)
        full = enck + rk
        if not kcur.set_key(full):
            raise CorruptRecordError(f"rev {rk.hex()} has no key record")
        superseded = False
        if kcur.next():
            nk = kcur.key()
            superseded = len(nk) == len(full) and nk.startswith(enck) and nk[-REV_BYTES:-9] <= limit8
        if superseded or rv[0] == REV_TOMBSTONE:
            txn.delete(full, db=dbs.key)
            done = not rcur.delete()  # moves to the next entry
            if not done and rcur.key() == b"":
                done = True
        else:
            done = not rcur.next()
        n += 1
    if done:
        txn.delete(META_COMPACT_CURSOR, db=dbs.meta)
        txn.put(META_COMPACT_FINISHED, pack_u64(compact_revision), db=dbs.meta)
    else:
        txn.put(META_COMPACT_CURSOR, bytes(rcur.key()), db=dbs.meta)
    return done


def hash_kv(txn: Any, dbs: Dbs, *, revision: int, compact_revision: int) -> int:
    """crc32c of the versions with main <= revision that survive compaction at compact_revision.

    Survivors: every version above C or at C; below C, only a key's newest version, and only
    if no version at C supersedes it and it is not a tombstone.
    """
    rev8 = _MAIN8.pack(revision)
    c8 = _MAIN8.pack(max(compact_revision, 0))
    h = crc32c.crc32c(b"key")
    group = b""
    pending: tuple[bytes, bytes] | None = None  # the newest version below C of this key
    for k, v in txn.cursor(db=dbs.key).iternext():
        g = k[:-REV_BYTES]
        if g != group:
            if pending is not None and not is_tombstone(pending[1]):
                h = crc32c.crc32c(pending[1], crc32c.crc32c(pending[0], h))
            group, pending = g, None
        m8 = k[-REV_BYTES:-9]
        if m8 > rev8:
            continue
        if m8 < c8:
            pending = (k, v)
            continue
        if pending is not None:
            if m8 > c8 and not is_tombstone(pending[1]):
                h = crc32c.crc32c(pending[1], crc32c.crc32c(pending[0], h))
            pending = None  # (a version at C supersedes it)
        h = crc32c.crc32c(v, crc32c.crc32c(k, h))
    if pending is not None and not is_tombstone(pending[1]):
        h = crc32c.crc32c(pending[1], crc32c.crc32c(pending[0], h))
    h = crc32c.crc32c(struct.pack(">q", compact_revision), h)
    return int(h)


def hash_all(txn: Any, dbs: Dbs) -> int:
    h = 0
    for name, db in ((b"key", dbs.key), (b"rev", dbs.rev), (b"lease", dbs.lease),
                     (b"lease_keys", dbs.lease_keys)):
        h = crc32c.crc32c(name, h)
        for k, v in txn.cursor(db=db).iternext():
            h = crc32c.crc32c(v, crc32c.crc32c(k, h))
    return int(h)
