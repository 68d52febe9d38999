"""Raft snapshot files: atomic save, CRC-verified load, .broken quarantine, retention.

    snap = Snapshotter(dir)
    snap.save_from_file(SnapshotMeta(index, term, ConfState(voters, learners)), lmdb_copy)
    f = snap.newest_available({(m.term, m.index) for m in wal_markers})
    snap.copy_body_to(f, restore_path)
"""

from .errors import (
    InvariantViolation,
    SnapshotCorruptError,
    SnapshotError,
    SnapshotNotFoundError,
)
from .snapshotter import (
    CHUNK_BYTES,
    FORMAT_VERSION,
    SNAPSHOTS_MAX_DEFAULT,
    ConfState,
    SnapshotFile,
    SnapshotMeta,
    SnapshotName,
    Snapshotter,
)

__all__ = [
    "CHUNK_BYTES",
    "FORMAT_VERSION",
    "SNAPSHOTS_MAX_DEFAULT",
    "ConfState",
    "InvariantViolation",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotFile",
    "SnapshotMeta",
    "SnapshotName",
    "SnapshotNotFoundError",
    "Snapshotter",
]
