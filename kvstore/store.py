"""Store: kvstore's MVCC state machine on one LMDB environment.

Theory of operation
-------------------
The environment lives at `<data_dir>/member/kv/` and holds five named databases:

    key        escape(user key) + rev17 -> record   every version of every key, tombstones too
    rev        rev17 -> marker + user key            the same versions in revision order
    meta       revision, compact_revision, applied index/term, schema, compaction cursor
    lease      lease ID -> [ttl, remaining_ttl]
    lease_keys lease ID + user key -> b""

(layouts: revision.py, codec.py). There is no in-memory key index: the `key` database *is*
the index (view.py), so opening a store with a million keys reads a few meta values and is
ready at once, and the process RSS does not grow with the key count.

Writes come only from `apply_batch` (raft committed entries, in index order). One batch is
ONE LMDB write transaction, which also stores the applied raft index and term: after a
crash, the entries the WAL replays that are <= the stored index return None and change
nothing (idempotent replay). A failpoint "apply.before_commit" sits just before the commit.
Physical compaction runs after the commit in its own small transactions (compaction.py):
inline at the end of apply_batch by default, or, with `compact_inline=False`, whenever the
node calls `run_pending_compaction(batches_max=...)` (e.g. a few batches between applies).
Reads are correct either way: versions below the compact revision are unreadable at once.

Readers (`range`, `events_since`, hashes, lease reads) each open a short LMDB read txn and
read the revision and compact revision from `meta` inside it, so they always see one
consistent committed state; any number of threads may read while one thread applies.

Durability: with `durable=True` (default) every commit is fsynced. With `durable=False`
commits skip fsync (MDB_NOSYNC/NOMETASYNC): a *process* crash loses nothing (the pages are
in the OS page cache), but an OS crash or power loss may lose the last commits or, LMDB
warns, corrupt the file. The node relies on its WAL: it must call `sync()` before it
releases WAL segments or takes a snapshot, and after an OS crash with durable=False it
should rebuild from the last snapshot + WAL rather than trust this file.

Write map (`writemap=True`, off by default): LMDB then writes pages straight into its
shared memory map instead of copying them out with pwrite at commit, which saves about a
quarter of the CPU of an apply batch on a large, randomly written store (measured: 60k vs
47k puts/s in CPU time while loading 1M keys). The costs, why it is opt-in: a stray write
through the map can corrupt the file (no protection from the read-only mapping), the file
is sparse up to the map size, and every process opening the environment must use the same
setting. With durable=False it also sets MDB_MAPASYNC (same guarantees as NOSYNC).

Map size: LMDB needs a map size up front. We start at `map_size_bytes` (default 256 MiB,
it is only address space) and double it on MapFullError, retrying the batch. Resizing needs
no transaction open in this process, so every LMDB use enters a small gate (`gate.Gate`)
shared, and resize/defragment/close take it exclusively.

Space quota: `quota_bytes` (etcd's --quota-backend-bytes, default 2 GiB) bounds the LMDB
in-use size. A put, a txn that may put, or a lease grant fails with NoSpaceError, while
deletes, reads and compaction still work, when
* `quota_at_apply` is set (the default) and the request would push the in-use size past the
  quota (the node then raises the NOSPACE alarm), or
* `nospace_alarm` is set (the node sets it when the replicated alarm entry is applied, on
  every replica alike: etcd's applierV3Capped).
`check_quota(request)` makes the same size test without applying anything, for the node to
call before proposing (etcd's quotaKVServer front door).
Caveat of the size test at apply time: the in-use size differs between replicas (a
defragmented member, or one restored from a compacted snapshot, uses fewer pages), so near
the quota one replica could refuse an entry another accepts, and their revisions would
diverge. A multi-member deployment should run with `quota_at_apply=False`, call
`check_quota` before proposing and rely on the replicated alarm at apply time.

Read API for the watch hub
--------------------------
* `current_revision` -> int: the last committed revision (1 for a fresh store).
* `compact_revision` -> int: the last compaction's revision, 0 if never compacted
  (`hash_kv` reports -1 in that case, as etcd does).
* `events_since(start_revision, *, key, range_end=b"", end_revision=0, limit=1000)`:
  events with start_revision <= mod_revision <= end_revision (0: current) for keys in the
  etcd range [key, range_end), in (main, sub) order, prev_kv filled as etcd's watch does
  (the key's live version at the previous revision; None for a create, or when that
  revision is compacted). At most `limit` events, but a main revision is never split (a
  single revision with more events than `limit` comes whole). Raises CompactedError when
  start_revision < compact revision. A start *at* the compact revision is served, as etcd
  serves it, and complete: compaction keeps every version at its own revision, tombstones
  included (compaction.py), so a watcher cancelled with compact_revision=C that re-watches
  from C misses nothing.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from kvstore import lease as lease_ops
from kvstore.apply import META_COMPACT_REVISION, META_REVISION, Limits, WriteTxn
from kvstore.codec import pack_u64, unpack_u64
from kvstore.compaction import META_COMPACT_FINISHED, compact_batch, hash_all, hash_kv
from kvstore.errors import (
    CompactedError,
    FutureRevisionError,
    KvError,
    NoSpaceError,
    StorageError,
    StoreClosedError,
    invariant,
)
from kvstore.failpoint import failpoint
from kvstore.gate import Gate, fsync_dir
from kvstore.txn import check_request, put_cost, txn_cost
from kvstore.types import (
    ApplyResult,
    Event,
    HashKVResponse,
    Lease,
    LeaseGrantRequest,
    LeaseLeasesResponse,
    LeaseTimeToLiveResponse,
    PutRequest,
    RangeRequest,
    RangeResponse,
    Request,
    TxnRequest,
)
from kvstore.view import Dbs, events_between, range_request

__all__ = ["SCHEMA_VERSION", "Store"]

SCHEMA_VERSION = 1
_META_SCHEMA = b"schema"
_META_APPLIED_INDEX = b"applied_index"
_META_APPLIED_TERM = b"applied_term"
_MAP_GROW_ATTEMPTS = 16
_DATA_FILE = "data.mdb"
_LOCK_FILE = "lock.mdb"

_OPEN_PATHS: set[str] = set()
_OPEN_LOCK = threading.Lock()

T = TypeVar("T")
ApplyOutcome = ApplyResult | KvError | None


def _meta_int(txn: Any, dbs: Dbs, name: bytes, default: int) -> int:
    raw = txn.get(name, db=dbs.meta)
    return default if raw is None else unpack_u64(raw)


class Store:
    """The MVCC key-value state machine (see the module docstring)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        durable: bool = True,
        quota_bytes: int = 2 * 1024**3,
        max_txn_ops: int = 128,
        min_lease_ttl_s: int = 2,
        compaction_batch_limit: int = 1000,
        map_size_bytes: int = 256 * 1024**2,
        compact_inline: bool = True,
        quota_at_apply: bool = True,
        writemap: bool = False,
    ) -> None:
        self.path = Path(data_dir) / "member" / "kv"
        self.path.mkdir(parents=True, exist_ok=True)
        self.durable = durable
        self.writemap = writemap
        self.limits = Limits(
            max_txn_ops=max_txn_ops,
            min_lease_ttl_s=min_lease_ttl_s,
            quota_bytes=quota_bytes,
            quota_at_apply=quota_at_apply,
        )
        self.compaction_batch_limit = compaction_batch_limit
        self.compact_inline = compact_inline
        self.nospace_alarm = False
        self._map_size_bytes = map_size_bytes
        self._gate = Gate()
        self._env: Any = None
        self._closed = False
        self._key = str(self.path.resolve())
        with _OPEN_LOCK:
            # LMDB forbids opening one environment twice in a process (it would break its
            # locks and, with them, reader tracking): fail loudly instead.
            if self._key in _OPEN_PATHS:
                raise StorageError(f"{self.path} is already open in this process")
            _OPEN_PATHS.add(self._key)
        try:
            self._open_env()
        except BaseException:
            with _OPEN_LOCK:
                _OPEN_PATHS.discard(self._key)
            raise
        if (
            compact_inline
            and self._compact_revision >= 0
            and self._finished_compact != self._compact_revision
        ):
            # A crash interrupted the last physical compaction. (With compact_inline=False
            # the node resumes it through run_pending_compaction, keeping open fast.)
            self.run_pending_compaction()

    # --- lifecycle ------------------------------------------------------------------------

    def _open_env(self) -> None:
        env = lmdb.open(
            str(self.path),
            map_size=self._map_size_bytes,
            subdir=True,
            max_dbs=8,
            sync=self.durable,
            metasync=self.durable,
            writemap=self.writemap,
            map_async=self.writemap and not self.durable,
            readahead=False,
            meminit=False,
        )
        self._map_size_bytes = max(self._map_size_bytes, int(env.info()["map_size"]))
        with env.begin(write=True) as txn:
            self._dbs = Dbs(
                key=env.open_db(b"key", txn=txn),
                rev=env.open_db(b"rev", txn=txn),
                meta=env.open_db(b"meta", txn=txn),
                lease=env.open_db(b"lease", txn=txn),
                lease_keys=env.open_db(b"lease_keys", txn=txn),
            )
            dbs = self._dbs
            schema = txn.get(_META_SCHEMA, db=dbs.meta)
            if schema is None:
                txn.put(_META_SCHEMA, pack_u64(SCHEMA_VERSION), db=dbs.meta)
                txn.put(META_REVISION, pack_u64(1), db=dbs.meta)  # a fresh store is at 1
            elif unpack_u64(schema) != SCHEMA_VERSION:
                env.close()
                raise StorageError(f"unsupported schema {unpack_u64(schema)} in {self.path}")
            self._load_meta(txn)
        self._env = env
        self._psize = int(env.stat()["psize"])
        self._in_use = self._in_use_bytes()

    def _load_meta(self, txn: Any) -> None:
        dbs = self._dbs
        self._revision = _meta_int(txn, dbs, META_REVISION, 1)
        # -1 = never compacted (etcd's compactMainRev starts at -1).
        raw = txn.get(META_COMPACT_REVISION, db=dbs.meta)
        self._compact_revision = -1 if raw is None else unpack_u64(raw)
        self._finished_compact = _meta_int(txn, dbs, META_COMPACT_FINISHED, 0)
        self._applied_index = _meta_int(txn, dbs, _META_APPLIED_INDEX, 0)
        self._applied_term = _meta_int(txn, dbs, _META_APPLIED_TERM, 0)

    def close(self) -> None:
        if self._closed:
            return
        self._gate.lock()
        try:
            self._closed = True
            self._env.close()
            with _OPEN_LOCK:
                _OPEN_PATHS.discard(self._key)
        finally:
            self._gate.unlock()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sync(self) -> None:
        """Force everything committed so far to disk (needed with durable=False)."""
        self._read(lambda txn: self._env.sync(True))

    flush = sync

    # --- state ----------------------------------------------------------------------------

    @property
    def current_revision(self) -> int:
        return self._revision

    @property
    def compact_revision(self) -> int:
        """Last compaction revision; 0 if the store was never compacted."""
        return max(self._compact_revision, 0)

    @property
    def applied_index(self) -> int:
        return self._applied_index

    @property
    def applied_term(self) -> int:
        return self._applied_term

    @property
    def db_size_bytes(self) -> int:
        """Size of the LMDB file on disk (etcd's dbSize).

        With writemap LMDB extends the file (sparsely) to the whole map size, so the pages
        actually allocated on disk are reported instead.
        """
        st = os.stat(self.path / _DATA_FILE)
        return min(st.st_size, st.st_blocks * 512) if self.writemap else st.st_size

    @property
    def db_size_in_use_bytes(self) -> int:
        """Pages LMDB has ever used (etcd's dbSizeInUse); shrinks only by defragment().
        Only a write transaction changes it, so it is read after each one (and at open)."""
        return self._in_use

    def _in_use_bytes(self) -> int:
        # Caller holds the gate (shared or exclusive).
        return (int(self._env.info()["last_pgno"]) + 1) * self._psize

    # --- the gate and transactions --------------------------------------------------------

    def _read(self, fn: Callable[[Any], T]) -> T:
        self._gate.enter()
        try:
            if self._closed:
                raise StoreClosedError()
            with self._env.begin() as txn:
                return fn(txn)
        finally:
            self._gate.exit()

    def _write(self, fn: Callable[[Any], T]) -> T:
        """Run fn in a write txn; on MapFullError grow the map and run it again."""
        for _ in range(_MAP_GROW_ATTEMPTS):
            self._gate.enter()
            try:
                if self._closed:
                    raise StoreClosedError()
                txn = self._env.begin(write=True)
                try:
                    result = fn(txn)
                    txn.commit()
                    self._in_use = self._in_use_bytes()
                    return result
                except BaseException:
                    txn.abort()
                    raise
            except lmdb.MapFullError:
                pass
            finally:
                self._gate.exit()
            self._grow_map()
        raise StorageError(f"LMDB map still full at {self._map_size_bytes} bytes")

    def _grow_map(self) -> None:
        self._gate.lock()
        try:
            self._map_size_bytes *= 2
            self._env.set_mapsize(self._map_size_bytes)
        finally:
            self._gate.unlock()

    # --- apply ----------------------------------------------------------------------------

    def apply(self, index: int, term: int, request: Request) -> ApplyOutcome:
        """Apply one committed entry; see apply_batch."""
        return self.apply_batch([(index, term, request)])[0]

    def apply_batch(self, items: Sequence[tuple[int, int, Request]]) -> list[ApplyOutcome]:
        """Apply committed entries (increasing raft index) in ONE LMDB write transaction.

        Per item: None if index <= applied index (already applied: replay after a crash),
        the KvError of a failed request (the batch carries on), else an ApplyResult.
        """
        state: dict[str, Any] = {}

        def body(txn: Any) -> list[ApplyOutcome]:
            dbs = self._dbs
            applied_index = _meta_int(txn, dbs, _META_APPLIED_INDEX, 0)
            applied_term = _meta_int(txn, dbs, _META_APPLIED_TERM, 0)
            w = WriteTxn(
                txn,
                dbs,
                revision=_meta_int(txn, dbs, META_REVISION, 1),
                compact_revision=self._compact_revision,
                limits=self.limits,
                size_in_use_bytes=self._in_use,
                nospace_alarm=self.nospace_alarm,
            )
            results: list[ApplyOutcome] = []
            for index, term, request in items:
                if index <= applied_index:
                    results.append(None)
                    continue
                try:
                    results.append(w.apply(index, request))
                except KvError as e:
                    if isinstance(e, StorageError):
                        raise
                    results.append(e)
                if term < applied_term:  # (no message string built on the hot path)
                    invariant(False, f"term went back at index {index}")
                applied_index, applied_term = index, term
            w.finish()
            txn.put(_META_APPLIED_INDEX, pack_u64(applied_index), db=dbs.meta)
            txn.put(_META_APPLIED_TERM, pack_u64(applied_term), db=dbs.meta)
            failpoint("apply.before_commit")
            state.update(
                revision=w.revision,
                compact=w.compact_revision,
                scheduled=w.compaction_scheduled,
                applied=(applied_index, applied_term),
            )
            return results

        results = self._write(body)
        invariant(state["revision"] >= self._revision, "revision went back")
        self._revision = state["revision"]
        self._compact_revision = state["compact"]
        self._applied_index, self._applied_term = state["applied"]
        if state["scheduled"] and self.compact_inline:
            self.run_pending_compaction()
        return results

    def run_pending_compaction(self, *, batches_max: int | None = None) -> bool:
        """Delete superseded versions in batches; True when no compaction work is left."""
        target = self._compact_revision
        n = 0
        while self._finished_compact != target:
            if batches_max is not None and n >= batches_max:
                return False
            done = self._write(
                lambda txn: compact_batch(
                    txn,
                    self._dbs,
                    compact_revision=target,
                    batch_limit=self.compaction_batch_limit,
                )
            )
            n += 1
            if done:
                self._finished_compact = target
        return True

    def check_quota(self, request: Request) -> None:
        """NoSpaceError if `request` may add data past `quota_bytes` (call before proposing)."""
        if isinstance(request, PutRequest):
            cost = put_cost(request)
        elif isinstance(request, TxnRequest):
            cost = txn_cost(request)
        elif isinstance(request, LeaseGrantRequest):
            cost = lease_ops.LEASE_GRANT_COST_BYTES
        else:
            return
        if cost and self.db_size_in_use_bytes + cost > self.limits.quota_bytes:
            raise NoSpaceError()

    # --- reads ----------------------------------------------------------------------------

    def _view_revisions(self, txn: Any) -> tuple[int, int]:
        dbs = self._dbs
        raw = txn.get(META_COMPACT_REVISION, db=dbs.meta)
        compact = -1 if raw is None else unpack_u64(raw)
        return _meta_int(txn, dbs, META_REVISION, 1), compact

    def range(self, req: RangeRequest) -> RangeResponse:
        """etcd's Range on the latest committed state (serializable: local, no ReadIndex)."""
        check_request(req, max_txn_ops=self.limits.max_txn_ops)

        def body(txn: Any) -> RangeResponse:
            current, compact = self._view_revisions(txn)
            return range_request(
                txn.cursor(db=self._dbs.key), req, current=current, compact=compact
            )

        return self._read(body)

    def events_since(
        self,
        start_revision: int,
        *,
        key: bytes,
        range_end: bytes = b"",
        end_revision: int = 0,
        limit: int = 1000,
    ) -> list[Event]:
        """History for the watch hub; see "Read API for the watch hub" above."""

        def body(txn: Any) -> list[Event]:
            current, compact = self._view_revisions(txn)
            if start_revision < compact:
                raise CompactedError()
            end = current if end_revision <= 0 else min(end_revision, current)
            return events_between(
                txn,
                self._dbs,
                start=max(start_revision, 1),
                end=end,
                key=key,
                range_end=range_end,
                limit=max(limit, 1),
                compact=compact,
            )

        return self._read(body)

    def hash(self) -> int:
        """crc32c over all key, revision and lease data (etcd's Maintenance.Hash)."""
        return self._read(lambda txn: hash_all(txn, self._dbs))

    def hash_kv(self, revision: int = 0) -> HashKVResponse:
        """etcd's HashKV: hash of the MVCC versions <= revision (0: current)."""

        def body(txn: Any) -> HashKVResponse:
            current, compact = self._view_revisions(txn)
            rev = current if revision <= 0 else revision
            if revision > 0 and revision <= compact:
                raise CompactedError()
            if rev > current:
                raise FutureRevisionError()
            h = hash_kv(txn, self._dbs, revision=rev, compact_revision=compact)
            return HashKVResponse(h, compact, current)

        return self._read(body)

    # --- leases (reads) -------------------------------------------------------------------

    def lease_time_to_live(
        self, lease_id: int, *, keys: bool = False, remaining_ttl_s: int | None = None
    ) -> LeaseTimeToLiveResponse:
        def body(txn: Any) -> LeaseTimeToLiveResponse:
            current, _ = self._view_revisions(txn)
            return lease_ops.time_to_live(
                txn, self._dbs, lease_id, keys=keys, remaining_ttl_s=remaining_ttl_s,
                revision=current,
            )

        return self._read(body)

    def lease_leases(self) -> LeaseLeasesResponse:
        def body(txn: Any) -> LeaseLeasesResponse:
            current, _ = self._view_revisions(txn)
            return LeaseLeasesResponse(lease_ops.lease_ids(txn, self._dbs), current)

        return self._read(body)

    def leases(self) -> list[Lease]:
        """All leases with TTL and checkpointed remaining TTL (to rebuild the expiry heap)."""
        return self._read(lambda txn: lease_ops.all_leases(txn, self._dbs))

    # --- snapshots and maintenance --------------------------------------------------------

    def snapshot_to(self, path: str | os.PathLike[str]) -> None:
        """Write a consistent, compacted copy of the LMDB file to `path` (fsynced)."""
        with open(path, "wb") as f:
            self.copy_to_fd(f.fileno())
            os.fsync(f.fileno())

    def copy_to_fd(self, fd: int) -> None:
        """Write a consistent, compacted copy of the LMDB file to the open descriptor `fd`,
        from its current offset (LMDB writes with write()), without fsync."""

        def body(txn: Any) -> None:
            self._env.copyfd(fd, compact=True)

        self._read(body)

    def rebase_applied(self, index: int, term: int) -> None:
        """Record (index, term) as the applied raft position, lower or higher than now.

        For a store restored into a NEW cluster (`kvctl snapshot restore`): its log starts
        again at `index`, and a higher old applied index would make the store skip the new
        cluster's entries as already applied."""

        def body(txn: Any) -> None:
            txn.put(_META_APPLIED_INDEX, pack_u64(index), db=self._dbs.meta)
            txn.put(_META_APPLIED_TERM, pack_u64(term), db=self._dbs.meta)

        self._write(body)
        self._applied_index, self._applied_term = index, term

    @staticmethod
    def restore_from(
        path: str | os.PathLike[str], data_dir: str | os.PathLike[str], *, move: bool = False
    ) -> None:
        """Install a snapshot_to() file as the store of `data_dir` (no Store may be open on it).

        With move=True the file itself (already durable) is renamed into place when it is on
        the same file system: a store of gigabytes is then not written a second time."""
        kv_dir = Path(data_dir) / "member" / "kv"
        kv_dir.mkdir(parents=True, exist_ok=True)
        with _OPEN_LOCK:
            if str(kv_dir.resolve()) in _OPEN_PATHS:
                raise StorageError(f"{kv_dir} is open in this process: close it first")
        tmp = kv_dir / (_DATA_FILE + ".restore")
        moved = False
        if move:
            try:
                os.replace(path, tmp)
                moved = True
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        if not moved:
            shutil.copyfile(path, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, kv_dir / _DATA_FILE)
        (kv_dir / _LOCK_FILE).unlink(missing_ok=True)
        fsync_dir(kv_dir)

    def defragment(self) -> None:
        """Rewrite the file without free pages (etcd's Defragment), then swap it in.

        LMDB's compacting copy runs inside a read transaction; the swap needs every reader
        of this process out, so it holds the gate exclusively for the copy and the rename
        (readers and the applier wait, as etcd blocks a member during defrag).
        """
        self._gate.lock()
        try:
            if self._closed:
                raise StoreClosedError()
            tmp_dir = self.path / "defrag.tmp"
            shutil.rmtree(tmp_dir, ignore_errors=True)
            tmp_dir.mkdir()
            self._env.copy(str(tmp_dir), compact=True)
            with open(tmp_dir / _DATA_FILE, "rb") as f:
                os.fsync(f.fileno())
            self._env.close()
            os.replace(tmp_dir / _DATA_FILE, self.path / _DATA_FILE)
            shutil.rmtree(tmp_dir, ignore_errors=True)
            fsync_dir(self.path)
            self._open_env()
        finally:
            self._gate.unlock()
