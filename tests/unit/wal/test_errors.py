"""errors.py: the documented tree and the always-on invariant."""

from __future__ import annotations

import pytest

import wal
from wal.errors import InvariantViolation, invariant


def test_every_public_error_derives_from_wal_error() -> None:
    names = [n for n in wal.__all__ if n.startswith("Wal") and n.endswith("Error")]
    assert names
    for name in names:
        assert issubclass(getattr(wal, name), wal.WalError), name
    assert issubclass(wal.WalSyncError, wal.WalFailedError)


def test_corrupt_error_names_file_offset_and_says_corrupt() -> None:
    err = wal.WalCorruptError("/x/0-0.wal", 123, "crc mismatch")
    assert "corrupt" in str(err) and "/x/0-0.wal" in str(err) and "123" in str(err)
    assert (err.path, err.offset) == ("/x/0-0.wal", 123)


def test_invariant_raises_even_under_optimisation() -> None:
    invariant(True, "fine")
    with pytest.raises(InvariantViolation, match="broken"):
        invariant(False, "broken")
    assert issubclass(InvariantViolation, AssertionError)


def test_public_surface_is_pinned() -> None:
    assert sorted(wal.__all__) == sorted(
        [
            "FORMAT_VERSION", "SEGMENT_BYTES_MAX_DEFAULT", "WALS_MAX_DEFAULT", "WAL", "HardState",
            "InvariantViolation", "ReadResult", "SegmentName", "SnapshotMarker", "WalCorruptError",
            "WalEntry", "WalError", "WalExistsError", "WalFailedError", "WalLockedError",
            "WalNotFoundError", "WalSnapshotMismatchError", "WalSnapshotNotFoundError",
            "WalSyncError", "WalUnsupportedVersionError", "valid_snapshot_markers",
        ]
    )
    for name in wal.__all__:
        assert hasattr(wal, name)
