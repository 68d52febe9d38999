"""The write-ahead log: create, open (scan + verify + repair), save, sync, cut, release.

Theory of operation
-------------------
A WAL is a directory of segment files (segment.py) holding a chain of framed records
(record.py). One `WAL` object owns the directory (an exclusive flock on it) and appends
to the newest segment only.

Writing. `save(hard_state, entries)` only encodes into an in-memory buffer: entries
first, then the hard state, so a hard state on disk never refers to entries that are not.
`sync()` writes the whole buffer with one `pwrite` and makes it durable with one
`fdatasync` (group commit: many entries, one flush). `save(..., sync=True)` does both.
Nothing is durable, and nothing may be acknowledged, before `sync()` returns.

Cutting. After a sync that leaves the segment at or past `segment_bytes_max`, the segment
is truncated to its data (its preallocated tail is given back) and a new segment is
created atomically, named after the next entry index, starting with VERSION, CRC (the
chain value so far), METADATA and the latest HARD_STATE. So a segment exceeds the limit
by at most one sync's worth of records.

Failing. Any error while writing or syncing (including an `OSError` raised by the
`wal.before_fsync` / `wal.after_fsync` failpoints) raises `WalSyncError` and marks the
WAL failed: every later call raises `WalFailedError`. We never retry an fsync: after a
failed fsync the kernel may have dropped the dirty pages and a retry would "succeed"
without them (the PostgreSQL fsyncgate lesson). The process must exit and recover.

Opening. `open(dir, snapshot=m)` starts at the newest segment whose first index <= m.index,
checks that segment sequence numbers have no gap, and decodes every segment after it,
continuing the crc chain across files. Entries at or below m.index are skipped; an entry
with index i discards buffered entries >= i (a new leader overwrote them); an entry that
would leave a gap is corruption. A bad frame in any but the last segment is corruption; in
the last segment repair.py decides torn (truncate, open) or corrupt (refuse). The result
is kept for `read_all()`, and appending continues at the end of the last good frame.

Releasing. `release_to(index)` finds the newest snapshot marker <= index, and deletes the
oldest segments that lie wholly before the segment that an open from that marker would
start at, while more than `wals_max` segments remain (etcd's --max-wals: keep a few old
segments so an older snapshot can still be opened if the newest one turns out broken).
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from .decoder import SegmentScan, decode_segment
from .encoder import Encoder, segment_header
from .errors import (
    WalCorruptError,
    WalExistsError,
    WalFailedError,
    WalLockedError,
    WalNotFoundError,
    WalSnapshotMismatchError,
    WalSnapshotNotFoundError,
    WalSyncError,
    invariant,
)
from .failpoint import failpoint
from .record import FORMAT_VERSION, HardState, Metadata, SnapshotMarker, WalEntry
from .repair import find_frame_after, truncate_torn_tail
from .segment import (
    SEGMENT_BYTES_MAX_DEFAULT,
    SegmentName,
    create_segment,
    fsync_dir,
    list_segments,
    preallocate,
    read_segment,
    remove_temp_files,
    write_all,
)

WALS_MAX_DEFAULT = 5
_EMPTY_STATE = HardState(0, 0, 0)


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What open() read: metadata, the last hard state, and the entries after the snapshot."""

    metadata: bytes
    hard_state: HardState  # HardState(0, 0, 0) when none was ever saved
    entries: list[WalEntry]


@dataclass(slots=True)
class _Replay:
    """Accumulates records while segments are read (shared by open and snapshot listing)."""

    snap_index: int
    metadata: bytes | None = None
    hard_state: HardState = _EMPTY_STATE
    last_index: int | None = None  # index of the last entry or marker seen
    collect_entries: bool = True
    snapshot_found: SnapshotMarker | None = None
    markers: list[SnapshotMarker] = field(default_factory=list)
    entries: list[WalEntry] = field(default_factory=list)


def _lock_dir(dir_path: str) -> int:
    fd = os.open(dir_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WalLockedError(f"wal: {dir_path} is in use by another WAL") from None
    return fd


class WAL:
    """An open write-ahead log. Not thread-safe: drive it from one thread (the disk executor)."""

    def __init__(
        self,
        dir_path: str,
        *,
        lock_fd: int,
        segments: list[SegmentName],
        tail_fd: int,
        tail_offset: int,
        encoder: Encoder,
        metadata: bytes,
        hard_state: HardState,
        last_index: int,
        markers: list[SnapshotMarker],
        segment_bytes_max: int,
        wals_max: int,
        result: ReadResult,
    ) -> None:
        # Use WAL.create or WAL.open; this only assembles the state they computed.
        self._dir = dir_path
        self._lock_fd = lock_fd
        self._segments = segments
        self._fd = tail_fd
        self._offset = tail_offset  # where the next buffered byte will be written
        self._enc = encoder
        self._buf = bytearray()
        self._metadata = metadata
        self._hard_state = hard_state
        self._last_index = last_index
        self._markers = markers
        self._segment_bytes_max = segment_bytes_max
        self._wals_max = wals_max
        self._result: ReadResult | None = result
        self._failed: BaseException | None = None
        self._closed = False

    # ----------------------------------------------------------------- create / open

    @classmethod
    def create(
        cls,
        dir_path: str,
        metadata: bytes,
        *,
        segment_bytes_max: int = SEGMENT_BYTES_MAX_DEFAULT,
        wals_max: int = WALS_MAX_DEFAULT,
    ) -> WAL:
        """Create a new WAL in `dir_path` (made if missing) and open it for appending."""
        if segment_bytes_max <= 0 or wals_max < 1:
            raise ValueError("segment_bytes_max must be > 0 and wals_max >= 1")
        parent = os.path.dirname(os.path.abspath(dir_path))
        os.makedirs(dir_path, exist_ok=True)
        fsync_dir(parent)
        lock_fd = _lock_dir(dir_path)
        try:
            if list_segments(dir_path):
                raise WalExistsError(f"wal: {dir_path} already holds segment files")
            remove_temp_files(dir_path)
            header, crc = segment_header(
                prev_crc=0, metadata=metadata, hard_state=None, version=FORMAT_VERSION
            )
            first = SegmentName(0, 0)
            fd = create_segment(dir_path, first, header, size=segment_bytes_max)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(
            dir_path,
            lock_fd=lock_fd,
            segments=[first],
            tail_fd=fd,
            tail_offset=len(header),
            encoder=Encoder(crc),
            metadata=metadata,
            hard_state=_EMPTY_STATE,
            last_index=0,
            markers=[],
            segment_bytes_max=segment_bytes_max,
            wals_max=wals_max,
            result=ReadResult(metadata, _EMPTY_STATE, []),
        )

    @classmethod
    def open(
        cls,
        dir_path: str,
        *,
        snapshot: SnapshotMarker | None = None,
        segment_bytes_max: int = SEGMENT_BYTES_MAX_DEFAULT,
        wals_max: int = WALS_MAX_DEFAULT,
    ) -> WAL:
        """Open an existing WAL after `snapshot`: verify, repair a torn tail, ready to append.

        Raises WalCorruptError (refuse to start), WalSnapshotNotFoundError /
        WalSnapshotMismatchError (the snapshot and the WAL disagree), WalNotFoundError.
        """
        if segment_bytes_max <= 0 or wals_max < 1:
            raise ValueError("segment_bytes_max must be > 0 and wals_max >= 1")
        if not os.path.isdir(dir_path):
            raise WalNotFoundError(f"wal: {dir_path} does not exist")
        lock_fd = _lock_dir(dir_path)
        try:
            remove_temp_files(dir_path)
            segments = list_segments(dir_path)
            replay, scans = _replay(dir_path, segments, snapshot, repair=True)
            last = scans[-1]
            tail_path = last.path
            if last.bad_offset is not None:
                # repair decided this is a torn tail (else _replay raised): cut it off.
                truncate_torn_tail(tail_path, last.end, segment_bytes=segment_bytes_max)
            fd = os.open(tail_path, os.O_RDWR)
            try:
                preallocate(fd, segment_bytes_max)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            os.close(lock_fd)
            raise
        snap_index = snapshot.index if snapshot is not None else 0
        entries = replay.entries
        markers = list(replay.markers)
        if snapshot is not None:
            markers.append(snapshot)
        last_index = replay.last_index if replay.last_index is not None else snap_index
        metadata = replay.metadata if replay.metadata is not None else b""
        return cls(
            dir_path,
            lock_fd=lock_fd,
            segments=segments,
            tail_fd=fd,
            tail_offset=last.end,
            encoder=Encoder(last.crc),
            metadata=metadata,
            hard_state=replay.hard_state,
            last_index=max(last_index, snap_index),
            markers=markers,
            segment_bytes_max=segment_bytes_max,
            wals_max=wals_max,
            result=ReadResult(metadata, replay.hard_state, entries),
        )

    # ----------------------------------------------------------------- reading

    def read_all(self) -> ReadResult:
        """What open() read (metadata, last hard state, entries after the snapshot).

        The entries are handed over once: a second call returns an empty entry list, so
        the log does not stay in memory twice.
        """
        self._check_usable()
        result = self._result
        if result is None:
            return ReadResult(self._metadata, self._hard_state, [])
        self._result = None
        return result

    # ----------------------------------------------------------------- writing

    @property
    def last_index(self) -> int:
        """Index of the last entry saved (or of the snapshot opened from / saved)."""
        return self._last_index

    @property
    def segments(self) -> list[SegmentName]:
        return list(self._segments)

    def save(
        self, hard_state: HardState | None, entries: Sequence[WalEntry], *, sync: bool = False
    ) -> None:
        """Buffer entries, then the hard state; with sync=True also make them durable.

        Entries must be consecutive, and the first may not leave a gap after the last
        saved index (it may be lower: a new leader overwrote the tail).
        """
        self._check_usable()
        if entries:
            first = entries[0].index
            if first < 1 or first > self._last_index + 1:
                raise ValueError(
                    f"wal: entry index {first} would leave a gap after {self._last_index}"
                )
            expect = first
            for e in entries:
                if e.index != expect:
                    raise ValueError(f"wal: entries not consecutive at index {e.index}")
                expect += 1
        mark, crc = len(self._buf), self._enc.crc
        try:
            if entries:
                self._enc.encode_entries(self._buf, entries)
            if hard_state is not None:
                self._enc.encode(self._buf, hard_state)
        except BaseException:
            del self._buf[mark:]
            self._enc.crc = crc
            raise
        if entries:
            self._last_index = entries[-1].index
        if hard_state is not None:
            self._hard_state = hard_state
        if sync:
            self.sync()

    def save_snapshot_marker(self, marker: SnapshotMarker) -> None:
        """Append a snapshot marker and sync (with anything buffered before it)."""
        self._check_usable()
        self._enc.encode(self._buf, marker)
        self._markers.append(marker)
        # After a snapshot from the leader the log continues at marker.index + 1.
        self._last_index = max(self._last_index, marker.index)
        self.sync()

    def sync(self) -> None:
        """Write everything buffered with one pwrite and make it durable with one fdatasync."""
        self._check_usable()
        if not self._buf:
            return
        try:
            write_all(self._fd, self._buf, self._offset)
            failpoint("wal.before_fsync")
            os.fdatasync(self._fd)
            failpoint("wal.after_fsync")
        except OSError as exc:
            self._fail(exc)
        self._offset += len(self._buf)
        self._buf.clear()
        if self._offset >= self._segment_bytes_max:
            self._cut()

    def _cut(self) -> None:
        """Close the full segment and start the next one (everything before is synced)."""
        tail = self._segments[-1]
        new = SegmentName(tail.seq + 1, self._last_index + 1)
        header, crc = segment_header(
            prev_crc=self._enc.crc,
            metadata=self._metadata,
            hard_state=self._hard_state if self._hard_state != _EMPTY_STATE else None,
            version=FORMAT_VERSION,
        )
        try:
            # Give back the old segment's unused preallocated space; fsync (not fdatasync)
            # because the size changes. A crash here leaves it as the (clean) last segment.
            os.ftruncate(self._fd, self._offset)
            os.fsync(self._fd)
            fd = create_segment(self._dir, new, header, size=self._segment_bytes_max)
        except OSError as exc:
            self._fail(exc)
        os.close(self._fd)
        self._fd = fd
        self._offset = len(header)
        self._enc.crc = crc
        self._segments.append(new)

    def _fail(self, exc: OSError) -> None:
        self._failed = exc
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        raise WalSyncError(f"wal: write/fsync failed ({code}: {exc}); the WAL is failed") from exc

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise WalFailedError(f"wal: unusable after an earlier I/O error: {self._failed}")
        if self._closed:
            raise ValueError("wal: closed")

    # ----------------------------------------------------------------- releasing

    def release_to(self, index: int) -> list[str]:
        """Delete old segments no longer needed once a snapshot at <= index exists.

        Returns the names of the deleted files (oldest first).
        """
        self._check_usable()
        usable = [m for m in self._markers if m.index <= index]
        if not usable:
            return []
        snap_index = max(m.index for m in usable)
        keep_from = _select_start(self._segments, snap_index)
        if keep_from is None:
            return []
        removed: list[str] = []
        # Delete oldest first, so a crash midway still leaves a gap-free sequence.
        while keep_from > 0 and len(self._segments) > self._wals_max:
            seg = self._segments.pop(0)
            keep_from -= 1
            os.unlink(os.path.join(self._dir, seg.name))
            removed.append(seg.name)
        if removed:
            try:
                fsync_dir(self._dir)
            except OSError as exc:
                self._fail(exc)
        return removed

    # ----------------------------------------------------------------- closing

    def close(self) -> None:
        """Sync anything buffered, then release the files. Idempotent."""
        if self._closed:
            return
        try:
            if self._failed is None and self._buf:
                self.sync()
        finally:
            self._closed = True
            os.close(self._fd)
            os.close(self._lock_fd)

    def __enter__(self) -> WAL:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------- replay


def _select_start(segments: list[SegmentName], snap_index: int) -> int | None:
    """Position of the newest segment whose first index <= snap_index (etcd searchIndex)."""
    for i in range(len(segments) - 1, -1, -1):
        if segments[i].index <= snap_index:
            return i
    return None


def _check_sequence(dir_path: str, segments: list[SegmentName]) -> None:
    for prev, seg in zip(segments, segments[1:], strict=False):
        if seg.seq != prev.seq + 1:
            raise WalCorruptError(
                os.path.join(dir_path, seg.name),
                0,
                f"missing segment: sequence {prev.seq + 1} between {prev.name} and {seg.name}",
            )


def _replay(
    dir_path: str,
    segments: list[SegmentName],
    snapshot: SnapshotMarker | None,
    *,
    repair: bool,
    listing: bool = False,
) -> tuple[_Replay, list[SegmentScan]]:
    """Decode the segments needed to open from `snapshot`; raise on anything untrustworthy.

    With repair=True a bad tail of the last segment is judged by repair.py (corrupt: raise;
    torn: the caller truncates it when this returns). With listing=True (read-only) every
    segment is read, no entries are kept and a bad tail of the last segment is ignored.
    """
    if not segments:
        raise WalNotFoundError(f"wal: no segment files in {dir_path}")
    _check_sequence(dir_path, segments)
    snap_index = snapshot.index if snapshot is not None else 0
    start = 0 if listing else _select_start(segments, snap_index)
    if start is None:
        raise WalSnapshotNotFoundError(
            f"wal: no segment in {dir_path} starts at or before index {snap_index} "
            f"(released up to {segments[0].index}); open from a newer snapshot"
        )
    replay = _Replay(snap_index, collect_entries=not listing)
    scans: list[SegmentScan] = []
    expected_prev: int | None = 0 if segments[start].seq == 0 else None
    for i in range(start, len(segments)):
        path = os.path.join(dir_path, segments[i].name)
        data = read_segment(path)
        scan = decode_segment(path, data, expected_prev_crc=expected_prev)
        is_last = i == len(segments) - 1
        if scan.bad_offset is not None:
            if not is_last:
                raise WalCorruptError(path, scan.bad_offset, f"{scan.bad_reason} (not the last segment)")
            if repair:
                found = find_frame_after(data, scan.bad_offset, scan.crc)
                if found is not None:
                    raise WalCorruptError(
                        path,
                        scan.bad_offset,
                        f"{scan.bad_reason}, followed by a valid record at offset {found}",
                    )
        _apply_records(replay, scan)
        expected_prev = scan.crc
        scans.append(scan)
    if snapshot is not None and snapshot.index > 0:
        found_marker = replay.snapshot_found
        if found_marker is None:
            raise WalSnapshotNotFoundError(
                f"wal: no snapshot marker for index {snapshot.index} in {dir_path}"
            )
        if found_marker.term != snapshot.term:
            raise WalSnapshotMismatchError(
                f"wal: snapshot marker at index {snapshot.index} has term {found_marker.term}, "
                f"expected {snapshot.term}"
            )
    return replay, scans


def _apply_records(replay: _Replay, scan: SegmentScan) -> None:
    ents = replay.entries
    collect = replay.collect_entries
    snap_index = replay.snap_index
    last = replay.last_index
    path = scan.path
    for off, rec in scan.records:
        if type(rec) is WalEntry:
            idx = rec.index
            if last is not None and idx > last + 1:
                raise WalCorruptError(path, off, f"entry index gap: {idx} after {last}")
            if idx > snap_index and collect:
                up = idx - snap_index - 1
                if up > len(ents):
                    raise WalCorruptError(
                        path, off, f"entry index gap: {idx} after {snap_index + len(ents)}"
                    )
                # A new leader may overwrite the tail: index i discards entries >= i.
                del ents[up:]
                ents.append(rec)
            last = idx
        elif type(rec) is HardState:
            replay.hard_state = rec
        elif type(rec) is SnapshotMarker:
            replay.markers.append(rec)
            if rec.index == snap_index:
                replay.snapshot_found = rec
            if last is None or rec.index > last:
                last = rec.index
        elif type(rec) is Metadata:
            if replay.metadata is None:
                replay.metadata = rec.data
            elif replay.metadata != rec.data:
                raise WalCorruptError(path, off, "metadata differs from the earlier segments")
    replay.last_index = last
    invariant(
        not ents or (ents[0].index == snap_index + 1 and ents[-1].index == snap_index + len(ents)),
        "replayed entries must be contiguous from the snapshot index",
    )


def valid_snapshot_markers(dir_path: str) -> list[SnapshotMarker]:
    """Snapshot markers in the WAL whose index is covered by the last saved commit.

    Read-only (no lock, no repair): a server picks the newest snapshot file that appears
    here, as etcd's ValidSnapshotEntries does, because a snapshot file written just before
    a crash may have no marker yet and must not be opened from.
    """
    segments = list_segments(dir_path)
    replay, _ = _replay(dir_path, segments, None, repair=False, listing=True)
    commit = replay.hard_state.commit
    return [m for m in replay.markers if m.index <= commit]
