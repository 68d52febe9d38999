"""Record and lease layouts round-trip; tombstones are recognised without decoding."""

from __future__ import annotations

import pytest

from kvstore.codec import (
    TOMBSTONE_RECORD,
    decode_lease,
    decode_record,
    encode_lease,
    encode_record,
    is_tombstone,
)
from kvstore.errors import CorruptRecordError


@pytest.mark.parametrize("value", [b"", b"x", b"\x00" * 300, bytes(range(256)) * 40])
def test_record_round_trip(value: bytes) -> None:
    raw = encode_record(2, 3, 1 << 62, value)
    assert decode_record(raw) == (2, 3, 1 << 62, value)
    assert not is_tombstone(raw)


def test_tombstone() -> None:
    assert is_tombstone(TOMBSTONE_RECORD)
    with pytest.raises(CorruptRecordError):
        decode_record(TOMBSTONE_RECORD)


def test_corrupt_record() -> None:
    with pytest.raises(CorruptRecordError):
        decode_record(b"\xc1garbage")
    with pytest.raises(CorruptRecordError):
        decode_record(encode_record(1, 1, 0, b"v").replace(b"\x96\x01", b"\x96\x02", 1))


def test_lease_round_trip() -> None:
    assert decode_lease(encode_lease(60, 12)) == (60, 12)
    with pytest.raises(CorruptRecordError):
        decode_lease(b"\x93\x07\x01\x02")
