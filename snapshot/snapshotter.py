"""Raft snapshot files: atomic save, CRC-verified load, .broken quarantine, retention.

Theory of operation
-------------------
A snapshot lives in `<data-dir>/member/snap/<term>-<index>.snap` (16 lowercase hex digits
each, as etcd names them). The file layout (format version 1, little-endian):

    header   magic b"KVSN" | version u32 | meta_len u32
    meta     msgpack [index, term, [voters...], [learners...]]
    body     body_len bytes (for us: a consistent copy of the LMDB store)
    trailer  body_len u64 | crc u32

`crc` is CRC-32C over every byte before it. Because the body length sits in the trailer,
a body can be streamed in without knowing its size first (a snapshot arriving from the
leader), and a truncated file is caught by the sizes not adding up even before the crc.
Bodies move in 1 MiB chunks both ways, so a multi-GiB body never sits in memory.

Saving is atomic: write a temporary file (`.snap-tmp-*`, which listing never matches and
the constructor deletes), fsync it, `failpoint("snapshot.before_rename")`, rename it to
its final name, fsync the directory. A crash leaves either the old set of snapshots or the
old set plus a complete new one. Then the oldest snapshots beyond `snapshots_max` are
deleted (etcd's --max-snapshots).

Loading picks the newest file by (index, term) that verifies. A file that does not verify
is renamed `<name>.broken` (kept for the operator, ignored from then on) and the next older
one is tried. `newest_available(allowed)` restricts the choice to snapshots the WAL has a
marker for (etcd's LoadNewestAvailable): a snapshot file written just before a crash, whose
marker never reached the WAL, must not be used.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

import msgpack
from crc32c import crc32c

from .errors import SnapshotCorruptError, SnapshotNotFoundError, invariant
from .failpoint import failpoint

FORMAT_VERSION = 1
SNAPSHOTS_MAX_DEFAULT = 5
CHUNK_BYTES = 1024 * 1024
META_BYTES_MAX = 16 * 1024 * 1024
_MAGIC = b"KVSN"
_HEADER = struct.Struct("<4sII")
_TRAILER = struct.Struct("<QI")
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")
_TMP_PREFIX = ".snap-tmp-"


@dataclass(frozen=True, slots=True)
class ConfState:
    """Membership as of the snapshot (the server maps raft's ConfState onto it)."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int
    term: int
    conf_state: ConfState = ConfState()


@dataclass(frozen=True, slots=True, order=True)
class SnapshotName:
    """A snapshot file's identity; orders oldest first by (index, term)."""

    index: int
    term: int

    @property
    def file_name(self) -> str:
        return f"{self.term:016x}-{self.index:016x}.snap"


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """A snapshot on disk that passed verification: where its body is inside the file."""

    meta: SnapshotMeta
    path: str
    body_offset: int
    body_bytes: int


def _parse_name(name: str) -> SnapshotName | None:
    m = _NAME.match(name)
    if m is None:
        return None
    return SnapshotName(index=int(m.group(2), 16), term=int(m.group(1), 16))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode_meta(meta: SnapshotMeta) -> bytes:
    cs = meta.conf_state
    out: bytes = msgpack.packb([meta.index, meta.term, list(cs.voters), list(cs.learners)])
    return out


def _decode_meta(path: str, raw: bytes) -> SnapshotMeta:
    try:
        f: Any = msgpack.unpackb(raw)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise SnapshotCorruptError(path, f"undecodable metadata: {exc}") from None
    ok = (
        type(f) is list
        and len(f) == 4
        and all(type(x) is int and x >= 0 for x in f[:2])
        and all(type(x) is list and all(type(y) is int for y in x) for x in f[2:])
    )
    if not ok:
        raise SnapshotCorruptError(path, "metadata does not fit the schema")
    return SnapshotMeta(f[0], f[1], ConfState(tuple(f[2]), tuple(f[3])))


class _BodyReader(io.RawIOBase):
    """A read-only window onto [start, start + size) of an open file."""

    def __init__(self, f: IO[bytes], start: int, size: int) -> None:
        self._f = f
        self._pos = start
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._left)
        if n == 0:
            return 0
        got = os.preadv(self._f.fileno(), [memoryview(b)[:n]], self._pos)
        if got == 0:
            raise SnapshotCorruptError(self._f.name, "file shrank while reading the body")
        self._pos += got
        self._left -= got
        return got


class Snapshotter:
    """The snapshot directory. Not thread-safe: drive it from one thread."""

    def __init__(self, dir_path: str, *, snapshots_max: int = SNAPSHOTS_MAX_DEFAULT) -> None:
        if snapshots_max < 1:
            raise ValueError("snapshots_max must be >= 1")
        self._dir = dir_path
        self._snapshots_max = snapshots_max
        os.makedirs(dir_path, exist_ok=True)
        for name in os.listdir(dir_path):
            if name.startswith(_TMP_PREFIX):
                os.unlink(os.path.join(dir_path, name))

    @property
    def dir(self) -> str:
        return self._dir

    # ------------------------------------------------------------------ saving

    def save(self, meta: SnapshotMeta, body: bytes) -> SnapshotFile:
        """Save a snapshot whose body is in memory (convenience for small bodies)."""
        return self.save_from_stream(meta, io.BytesIO(body))

    def save_from_file(self, meta: SnapshotMeta, path: str) -> SnapshotFile:
        """Save a snapshot whose body is the content of the file at `path` (streamed)."""
        with open(path, "rb") as src:
            return self.save_from_stream(meta, src)

    def save_from_stream(self, meta: SnapshotMeta, src: BinaryIO | IO[bytes]) -> SnapshotFile:
        """Save a snapshot whose body is read from `src` until EOF, in chunks."""
        if meta.index < 0 or meta.term < 0:
            raise ValueError("snapshot index and term must be >= 0")
        name = SnapshotName(index=meta.index, term=meta.term)
        final = os.path.join(self._dir, name.file_name)
        raw_meta = _encode_meta(meta)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self._dir)
        try:
            head = _HEADER.pack(_MAGIC, FORMAT_VERSION, len(raw_meta)) + raw_meta
            crc = crc32c(head)
            _write_all(fd, head)
            body_bytes = 0
            while True:
                chunk = src.read(CHUNK_BYTES)
                if not chunk:
                    break
                crc = crc32c(chunk, crc)
                _write_all(fd, chunk)
                body_bytes += len(chunk)
            tail = struct.pack("<Q", body_bytes)
            crc = crc32c(tail, crc)
            _write_all(fd, tail + struct.pack("<I", crc))
            os.fsync(fd)
            os.close(fd)
            fd = -1
            failpoint("snapshot.before_rename")
            os.replace(tmp, final)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(self._dir)
        self._purge()
        return SnapshotFile(meta, final, _HEADER.size + len(raw_meta), body_bytes)

    def _purge(self) -> None:
        names = self.list()
        extra = names[self._snapshots_max :]
        for name in extra:
            os.unlink(os.path.join(self._dir, name.file_name))
        if extra:
            _fsync_dir(self._dir)

    # ------------------------------------------------------------------ listing / loading

    def list(self) -> list[SnapshotName]:
        """Snapshot files present (not verified), newest first."""
        names = [n for n in map(_parse_name, os.listdir(self._dir)) if n is not None]
        names.sort(reverse=True)
        return names

    def verify(self, name: SnapshotName) -> SnapshotFile:
        """Check one file completely (sizes, CRC over every byte, metadata vs name)."""
        path = os.path.join(self._dir, name.file_name)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise SnapshotNotFoundError(f"snapshot: {path} does not exist") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            if size < _HEADER.size + _TRAILER.size:
                raise SnapshotCorruptError(path, f"file of {size} bytes is too short (truncated)")
            magic, version, meta_len = _HEADER.unpack(f.read(_HEADER.size))
            if magic != _MAGIC:
                raise SnapshotCorruptError(path, "bad magic: not a snapshot file")
            if version != FORMAT_VERSION:
                raise SnapshotCorruptError(path, f"unknown format version {version}")
            if meta_len > META_BYTES_MAX or _HEADER.size + meta_len + _TRAILER.size > size:
                raise SnapshotCorruptError(path, f"metadata length {meta_len} does not fit (truncated?)")
            f.seek(size - _TRAILER.size)
            body_bytes, stored = _TRAILER.unpack(f.read(_TRAILER.size))
            body_offset = _HEADER.size + meta_len
            if body_offset + body_bytes + _TRAILER.size != size:
                raise SnapshotCorruptError(
                    path, f"sizes do not add up: body {body_bytes} in a file of {size} (truncated?)"
                )
            f.seek(0)
            crc, left = 0, size - 4
            while left:
                chunk = f.read(min(CHUNK_BYTES, left))
                if not chunk:
                    raise SnapshotCorruptError(path, "file shrank while verifying")
                crc = crc32c(chunk, crc)
                left -= len(chunk)
            if crc != stored:
                raise SnapshotCorruptError(path, f"crc mismatch: stored {stored:#010x}, computed {crc:#010x}")
            f.seek(_HEADER.size)
            meta = _decode_meta(path, f.read(meta_len))
        if (meta.index, meta.term) != (name.index, name.term):
            raise SnapshotCorruptError(
                path, f"metadata says index {meta.index} term {meta.term}, the name disagrees"
            )
        return SnapshotFile(meta, path, body_offset, body_bytes)

    def _newest_where(self, accept: Collection[SnapshotName] | None) -> SnapshotFile:
        for name in self.list():
            if accept is not None and name not in accept:
                continue
            try:
                return self.verify(name)
            except SnapshotCorruptError:
                self._quarantine(name)
        raise SnapshotNotFoundError(f"snapshot: no valid snapshot in {self._dir}")

    def _quarantine(self, name: SnapshotName) -> None:
        path = os.path.join(self._dir, name.file_name)
        os.replace(path, path + ".broken")
        _fsync_dir(self._dir)

    def newest(self) -> SnapshotFile:
        """The newest snapshot that verifies; broken newer ones are renamed `.broken`."""
        return self._newest_where(None)

    def newest_available(self, allowed: Collection[tuple[int, int]]) -> SnapshotFile:
        """Like newest(), among snapshots whose (term, index) is in `allowed` (WAL markers)."""
        accept = {SnapshotName(index=index, term=term) for term, index in allowed}
        return self._newest_where(accept)

    def load_newest(self) -> tuple[SnapshotMeta, bytes]:
        """(meta, body) of the newest valid snapshot; for small bodies only."""
        snap = self.newest()
        return snap.meta, self.read_body(snap)

    def load(self, *, term: int, index: int) -> SnapshotFile:
        """The snapshot (term, index), verified (no quarantine: the caller asked for it)."""
        return self.verify(SnapshotName(index=index, term=term))

    def load_at_or_below(self, index: int) -> SnapshotFile:
        """The newest valid snapshot with index <= `index`."""
        accept = {n for n in self.list() if n.index <= index}
        return self._newest_where(accept)

    # ------------------------------------------------------------------ bodies

    @contextlib.contextmanager
    def open_body(self, snap: SnapshotFile) -> Iterator[BinaryIO]:
        """A buffered binary stream over exactly the body of `snap`."""
        f = open(snap.path, "rb")
        try:
            raw = _BodyReader(f, snap.body_offset, snap.body_bytes)
            yield io.BufferedReader(raw, buffer_size=CHUNK_BYTES)
        finally:
            f.close()

    def read_body(self, snap: SnapshotFile) -> bytes:
        with self.open_body(snap) as body:
            data = body.read()
        invariant(len(data) == snap.body_bytes, "body length changed under us")
        return data

    def copy_body_to(self, snap: SnapshotFile, path: str) -> None:
        """Write the body to `path` (created or replaced) in chunks, and fsync it."""
        with self.open_body(snap) as body, open(path, "wb") as out:
            while chunk := body.read(CHUNK_BYTES):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
