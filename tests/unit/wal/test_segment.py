"""segment.py: names, listing, preallocation, atomic creation, reading around holes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wal.segment import (
    SegmentName,
    create_segment,
    list_segments,
    parse_segment_name,
    preallocate,
    read_segment,
    remove_temp_files,
    segment_name,
)


def test_names_are_etcd_shaped_and_round_trip() -> None:
    assert segment_name(1, 0x2A) == "0000000000000001-000000000000002a.wal"
    assert parse_segment_name("0000000000000001-000000000000002a.wal") == SegmentName(1, 42)
    for bad in ["1-2.wal", "0000000000000001-000000000000002A.wal", "x.wal",
                "0000000000000001-000000000000002a.wal.tmp"]:
        assert parse_segment_name(bad) is None
    assert SegmentName(3, 9).name == segment_name(3, 9)


def test_listing_sorts_by_seq_and_ignores_others(tmp_path: Path) -> None:
    for name in [segment_name(2, 5), segment_name(0, 0), segment_name(1, 3), "notes.txt",
                 segment_name(3, 9) + ".tmp"]:
        (tmp_path / name).write_bytes(b"")
    assert list_segments(str(tmp_path)) == [SegmentName(0, 0), SegmentName(1, 3), SegmentName(2, 5)]
    remove_temp_files(str(tmp_path))
    assert not (tmp_path / (segment_name(3, 9) + ".tmp")).exists()
    assert (tmp_path / "notes.txt").exists()


def test_create_segment_is_complete_and_preallocated(tmp_path: Path) -> None:
    fd = create_segment(str(tmp_path), SegmentName(0, 0), b"header", size=8192)
    os.close(fd)
    path = tmp_path / segment_name(0, 0)
    assert path.stat().st_size == 8192
    assert path.read_bytes()[:6] == b"header"
    assert os.listdir(tmp_path) == [segment_name(0, 0)]  # no temp file left


def test_create_segment_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OverflowError):
        create_segment(str(tmp_path), SegmentName(0, 0), b"h", size=2**70)
    assert os.listdir(tmp_path) == []


def test_preallocate_never_shrinks(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"x" * 100)
    fd = os.open(p, os.O_RDWR)
    preallocate(fd, 10)
    assert os.fstat(fd).st_size == 100
    preallocate(fd, 4096)
    assert os.fstat(fd).st_size == 4096
    os.close(fd)


def test_read_segment_keeps_data_after_a_hole(tmp_path: Path) -> None:
    p = tmp_path / "f"
    fd = os.open(p, os.O_RDWR | os.O_CREAT)
    preallocate(fd, 1 << 20)
    os.pwrite(fd, b"head", 0)
    os.pwrite(fd, b"late", 300_000)
    os.close(fd)
    data = read_segment(str(p))
    assert data[:4] == b"head"
    assert data[300_000:300_004] == b"late"  # data beyond a zero stretch is never skipped
    assert not data[300_004:].strip(b"\0")
    assert len(data) <= 1 << 20
