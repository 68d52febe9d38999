"""repair.py: torn tails are told apart from damage followed by intact records."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from wal.decoder import decode_segment
from wal.encoder import Encoder, segment_header
from wal.record import WalEntry
from wal.repair import find_frame_after, truncate_torn_tail


def build(n: int) -> tuple[bytes, list[int]]:
    """A segment with n entries, and the offset where each entry frame starts."""
    header, crc = segment_header(prev_crc=0, metadata=b"m", hard_state=None, version=1)
    buf = bytearray(header)
    enc = Encoder(crc)
    starts = []
    for i in range(1, n + 1):
        starts.append(len(buf))
        enc.encode_entries(buf, [WalEntry(i, 1, 0, bytes([i]) * 40)])
    return bytes(buf), starts


def judge(data: bytes) -> int | None:
    scan = decode_segment("s", data, expected_prev_crc=0)
    assert scan.bad_offset is not None
    return find_frame_after(data, scan.bad_offset, scan.crc)


DATA, STARTS = build(6)


@pytest.mark.parametrize(
    ("name", "delta"),
    [("crc", 0), ("crc-high", 3), ("length", 4), ("length-high", 7), ("type", 8),
     ("payload", 20), ("payload-end", 48)],
)
def test_single_damaged_record_followed_by_good_ones_is_corruption(name: str, delta: int) -> None:
    bad = bytearray(DATA)
    bad[STARTS[2] + delta] ^= 0x04
    assert judge(bytes(bad)) is not None, name


def test_wiped_records_followed_by_two_intact_ones_is_corruption() -> None:
    bad = bytearray(DATA)
    bad[STARTS[1] : STARTS[3]] = bytes(STARTS[3] - STARTS[1])  # records 2 and 3 zeroed
    assert judge(bytes(bad)) is not None


@pytest.mark.parametrize("cut", [1, 8, 9, 30, 50])
def test_partial_last_record_is_torn(cut: int) -> None:
    data = DATA[: STARTS[5] + cut]
    assert judge(data) is None
    assert judge(data + bytes(5000)) is None


def test_garbage_after_last_record_followed_by_zeros_is_torn() -> None:
    rng = random.Random(7)
    for _ in range(50):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        data = DATA + junk + bytes(rng.randrange(0, 2000))
        if not junk.strip(b"\0"):
            continue
        assert judge(data) is None


def test_crc_mismatch_on_the_very_last_record_is_torn() -> None:
    bad = bytearray(DATA)
    bad[STARTS[5] + 30] ^= 0x01
    assert judge(bytes(bad) + bytes(100)) is None


def test_truncate_torn_tail_cuts_and_preallocates_again(tmp_path: Path) -> None:
    p = tmp_path / "seg.wal"
    p.write_bytes(DATA[: STARTS[5] + 10])
    truncate_torn_tail(str(p), STARTS[5], segment_bytes=8192)
    assert os.path.getsize(p) == 8192
    data = p.read_bytes()
    assert data[: STARTS[5]] == DATA[: STARTS[5]] and not data[STARTS[5] :].strip(b"\0")
    assert decode_segment(str(p), data, expected_prev_crc=0).bad_offset is None
