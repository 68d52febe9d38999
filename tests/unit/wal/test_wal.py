"""WAL: create/open/save/sync/cut/release on a real temp dir, plus every refusal to open."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from wal import (
    WAL,
    HardState,
    SnapshotMarker,
    WalCorruptError,
    WalEntry,
    WalExistsError,
    WalFailedError,
    WalLockedError,
    WalNotFoundError,
    WalSnapshotMismatchError,
    WalSnapshotNotFoundError,
    WalSyncError,
    valid_snapshot_markers,
)
from wal import failpoint as wal_failpoint
from wal.encoder import Encoder, segment_header
from wal.record import FORMAT_VERSION
from wal.segment import SegmentName, create_segment, list_segments

SMALL = 4096


def ents(lo: int, hi: int, *, term: int = 1, size: int = 32) -> list[WalEntry]:
    return [WalEntry(i, term, 0, bytes([i % 251]) * size) for i in range(lo, hi + 1)]


@pytest.fixture
def wal_dir(tmp_path: Path) -> str:
    return str(tmp_path / "member" / "wal")


@pytest.fixture(autouse=True)
def _no_hook() -> Iterator[None]:
    yield
    wal_failpoint.set_hook(None)


def reopen(d: str, snapshot: SnapshotMarker | None = None, **kw: int) -> tuple[WAL, list[WalEntry]]:
    w = WAL.open(d, snapshot=snapshot, **kw)
    return w, w.read_all().entries


def test_create_then_reopen_reads_back_metadata_state_entries(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"cluster=7") as w:
        assert w.read_all().entries == []
        w.save(HardState(1, 2, 3), ents(1, 3), sync=True)
        w.save(HardState(2, 2, 5), ents(4, 5, term=2))
    # close() synced the buffered batch
    with WAL.open(wal_dir) as w:
        r = w.read_all()
        assert r.metadata == b"cluster=7"
        assert r.hard_state == HardState(2, 2, 5)
        assert r.entries == ents(1, 3) + ents(4, 5, term=2)
        assert w.last_index == 5
        # appending continues after the last record
        w.save(None, ents(6, 6, term=2), sync=True)
    _, got = reopen(wal_dir)
    assert [e.index for e in got] == [1, 2, 3, 4, 5, 6]


def test_segment_name_and_preallocation(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m", segment_bytes_max=SMALL * 4):
        pass
    names = sorted(os.listdir(wal_dir))
    assert names == ["0000000000000000-0000000000000000.wal"]
    assert os.path.getsize(os.path.join(wal_dir, names[0])) == SMALL * 4


def test_create_refuses_existing_wal_and_open_refuses_missing(wal_dir: str, tmp_path: Path) -> None:
    WAL.create(wal_dir, b"m").close()
    with pytest.raises(WalExistsError):
        WAL.create(wal_dir, b"m")
    with pytest.raises(WalNotFoundError):
        WAL.open(str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WalNotFoundError):
        WAL.open(str(empty))


def test_second_open_of_same_dir_is_locked(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m"):
        with pytest.raises(WalLockedError):
            WAL.open(wal_dir)
    WAL.open(wal_dir).close()


def test_unsynced_save_is_not_on_disk_until_sync(wal_dir: str) -> None:
    w = WAL.create(wal_dir, b"m", segment_bytes_max=SMALL * 4)
    w.save(None, ents(1, 10), sync=True)
    w.save(None, ents(11, 20))
    seg = os.path.join(wal_dir, list_segments(wal_dir)[0].name)
    before = Path(seg).read_bytes()
    w.sync()
    assert Path(seg).read_bytes() != before
    w.close()


def test_sync_is_one_fdatasync_per_batch(wal_dir: str) -> None:
    calls: list[str] = []
    w = WAL.create(wal_dir, b"m")
    wal_failpoint.set_hook(calls.append)
    for k in range(5):
        w.save(HardState(1, 1, k), ents(k * 100 + 1, k * 100 + 100))
    w.sync()
    w.sync()  # nothing buffered: no second flush
    assert calls == ["wal.before_fsync", "wal.after_fsync"]
    w.close()


def test_save_rejects_gaps_and_non_consecutive_batches(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m") as w:
        w.save(None, ents(1, 3))
        with pytest.raises(ValueError, match="gap"):
            w.save(None, ents(5, 6))
        with pytest.raises(ValueError, match="consecutive"):
            w.save(None, [WalEntry(4, 1, 0, b""), WalEntry(6, 1, 0, b"")])
        with pytest.raises(ValueError, match="gap"):
            w.save(None, [WalEntry(0, 1, 0, b"")])


def test_overwritten_tail_is_replaced_like_a_new_leader_does(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m") as w:
        w.save(HardState(1, 1, 2), ents(1, 5, term=1), sync=True)
        w.save(HardState(2, 2, 2), ents(3, 4, term=2), sync=True)
        assert w.last_index == 4
    _, got = reopen(wal_dir)
    assert [(e.index, e.term) for e in got] == [(1, 1), (2, 1), (3, 2), (4, 2)]


def test_cut_and_read_across_segments(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m", segment_bytes_max=SMALL) as w:
        for lo in range(1, 601, 20):
            w.save(HardState(1, 1, lo), ents(lo, lo + 19), sync=True)
        segs = w.segments
    assert len(segs) > 5
    assert [s.seq for s in segs] == list(range(len(segs)))
    # each cut is named after the next entry index; the old segment is trimmed to its data
    for s in segs[1:]:
        assert (s.index - 1) % 20 == 0
    for s in segs[:-1]:
        assert os.path.getsize(os.path.join(wal_dir, s.name)) < SMALL + 20 * 80
    w, got = reopen(wal_dir, segment_bytes_max=SMALL)
    assert got == ents(1, 600)
    assert w.read_all().entries == []  # handed over once
    w.close()


def test_hard_state_survives_in_later_segment_header(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m", segment_bytes_max=SMALL) as w:
        w.save(HardState(3, 1, 2), ents(1, 200), sync=True)  # forces a cut
        assert len(w.segments) == 2
        w.save_snapshot_marker(SnapshotMarker(150, 3))
    w, _ = reopen(wal_dir, SnapshotMarker(150, 3), segment_bytes_max=SMALL)
    assert w.read_all().hard_state == HardState(3, 1, 2)
    w.close()


def test_open_from_snapshot_skips_earlier_entries(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m") as w:
        w.save(HardState(1, 1, 8), ents(1, 10), sync=True)
        w.save_snapshot_marker(SnapshotMarker(8, 1))
    w, got = reopen(wal_dir, SnapshotMarker(8, 1))
    assert [e.index for e in got] == [9, 10]
    w.close()
    with pytest.raises(WalSnapshotNotFoundError):
        WAL.open(wal_dir, snapshot=SnapshotMarker(7, 1))
    with pytest.raises(WalSnapshotMismatchError):
        WAL.open(wal_dir, snapshot=SnapshotMarker(8, 2))


def test_snapshot_from_leader_lets_the_log_jump(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m") as w:
        w.save(None, ents(1, 3), sync=True)
        w.save_snapshot_marker(SnapshotMarker(100, 4))
        w.save(HardState(4, 0, 101), ents(101, 102, term=4), sync=True)
    w, got = reopen(wal_dir, SnapshotMarker(100, 4))
    assert [e.index for e in got] == [101, 102]
    w.close()


def test_valid_snapshot_markers_filters_on_commit(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m") as w:
        w.save(HardState(1, 1, 5), ents(1, 10), sync=True)
        w.save_snapshot_marker(SnapshotMarker(5, 1))
        w.save_snapshot_marker(SnapshotMarker(9, 1))  # commit never reached 9
    assert valid_snapshot_markers(wal_dir) == [SnapshotMarker(5, 1)]


def test_release_to_keeps_wals_max_and_the_segment_needed(wal_dir: str) -> None:
    w = WAL.create(wal_dir, b"m", segment_bytes_max=SMALL, wals_max=2)
    for lo in range(1, 1001, 20):
        w.save(HardState(1, 1, lo + 19), ents(lo, lo + 19), sync=True)
    n = len(w.segments)
    assert n > 8
    assert w.release_to(1000) == []  # no snapshot marker yet: nothing may go
    w.save_snapshot_marker(SnapshotMarker(300, 1))
    removed = w.release_to(1000)  # uses the newest marker <= 1000, i.e. 300
    assert removed
    first = w.segments[0]
    assert first.index <= 300 < w.segments[1].index
    assert len(list_segments(wal_dir)) == len(w.segments) == n - len(removed)
    w.save_snapshot_marker(SnapshotMarker(1000, 1))
    w.release_to(1000)
    assert len(w.segments) == 2  # wals_max
    w.close()
    w, got = reopen(wal_dir, SnapshotMarker(1000, 1), segment_bytes_max=SMALL)
    assert got == []
    w.close()
    with pytest.raises(WalSnapshotNotFoundError):
        WAL.open(wal_dir)  # released: only a snapshot can start it now


def test_missing_segment_refuses_to_open(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m", segment_bytes_max=SMALL) as w:
        w.save(None, ents(1, 300), sync=True)
        w.save(None, ents(301, 600), sync=True)
        w.save(None, ents(601, 700), sync=True)
        segs = w.segments
    assert len(segs) >= 3
    os.unlink(os.path.join(wal_dir, segs[1].name))
    with pytest.raises(WalCorruptError, match="corrupt") as info:
        WAL.open(wal_dir)
    assert segs[2].name in str(info.value) and "missing segment" in str(info.value)


def _write_raw_segment(d: str, seq: int, index: int, records: list[WalEntry], prev: int) -> int:
    header, crc = segment_header(prev_crc=prev, metadata=b"m", hard_state=None, version=FORMAT_VERSION)
    buf = bytearray(header)
    enc = Encoder(crc)
    enc.encode_entries(buf, records)
    os.close(create_segment(d, SegmentName(seq, index), bytes(buf), size=SMALL))
    return enc.crc


def test_index_gap_refuses_to_open(wal_dir: str) -> None:
    os.makedirs(wal_dir)
    _write_raw_segment(wal_dir, 0, 0, ents(1, 3) + ents(5, 6), 0)
    with pytest.raises(WalCorruptError, match="corrupt") as info:
        WAL.open(wal_dir)
    assert "index gap" in str(info.value)
    assert "0000000000000000-0000000000000000.wal" in str(info.value)


def test_index_gap_across_segments_refuses_to_open(wal_dir: str) -> None:
    os.makedirs(wal_dir)
    crc = _write_raw_segment(wal_dir, 0, 0, ents(1, 3), 0)
    _write_raw_segment(wal_dir, 1, 4, ents(5, 6), crc)
    with pytest.raises(WalCorruptError, match="index gap"):
        WAL.open(wal_dir)


def test_broken_crc_chain_between_segments_refuses_to_open(wal_dir: str) -> None:
    os.makedirs(wal_dir)
    crc = _write_raw_segment(wal_dir, 0, 0, ents(1, 3), 0)
    _write_raw_segment(wal_dir, 1, 4, ents(4, 6), crc ^ 1)
    with pytest.raises(WalCorruptError, match="chain"):
        WAL.open(wal_dir)


def test_metadata_conflict_refuses_to_open(wal_dir: str) -> None:
    os.makedirs(wal_dir)
    crc = _write_raw_segment(wal_dir, 0, 0, ents(1, 3), 0)
    header, c2 = segment_header(prev_crc=crc, metadata=b"other", hard_state=None, version=1)
    os.close(create_segment(wal_dir, SegmentName(1, 4), header, size=SMALL))
    with pytest.raises(WalCorruptError, match="metadata"):
        WAL.open(wal_dir)


@pytest.mark.parametrize("point", ["wal.before_fsync", "wal.after_fsync"])
def test_fsync_error_is_fail_stop(wal_dir: str, point: str) -> None:
    w = WAL.create(wal_dir, b"m")
    w.save(None, ents(1, 2), sync=True)

    def hook(name: str) -> None:
        if name == point:
            raise OSError(errno.EIO, "injected EIO")

    wal_failpoint.set_hook(hook)
    w.save(None, ents(3, 4))
    with pytest.raises(WalSyncError, match="EIO"):
        w.sync()
    wal_failpoint.set_hook(None)
    # never retried, never usable again: every call raises
    with pytest.raises(WalFailedError):
        w.sync()
    with pytest.raises(WalFailedError):
        w.save(None, ents(5, 5))
    with pytest.raises(WalFailedError):
        w.save_snapshot_marker(SnapshotMarker(1, 1))
    with pytest.raises(WalFailedError):
        w.release_to(1)
    with pytest.raises(WalFailedError):
        w.read_all()
    w.close()  # releases the files without writing
    _, got = reopen(wal_dir)
    assert [e.index for e in got][:2] == [1, 2]


def test_torn_tail_is_repaired_and_appending_continues(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m", segment_bytes_max=SMALL) as w:
        w.save(None, ents(1, 5), sync=True)
    seg = os.path.join(wal_dir, list_segments(wal_dir)[0].name)
    data = bytearray(Path(seg).read_bytes())
    end = len(data.rstrip(b"\0"))
    # tear the last record: zero its last 7 bytes (a partial payload)
    data[end - 7 : end] = bytes(7)
    Path(seg).write_bytes(bytes(data))
    w, got = reopen(wal_dir, segment_bytes_max=SMALL)
    assert [e.index for e in got] == [1, 2, 3, 4]
    assert os.path.getsize(seg) == SMALL  # repaired and preallocated again
    w.save(None, ents(5, 6), sync=True)
    w.close()
    _, got = reopen(wal_dir)
    assert [e.index for e in got] == [1, 2, 3, 4, 5, 6]


def test_bit_flip_in_earlier_record_refuses_to_open(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m", segment_bytes_max=SMALL) as w:
        w.save(None, ents(1, 5), sync=True)
    seg = os.path.join(wal_dir, list_segments(wal_dir)[0].name)
    data = bytearray(Path(seg).read_bytes())
    end = len(data.rstrip(b"\0"))
    data[end - 150] ^= 0x10
    Path(seg).write_bytes(bytes(data))
    with pytest.raises(WalCorruptError, match="corrupt") as info:
        WAL.open(wal_dir)
    assert seg in str(info.value) and "offset" in str(info.value)


def test_corruption_in_a_non_last_segment_refuses_even_at_its_tail(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m", segment_bytes_max=SMALL) as w:
        w.save(None, ents(1, 100), sync=True)
        w.save(None, ents(101, 110), sync=True)
    first = os.path.join(wal_dir, list_segments(wal_dir)[0].name)
    data = bytearray(Path(first).read_bytes())
    data[-3] ^= 0xFF  # the very last byte region of the older segment
    Path(first).write_bytes(bytes(data))
    with pytest.raises(WalCorruptError, match="not the last segment"):
        WAL.open(wal_dir)


def test_leftover_temp_segment_is_removed(wal_dir: str) -> None:
    WAL.create(wal_dir, b"m").close()
    tmp = os.path.join(wal_dir, "0000000000000001-0000000000000001.wal.tmp")
    Path(tmp).write_bytes(b"half")
    WAL.open(wal_dir).close()
    assert not os.path.exists(tmp)


def test_closed_wal_rejects_calls(wal_dir: str) -> None:
    w = WAL.create(wal_dir, b"m")
    w.close()
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.save(None, ents(1, 1))


def test_valid_snapshot_markers_ignores_a_torn_tail_and_survives_release(wal_dir: str) -> None:
    with WAL.create(wal_dir, b"m", segment_bytes_max=SMALL, wals_max=1) as w:
        for lo in range(1, 401, 20):
            w.save(HardState(1, 1, lo + 19), ents(lo, lo + 19), sync=True)
        w.save_snapshot_marker(SnapshotMarker(300, 1))
        w.save(None, ents(401, 410), sync=True)
        assert w.release_to(300)
    seg = os.path.join(wal_dir, list_segments(wal_dir)[-1].name)
    data = bytearray(Path(seg).read_bytes())
    end = len(data.rstrip(b"\0"))
    data[end - 5 : end] = b"\xff" * 5  # torn tail: read-only listing must not judge or repair it
    Path(seg).write_bytes(bytes(data))
    assert valid_snapshot_markers(wal_dir) == [SnapshotMarker(300, 1)]
    assert Path(seg).read_bytes() == bytes(data)
    w, got = reopen(wal_dir, SnapshotMarker(300, 1), segment_bytes_max=SMALL)
    assert [e.index for e in got] == list(range(301, 410))
    w.close()
