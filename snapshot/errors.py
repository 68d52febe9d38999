"""Errors raised by the snapshot store, and the always-on `invariant` check.

    SnapshotError
     +-- SnapshotNotFoundError   no (valid) snapshot file matches the request
     +-- SnapshotCorruptError    a file fails its checks: bad magic or version, sizes that
                                 do not add up (truncated), CRC mismatch, undecodable
                                 metadata, or metadata that disagrees with the file name

Write failures surface as the `OSError` itself: a snapshot that could not be written was
never renamed into place, so nothing on disk changed, and the caller decides (the server
treats it as a storage fault and stops). Caller misuse raises `ValueError`.
`InvariantViolation` is an `AssertionError`: a bug in our code, never a disk fault.
"""

from __future__ import annotations


class SnapshotError(Exception):
    """Base class of every error the snapshot store raises on purpose."""


class SnapshotNotFoundError(SnapshotError):
    """No valid snapshot file matches the request."""


class SnapshotCorruptError(SnapshotError):
    """A snapshot file is damaged or is not a snapshot file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"snapshot: corrupt file {path}: {reason}")
        self.path = path
        self.reason = reason


class InvariantViolation(AssertionError):
    """A programmer error detected by `invariant` (kept under `python -O`)."""


def invariant(cond: bool, msg: str) -> None:
    """Always-on assertion for programmer errors (`assert` vanishes under -O)."""
    if not cond:
        raise InvariantViolation(msg)
