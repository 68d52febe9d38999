"""A member's durable state: WAL + snapshot files + the raft log kept in memory.

Layout under the data dir (etcd's): `member/wal/` (wal package), `member/snap/` (snapshot
package), `member/kv/` (the LMDB store, opened by the node).

Bootstrap (first start) writes the bootstrap snapshot (index 1, term 1, the initial voters;
body = ClusterState) and a WAL whose first records are the metadata and the marker for that
snapshot. The WAL is built in `member/wal.tmp` and renamed into place last, so a crash
during bootstrap leaves no `member/wal` and the next start bootstraps again (as etcd does).

Recovery: the newest snapshot that verifies AND has a marker in the WAL, then the WAL after
it. Entries go back into a MemoryStorage; the node sets raft's `applied` to the snapshot
index, so every committed entry after it is re-delivered and re-applied idempotently.

Ordering (the Ready contract, raft/ready.py): `persist()` runs steps 1 and 2 on the disk
thread; `install()` then updates the MemoryStorage on the event-loop thread, because the
RawNode reads that storage and must never see it change under its feet.

Snapshots: `take_snapshot()` is called with the store already synced, so the snapshot
marker never gets ahead of what LMDB holds durably; only then are old WAL segments
released and the in-memory log compacted (keeping `catch_up_entries` for slow followers).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import msgpack

import snapshot as snap
import wal
from api.server.cluster_state import ClusterState
from raft import ConfState, Entry, EntryType, HardState, MemoryStorage, Ready, Snapshot
from raft.types import SnapshotMetadata

CATCH_UP_ENTRIES = 5000
CATCH_UP_BYTES = 8 * 1024 * 1024


class DataDirError(RuntimeError):
    """The data dir cannot be used (mismatching IDs, snapshot and WAL disagree...)."""


@dataclass(slots=True)
class Recovered:
    storage: MemoryStorage
    cluster: ClusterState
    snapshot_index: int
    snapshot_term: int
    fresh: bool
    # The identity recorded in the WAL at bootstrap; a restart ignores the bootstrap flags.
    cluster_id: int
    member_id: int


# The WAL stores entry types as etcd's raftpb numbers.
_WAL_TYPE = {EntryType.NORMAL: 0, EntryType.CONF_CHANGE: 1}
_ENTRY_TYPE = {v: k for k, v in _WAL_TYPE.items()}


def _to_wal_entry(e: Entry) -> wal.WalEntry:
    return wal.WalEntry(index=e.index, term=e.term, type=_WAL_TYPE[e.type], data=e.data)


def _from_wal_entry(e: wal.WalEntry) -> Entry:
    try:
        kind = _ENTRY_TYPE[e.type]
    except KeyError:
        raise DataDirError(f"WAL entry {e.index} has unknown type {e.type}") from None
    return Entry(term=e.term, index=e.index, type=kind, data=e.data)


class MemberDisk:
    """WAL and snapshot files of one member, plus the MemoryStorage the RawNode reads."""

    def __init__(self, data_dir: str, *, snapshots_max: int, wals_max: int) -> None:
        self.data_dir = data_dir
        self.member_dir = os.path.join(data_dir, "member")
        self.wal_dir = os.path.join(self.member_dir, "wal")
        self.snap_dir = os.path.join(self.member_dir, "snap")
        self._wals_max = max(1, wals_max)
        self.snapshotter = snap.Snapshotter(self.snap_dir, snapshots_max=max(1, snapshots_max))
        self.wal: wal.WAL | None = None
        self.storage = MemoryStorage()

    # ----------------------------------------------------------------- start-up

    def exists(self) -> bool:
        return os.path.isdir(self.wal_dir)

    def bootstrap(self, cluster: ClusterState, *, member_id: int, voters: tuple[int, ...]) -> Recovered:
        meta = snap.SnapshotMeta(index=1, term=1, conf_state=snap.ConfState(voters=voters))
        self.snapshotter.save(meta, cluster.encode())
        tmp = self.wal_dir + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        metadata = msgpack.packb([cluster.cluster_id, member_id])
        w = wal.WAL.create(tmp, metadata, wals_max=self._wals_max)
        # A marker counts only when a saved commit covers it (etcd's ValidSnapshotEntries).
        w.save(wal.HardState(term=1, vote=0, commit=1), [])
        w.save_snapshot_marker(wal.SnapshotMarker(index=1, term=1))
        w.close()
        os.rename(tmp, self.wal_dir)
        _fsync_dir(self.member_dir)
        return self.recover(expect_ids=(cluster.cluster_id, member_id), fresh=True)

    def bootstrap_join(self, cluster: ClusterState, *, member_id: int) -> Recovered:
        """First start of a member added to a running cluster: no log and no voters yet
        (the leader sends a snapshot); a snapshot at index 0 holds the fetched member list."""
        self.snapshotter.save(snap.SnapshotMeta(index=0, term=0), cluster.encode())
        tmp = self.wal_dir + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        w = wal.WAL.create(tmp, msgpack.packb([cluster.cluster_id, member_id]), wals_max=self._wals_max)
        w.save_snapshot_marker(wal.SnapshotMarker(index=0, term=0))
        w.close()
        os.rename(tmp, self.wal_dir)
        _fsync_dir(self.member_dir)
        return self.recover(expect_ids=(cluster.cluster_id, member_id), fresh=True)

    def recover(self, *, expect_ids: tuple[int, int] | None, fresh: bool = False) -> Recovered:
        markers = wal.valid_snapshot_markers(self.wal_dir)
        allowed = {(m.term, m.index) for m in markers}
        try:
            snap_file = self.snapshotter.newest_available(allowed)
        except snap.SnapshotNotFoundError as exc:
            raise DataDirError(
                f"no valid snapshot in {self.snap_dir} matches a snapshot marker in {self.wal_dir}"
            ) from exc
        body = self.snapshotter.read_body(snap_file)
        cluster = ClusterState.decode(body)
        m = snap_file.meta
        self.wal = wal.WAL.open(
            self.wal_dir, snapshot=wal.SnapshotMarker(index=m.index, term=m.term),
            wals_max=self._wals_max,
        )
        result = self.wal.read_all()
        cluster_id, member_id = msgpack.unpackb(result.metadata)
        if expect_ids is not None and expect_ids != (cluster_id, member_id):
            raise DataDirError(
                f"data dir {self.data_dir} belongs to member {member_id:x} of cluster "
                f"{cluster_id:x}, not member {expect_ids[1]:x} of cluster {expect_ids[0]:x}"
            )
        cs = ConfState(voters=m.conf_state.voters, learners=m.conf_state.learners)
        storage = MemoryStorage()
        if m.index > 0:
            storage.apply_snapshot(Snapshot(SnapshotMetadata(m.index, m.term, cs), body))
        hs = result.hard_state
        if (hs.term, hs.vote, hs.commit) != (0, 0, 0):
            storage.set_hard_state(HardState(term=hs.term, vote=hs.vote, commit=hs.commit))
        if result.entries:
            storage.append([_from_wal_entry(e) for e in result.entries])
        self.storage = storage
        return Recovered(storage, cluster, m.index, m.term, fresh, cluster_id, member_id)

    # ------------------------------------------------------------ Ready steps 1-2

    def persist(self, rd: Ready, *, snapshot_body: bytes | None = None) -> None:
        """Steps 1 and 2 of the Ready contract; runs on the disk thread. WAL errors propagate
        (WalSyncError is fatal: the caller stops the process).

        A snapshot from the leader (its store part already installed by the caller) is saved
        as a snapshot file with `snapshot_body` (the cluster state), then marked in the WAL
        before the entries that follow it."""
        w = self._wal()
        if rd.snapshot is not None:
            if snapshot_body is None:
                raise DataDirError("a snapshot to persist came without its body")
            m = rd.snapshot.metadata
            cs = m.conf_state
            self.snapshotter.save(
                snap.SnapshotMeta(index=m.index, term=m.term, conf_state=snap.ConfState(
                    voters=cs.voters, learners=cs.learners)),
                snapshot_body,
            )
            w.save_snapshot_marker(wal.SnapshotMarker(index=m.index, term=m.term))
        hs = rd.hard_state
        entries = [_to_wal_entry(e) for e in rd.entries]
        if hs is not None or entries:
            w.save(
                None if hs is None else wal.HardState(hs.term, hs.vote, hs.commit),
                entries,
                sync=rd.must_sync,
            )

    def install(self, rd: Ready, *, snapshot_body: bytes = b"") -> None:
        """Make the persisted Ready visible to the RawNode (event-loop thread)."""
        if rd.snapshot is not None:
            self.storage.apply_snapshot(Snapshot(rd.snapshot.metadata, snapshot_body))
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        if rd.entries:
            self.storage.append(rd.entries)

    # ---------------------------------------------------------------- snapshots

    def take_snapshot(self, *, index: int, conf_state: ConfState, body: bytes) -> None:
        """Save a snapshot at `index` (applied, with the store synced); runs on the disk thread."""
        term = self.storage.term(index)
        meta = snap.SnapshotMeta(
            index=index, term=term,
            conf_state=snap.ConfState(voters=conf_state.voters, learners=conf_state.learners),
        )
        self.snapshotter.save(meta, body)
        w = self._wal()
        w.save_snapshot_marker(wal.SnapshotMarker(index=index, term=term))
        w.release_to(index)

    def compact_log(self, index: int, *, conf_state: ConfState, body: bytes) -> None:
        """Record the snapshot for raft (sent to slow followers) and drop in-memory entries
        before `index - CATCH_UP_ENTRIES` (event-loop thread)."""
        self.storage.create_snapshot(index, conf_state, body)
        # Keep at most CATCH_UP_ENTRIES entries and CATCH_UP_BYTES for slow followers (etcd
        # keeps 5000 entries; the byte bound keeps RSS flat when entries are large).
        first = self.storage.first_index()
        compact_to = max(first, index - CATCH_UP_ENTRIES)
        kept_bytes = 0
        lo = index
        while lo > compact_to:
            kept_bytes += len(self.storage.entries(lo, lo + 1, 1 << 62)[0].data)
            if kept_bytes > CATCH_UP_BYTES:
                break
            lo -= 1
        if lo > first:
            self.storage.compact(lo)

    def close(self) -> None:
        if self.wal is not None:
            self.wal.close()
            self.wal = None

    def _wal(self) -> wal.WAL:
        if self.wal is None:
            raise DataDirError("the WAL is not open")
        return self.wal


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
