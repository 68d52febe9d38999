"""Snapshotter on a real temp dir: round trip, atomicity, quarantine, retention, streaming."""

from __future__ import annotations

import io
import os
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapshot import (
    ConfState,
    SnapshotCorruptError,
    SnapshotMeta,
    SnapshotName,
    SnapshotNotFoundError,
    Snapshotter,
)
from snapshot import failpoint as snap_failpoint


@pytest.fixture
def snap_dir(tmp_path: Path) -> str:
    return str(tmp_path / "member" / "snap")


@pytest.fixture(autouse=True)
def _no_hook() -> Iterator[None]:
    yield
    snap_failpoint.set_hook(None)


def meta(index: int, term: int = 1) -> SnapshotMeta:
    return SnapshotMeta(index, term, ConfState(voters=(1, 2, 3), learners=(4,)))


def test_round_trip_and_etcd_style_name(snap_dir: str) -> None:
    s = Snapshotter(snap_dir)
    f = s.save(meta(0x2A, 3), b"body bytes")
    assert os.path.basename(f.path) == "0000000000000003-000000000000002a.snap"
    got_meta, body = s.load_newest()
    assert got_meta == meta(0x2A, 3) and body == b"body bytes"
    assert s.list() == [SnapshotName(index=0x2A, term=3)]
    assert s.load(term=3, index=0x2A).meta == meta(0x2A, 3)
    empty = s.save(SnapshotMeta(50, 3), b"")
    assert s.read_body(empty) == b"" and s.newest().meta.conf_state == ConfState()


def test_none_found(snap_dir: str) -> None:
    s = Snapshotter(snap_dir)
    with pytest.raises(SnapshotNotFoundError):
        s.load_newest()
    with pytest.raises(SnapshotNotFoundError):
        s.load(term=1, index=1)


def test_newest_is_by_index_and_selection_helpers(snap_dir: str) -> None:
    s = Snapshotter(snap_dir)
    for i, t in [(10, 1), (20, 2), (30, 2)]:
        s.save(meta(i, t), b"b%d" % i)
    assert s.newest().meta.index == 30
    assert s.load_at_or_below(25).meta.index == 20
    assert s.newest_available({(2, 20), (1, 10), (9, 99)}).meta.index == 20
    with pytest.raises(SnapshotNotFoundError):
        s.load_at_or_below(5)


def test_failed_rename_leaves_no_new_snapshot_and_no_temp_file(snap_dir: str) -> None:
    s = Snapshotter(snap_dir)
    s.save(meta(10), b"old")

    def hook(name: str) -> None:
        if name == "snapshot.before_rename":
            raise OSError(5, "injected crash before rename")

    snap_failpoint.set_hook(hook)
    with pytest.raises(OSError, match="injected"):
        s.save(meta(20), b"new")
    snap_failpoint.set_hook(None)
    assert os.listdir(snap_dir) == ["0000000000000001-000000000000000a.snap"]
    assert s.load_newest() == (meta(10), b"old")


def test_temp_file_from_a_crash_is_never_a_snapshot_and_is_cleaned(snap_dir: str) -> None:
    s = Snapshotter(snap_dir)
    s.save(meta(10), b"old")
    # what a SIGKILL between write and rename leaves behind
    leftover = Path(snap_dir) / ".snap-tmp-abc123"
    leftover.write_bytes(b"KVSN partial")
    assert s.list() == [SnapshotName(index=10, term=1)]
    Snapshotter(snap_dir)
    assert not leftover.exists()


def test_corrupt_newest_is_quarantined_and_older_used(snap_dir: str) -> None:
    s = Snapshotter(snap_dir)
    s.save(meta(10), b"ten")
    newest = s.save(meta(20), b"twenty" * 100)
    data = bytearray(Path(newest.path).read_bytes())
    data[newest.body_offset + 50] ^= 0x01
    Path(newest.path).write_bytes(bytes(data))
    assert s.load_newest() == (meta(10), b"ten")
    assert os.path.exists(newest.path + ".broken") and not os.path.exists(newest.path)
    assert s.list() == [SnapshotName(index=10, term=1)]
    # a damaged stored crc is caught too; load() of a named snapshot reports, never renames
    f = s.newest()
    raw = Path(f.path).read_bytes()
    Path(f.path).write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF]))
    with pytest.raises(SnapshotCorruptError, match="crc"):
        s.load(term=1, index=10)
    assert os.path.exists(f.path)
    with pytest.raises(SnapshotNotFoundError):
        s.newest()


@pytest.mark.parametrize("keep", [1, 3, 8])
def test_truncated_file_is_detected(snap_dir: str, keep: int) -> None:
    s = Snapshotter(snap_dir)
    f = s.save(meta(10), b"x" * 1000)
    full = Path(f.path).read_bytes()
    for cut in (0, 5, 12, f.body_offset, f.body_offset + 500, len(full) - keep):
        Path(f.path).write_bytes(full[:cut])
        with pytest.raises(SnapshotCorruptError):
            s.load(term=1, index=10)


def test_foreign_or_renamed_files_are_rejected(snap_dir: str) -> None:
    s = Snapshotter(snap_dir)
    f = s.save(meta(10), b"x")
    os.rename(f.path, os.path.join(snap_dir, SnapshotName(index=11, term=1).file_name))
    with pytest.raises(SnapshotCorruptError, match="name"):
        s.load(term=1, index=11)
    Path(snap_dir, SnapshotName(index=12, term=1).file_name).write_bytes(b"not a snapshot" * 3)
    with pytest.raises(SnapshotCorruptError, match="magic"):
        s.load(term=1, index=12)


def test_retention_keeps_the_newest(snap_dir: str) -> None:
    s = Snapshotter(snap_dir, snapshots_max=3)
    for i in range(1, 8):
        s.save(meta(i * 10), b"b")
    assert [n.index for n in s.list()] == [70, 60, 50]
    with pytest.raises(ValueError):
        Snapshotter(snap_dir, snapshots_max=0)


def test_stream_in_and_out(snap_dir: str, tmp_path: Path) -> None:
    s = Snapshotter(snap_dir)
    body = os.urandom(3 * 1024 * 1024 + 17)
    f = s.save_from_stream(meta(5), io.BytesIO(body))
    with s.open_body(f) as stream:
        head = stream.read(10)
        rest = stream.read()
        assert stream.read() == b""  # limited to the body: the trailer never leaks
    assert head + rest == body
    out = tmp_path / "restored"
    s.copy_body_to(f, str(out))
    assert out.read_bytes() == body


def test_large_body_is_streamed_with_small_memory(snap_dir: str, tmp_path: Path) -> None:
    size = 50 * 1024 * 1024
    src = tmp_path / "lmdb-copy"
    block = os.urandom(1024 * 1024)
    with open(src, "wb") as out:
        for _ in range(size // len(block)):
            out.write(block)
    want = zlib.crc32(block * 4)  # cheap fingerprint of a 4 MiB window
    s = Snapshotter(snap_dir)
    tracemalloc.start()
    try:
        f = s.save_from_file(meta(7), str(src))
        verified = s.newest()
        s.copy_body_to(verified, str(tmp_path / "restored"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f.body_bytes == size == verified.body_bytes
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes: the body was held in memory"
    with open(tmp_path / "restored", "rb") as r:
        r.seek(20 * 1024 * 1024)
        assert zlib.crc32(r.read(4 * 1024 * 1024)) == want
    assert os.path.getsize(tmp_path / "restored") == size
