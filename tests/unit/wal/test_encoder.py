"""encoder.py: frames are laid out as documented and the crc chain is continuous."""

from __future__ import annotations

import pytest
from crc32c import crc32c

from wal.encoder import Encoder, segment_header
from wal.record import HEADER, HardState, RecordType, WalEntry, encode_payload


def test_frame_layout_and_chained_crc() -> None:
    buf = bytearray()
    enc = Encoder(crc=1234)
    e = WalEntry(7, 2, 0, b"abc")
    enc.encode(buf, e)
    crc, n, rtype = HEADER.unpack_from(buf, 0)
    _, payload = encode_payload(e)
    assert (n, rtype) == (len(payload), RecordType.ENTRY)
    assert bytes(buf[HEADER.size :]) == payload
    # the crc covers length, type and payload: every byte after the crc field
    assert crc == crc32c(bytes(buf[4:]), 1234) == enc.crc


def test_batch_encoding_equals_one_by_one() -> None:
    entries = [WalEntry(i, 1, i % 3, bytes([i]) * i) for i in range(1, 50)]
    a, b = bytearray(), bytearray()
    ea, eb = Encoder(5), Encoder(5)
    ea.encode_entries(a, entries)
    for e in entries:
        eb.encode(b, e)
    assert a == b and ea.crc == eb.crc


def test_oversized_record_is_refused_and_chain_kept() -> None:
    enc = Encoder(9)
    buf = bytearray()
    with pytest.raises(ValueError, match="limit"):
        enc.encode_raw(buf, RecordType.ENTRY, b"x" * (128 * 1024 * 1024 + 1))
    assert enc.crc == 9 and not buf


def test_segment_header_joins_the_chain() -> None:
    header, crc = segment_header(prev_crc=77, metadata=b"m", hard_state=HardState(1, 2, 3), version=1)
    # the VERSION frame is seeded with 0; the CRC frame carries and continues from 77
    c0, n0, t0 = HEADER.unpack_from(header, 0)
    assert t0 == RecordType.VERSION
    assert c0 == crc32c(header[4 : 9 + n0], 0)
    off = 9 + n0
    c1, n1, t1 = HEADER.unpack_from(header, off)
    assert t1 == RecordType.CRC
    assert c1 == crc32c(header[off + 4 : off + 9 + n1], 77)
    without_state, _ = segment_header(prev_crc=77, metadata=b"m", hard_state=None, version=1)
    assert len(without_state) < len(header) and crc != 0
