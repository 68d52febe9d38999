"""decoder.py: clean ends, where it stops on a bad frame, and header refusals."""

from __future__ import annotations

import struct

import msgpack
import pytest

from wal.decoder import check_frame, data_end, decode_segment
from wal.encoder import Encoder, segment_header
from wal.errors import WalCorruptError, WalUnsupportedVersionError
from wal.record import HardState, Metadata, RecordType, VersionRecord, WalEntry


def segment(entries: list[WalEntry], *, prev: int = 0, version: int = 1) -> tuple[bytearray, int]:
    header, crc = segment_header(prev_crc=prev, metadata=b"m", hard_state=None, version=version)
    buf = bytearray(header)
    enc = Encoder(crc)
    enc.encode_entries(buf, entries)
    return buf, enc.crc


ENTS = [WalEntry(i, 1, 0, b"v" * 20) for i in range(1, 6)]


def test_clean_segment_with_and_without_zero_tail() -> None:
    buf, crc = segment(ENTS)
    for data in (bytes(buf), bytes(buf) + bytes(4096)):
        scan = decode_segment("s", data, expected_prev_crc=0)
        assert scan.bad_offset is None
        assert scan.end == len(buf) and scan.crc == crc
        assert [r for _, r in scan.records if isinstance(r, WalEntry)] == ENTS
        assert isinstance(scan.records[0][1], Metadata)


def test_record_ending_in_zero_bytes_is_not_mistaken_for_the_end() -> None:
    ents = [WalEntry(1, 1, 0, bytes(40)), WalEntry(2, 1, 0, b"x" + bytes(40))]
    buf, _ = segment(ents)
    scan = decode_segment("s", bytes(buf) + bytes(100), expected_prev_crc=0)
    assert scan.bad_offset is None
    assert [r for _, r in scan.records if isinstance(r, WalEntry)] == ents


@pytest.mark.parametrize("cut", [1, 5, 9, 12, 30])
def test_stops_at_torn_last_frame(cut: int) -> None:
    buf, _ = segment(ENTS)
    full, _ = segment(ENTS[:4])
    data = bytes(buf[: len(full) + cut])
    scan = decode_segment("s", data, expected_prev_crc=0)
    assert scan.bad_offset == len(full) == scan.end
    assert scan.bad_reason
    assert [r.index for _, r in scan.records if isinstance(r, WalEntry)] == [1, 2, 3, 4]


def test_crc_mismatch_and_zero_header_before_data_are_reported() -> None:
    buf, _ = segment(ENTS)
    prefix, _ = segment(ENTS[:2])
    flipped = bytearray(buf)
    flipped[len(prefix) + 12] ^= 1
    scan = decode_segment("s", bytes(flipped), expected_prev_crc=0)
    assert (scan.bad_offset, scan.bad_reason) == (len(prefix), "crc mismatch")
    holed = bytearray(buf)
    holed[len(prefix) : len(prefix) + 9] = bytes(9)
    scan = decode_segment("s", bytes(holed), expected_prev_crc=0)
    assert scan.bad_offset == len(prefix) and "zero header" in scan.bad_reason


def test_damaged_segment_header_is_corrupt_not_torn() -> None:
    buf, _ = segment(ENTS)
    for pos in (3, 20):
        bad = bytearray(buf)
        bad[pos] ^= 0x40
        with pytest.raises(WalCorruptError, match="corrupt"):
            decode_segment("seg.wal", bytes(bad), expected_prev_crc=0)
    with pytest.raises(WalCorruptError):
        decode_segment("seg.wal", b"", expected_prev_crc=0)


def test_chain_must_continue_from_previous_segment() -> None:
    buf, _ = segment(ENTS, prev=42)
    decode_segment("s", bytes(buf), expected_prev_crc=42)
    decode_segment("s", bytes(buf), expected_prev_crc=None)
    with pytest.raises(WalCorruptError, match="chain"):
        decode_segment("s", bytes(buf), expected_prev_crc=43)


def test_unknown_format_version_is_refused() -> None:
    buf, _ = segment(ENTS, version=2)
    with pytest.raises(WalUnsupportedVersionError):
        decode_segment("s", bytes(buf), expected_prev_crc=0)


def test_frame_with_good_crc_but_bad_payload_is_corrupt() -> None:
    buf, crc = segment([])
    Encoder(crc).encode_raw(buf, RecordType.ENTRY, msgpack.packb([1, 2]))
    with pytest.raises(WalCorruptError, match="does not decode"):
        decode_segment("s", bytes(buf), expected_prev_crc=0)


def test_check_frame_and_data_end_helpers() -> None:
    buf = bytearray()
    enc = Encoder(0)
    enc.encode(buf, VersionRecord(1))
    enc.encode(buf, HardState(1, 1, 1))
    n0 = len(buf) - 9 - len(msgpack.packb((1, 1, 1)))
    ok = check_frame(bytes(buf), n0, _crc_after_first(buf), len(buf))
    assert not isinstance(ok, str) and ok[0] == RecordType.HARD_STATE
    assert check_frame(bytes(buf), n0, 1, len(buf)) == "crc mismatch"
    assert check_frame(bytes(buf), len(buf) - 3, 0, len(buf)) == "partial frame header"
    assert data_end(b"") == 0 and data_end(bytes(70000)) == 0
    assert data_end(b"a" + bytes(70000) + b"b" + bytes(3)) == 70002


def _crc_after_first(buf: bytearray) -> int:
    return int(struct.unpack_from("<IIB", buf, 0)[0])
