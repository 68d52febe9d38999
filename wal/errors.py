"""Errors raised by the write-ahead log, and the always-on `invariant` check.

Every error the WAL raises on purpose derives from `WalError`. Disk faults and corrupt
data are kept apart from caller misuse, which raises plain `ValueError` (saving an entry
that would leave an index gap, writing to a closed WAL). A torn tail of the last segment
is not an error at all: open() truncates it (repair.py) and carries on.

    WalError
     +-- WalCorruptError            open refused: CRC mismatch before the tail, missing
     |                              segment, index gap, undecodable record. The message
     |                              names the file and the byte offset and says "corrupt".
     +-- WalUnsupportedVersionError a segment written by a newer, unknown format version
     +-- WalSnapshotNotFoundError   open(snapshot=m): no marker for m.index in the WAL
     +-- WalSnapshotMismatchError   open(snapshot=m): the marker has another term
     +-- WalNotFoundError           open: the directory holds no segment
     +-- WalExistsError             create: the directory already holds segments
     +-- WalLockedError             another WAL object (or process) holds the directory
     +-- WalFailedError             any call after a fatal I/O error (fail-stop)
          +-- WalSyncError          the write or fdatasync itself failed (first report)

`InvariantViolation` is an `AssertionError`: a bug in our code, never a disk fault.
"""

from __future__ import annotations


class WalError(Exception):
    """Base class of every error the WAL raises on purpose."""


class WalCorruptError(WalError):
    """The WAL on disk cannot be trusted; opening it is refused."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"wal: {path} is corrupt at byte offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class WalUnsupportedVersionError(WalError):
    """A segment declares a WAL format version this code does not know."""


class WalSnapshotNotFoundError(WalError):
    """The snapshot the caller opens from has no marker in the WAL."""


class WalSnapshotMismatchError(WalError):
    """The WAL holds a marker at the snapshot's index but with a different term."""


class WalNotFoundError(WalError):
    """The WAL directory holds no segment file."""


class WalExistsError(WalError):
    """create() was pointed at a directory that already holds segment files."""


class WalLockedError(WalError):
    """Another WAL object holds the directory lock."""


class WalFailedError(WalError):
    """A previous I/O error made this WAL unusable; restart the process."""


class WalSyncError(WalFailedError):
    """Writing or fdatasync-ing the log failed. Never retried: the page cache state is unknown."""


class InvariantViolation(AssertionError):
    """A programmer error detected by `invariant` (kept under `python -O`)."""


def invariant(cond: bool, msg: str) -> None:
    """Always-on assertion for programmer errors (`assert` vanishes under -O)."""
    if not cond:
        raise InvariantViolation(msg)
