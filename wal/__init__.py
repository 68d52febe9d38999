"""Write-ahead log: framed, CRC-chained records in preallocated segment files.

Typical use by the server (a sketch; see wal.py for the full contract):

    w = WAL.create(dir, metadata)                     # first start
    w = WAL.open(dir, snapshot=SnapshotMarker(i, t))  # restart, from the snapshot loaded
    result = w.read_all()                             # metadata, hard_state, entries
    w.save(hard_state, entries, sync=ready.must_sync) # one pwrite + one fdatasync
    w.save_snapshot_marker(SnapshotMarker(i, t))      # after the snapshot file is durable
    w.release_to(i)                                   # drop segments before it (keeps wals_max)
"""

from .errors import (
    InvariantViolation,
    WalCorruptError,
    WalError,
    WalExistsError,
    WalFailedError,
    WalLockedError,
    WalNotFoundError,
    WalSnapshotMismatchError,
    WalSnapshotNotFoundError,
    WalSyncError,
    WalUnsupportedVersionError,
)
from .record import FORMAT_VERSION, HardState, SnapshotMarker, WalEntry
from .segment import SEGMENT_BYTES_MAX_DEFAULT, SegmentName
from .wal import WAL, WALS_MAX_DEFAULT, ReadResult, valid_snapshot_markers

__all__ = [
    "FORMAT_VERSION",
    "SEGMENT_BYTES_MAX_DEFAULT",
    "WALS_MAX_DEFAULT",
    "WAL",
    "HardState",
    "InvariantViolation",
    "ReadResult",
    "SegmentName",
    "SnapshotMarker",
    "WalCorruptError",
    "WalEntry",
    "WalError",
    "WalExistsError",
    "WalFailedError",
    "WalLockedError",
    "WalNotFoundError",
    "WalSnapshotMismatchError",
    "WalSnapshotNotFoundError",
    "WalSyncError",
    "WalUnsupportedVersionError",
    "valid_snapshot_markers",
]
