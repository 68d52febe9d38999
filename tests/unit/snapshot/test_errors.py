"""snapshot/errors.py: the documented tree, the invariant, and the pinned public surface."""

from __future__ import annotations

import pytest

import snapshot
from snapshot.errors import InvariantViolation, invariant


def test_tree() -> None:
    assert issubclass(snapshot.SnapshotNotFoundError, snapshot.SnapshotError)
    assert issubclass(snapshot.SnapshotCorruptError, snapshot.SnapshotError)
    err = snapshot.SnapshotCorruptError("/d/x.snap", "crc mismatch")
    assert "/d/x.snap" in str(err) and err.reason == "crc mismatch"


def test_invariant() -> None:
    invariant(True, "ok")
    with pytest.raises(InvariantViolation, match="bad"):
        invariant(False, "bad")


def test_public_surface_is_pinned() -> None:
    assert sorted(snapshot.__all__) == sorted(
        [
            "CHUNK_BYTES", "FORMAT_VERSION", "SNAPSHOTS_MAX_DEFAULT", "ConfState",
            "InvariantViolation", "SnapshotCorruptError", "SnapshotError", "SnapshotFile",
            "SnapshotMeta", "SnapshotName", "SnapshotNotFoundError", "Snapshotter",
        ]
    )
