"""Segment files: names, listing, preallocation and atomic creation.

Theory of operation
-------------------
The WAL directory holds segment files named `<seq>-<index>.wal` (16 lowercase hex digits
each, as etcd names them): `seq` counts segments from 0 without gaps, and `index` is the
raft index of the first entry that may be written into the segment (the last saved entry
index + 1 at the moment it was cut). Opening from a snapshot at index s starts reading at
the newest segment whose `index` <= s.

A new segment appears atomically: it is written under a temporary name (`.tmp` suffix,
which listing ignores and open removes), preallocated, filled with its header records and
fsynced, then renamed to its final name, and the directory is fsynced. So every named
segment starts with complete, durable header records, and a torn write can only ever hit
the tail of the newest segment.

Preallocation (posix_fallocate, else ftruncate) reserves the space up front, so the
appends that follow do not change the file size and `fdatasync` has no metadata to flush;
the zero bytes it leaves mark the end of the data.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass

SEGMENT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024
TMP_SUFFIX = ".tmp"
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")


@dataclass(frozen=True, slots=True, order=True)
class SegmentName:
    seq: int
    index: int

    @property
    def name(self) -> str:
        return segment_name(self.seq, self.index)


def segment_name(seq: int, index: int) -> str:
    return f"{seq:016x}-{index:016x}.wal"


def parse_segment_name(name: str) -> SegmentName | None:
    m = _NAME.match(name)
    if m is None:
        return None
    return SegmentName(int(m.group(1), 16), int(m.group(2), 16))


def list_segments(dir_path: str) -> list[SegmentName]:
    """Segment names in `dir_path`, sorted by sequence number; other files are ignored."""
    out = []
    for name in os.listdir(dir_path):
        seg = parse_segment_name(name)
        if seg is not None:
            out.append(seg)
    out.sort()
    return out


def remove_temp_files(dir_path: str) -> None:
    """Delete half-created segments left by a crash during a cut (never named, never used)."""
    for name in os.listdir(dir_path):
        if name.endswith(".wal" + TMP_SUFFIX):
            os.unlink(os.path.join(dir_path, name))


def preallocate(fd: int, size: int) -> None:
    """Reserve `size` bytes for the file (never shrinks it)."""
    if size <= os.fstat(fd).st_size:
        return
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(fd, 0, size)
            return
        except OSError:
            pass  # e.g. EOPNOTSUPP on some filesystems: a sparse file still works
    os.ftruncate(fd, size)


def fsync_dir(dir_path: str) -> None:
    """Make a rename/create/unlink in `dir_path` durable."""
    fd = os.open(dir_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """pwrite that loops over short writes."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def read_segment(path: str) -> bytes:
    """The bytes of a segment up to the end of its last data extent.

    Preallocated space that was never written is a hole (or an unwritten extent) to
    SEEK_DATA/SEEK_HOLE; reading it would only produce zeros, and for a fresh 64 MiB
    segment would cost more than everything else in open(). Bytes past the returned data
    are zeros. Where the filesystem cannot tell, the whole file is read.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return f.read(_last_data_end(f.fileno(), size))


def _last_data_end(fd: int, size: int) -> int:
    end = 0
    pos = 0
    try:
        while pos < size:
            start = os.lseek(fd, pos, os.SEEK_DATA)
            end = pos = os.lseek(fd, start, os.SEEK_HOLE)
    except OSError as exc:
        if exc.errno != errno.ENXIO:  # ENXIO: no data after pos; anything else: unsupported
            return size
    finally:
        os.lseek(fd, 0, os.SEEK_SET)
    return min(end, size)


def create_segment(dir_path: str, seg: SegmentName, header: bytes, *, size: int) -> int:
    """Atomically create segment `seg` holding `header`; returns an O_RDWR fd to it.

    Order: write temp file, fsync it, rename, fsync the directory. A crash at any point
    leaves either no segment of that name or a complete one.
    """
    final = os.path.join(dir_path, seg.name)
    tmp = final + TMP_SUFFIX
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        preallocate(fd, max(size, len(header)))
        write_all(fd, header, 0)
        os.fsync(fd)
        os.rename(tmp, final)
        fsync_dir(dir_path)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return fd
