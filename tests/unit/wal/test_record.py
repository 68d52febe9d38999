"""record.py: payload schemas round-trip and reject anything off-schema."""

from __future__ import annotations

import msgpack
import pytest

from wal.record import (
    HEADER_BYTES,
    CrcRecord,
    HardState,
    Metadata,
    Payload,
    PayloadError,
    RecordType,
    SnapshotMarker,
    VersionRecord,
    WalEntry,
    decode_payload,
    encode_payload,
)

SAMPLES: list[Payload] = [
    WalEntry(1, 2, 0, b"data"),
    WalEntry(2**63, 2**40, 3, b""),
    HardState(5, 3, 9),
    SnapshotMarker(100, 7),
    Metadata(b"\x00\xffcluster"),
    CrcRecord(0xDEADBEEF),
    VersionRecord(1),
]


@pytest.mark.parametrize("rec", SAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip(rec: Payload) -> None:
    rtype, payload = encode_payload(rec)
    assert payload  # never empty: an all-zero header can mark the end of data
    assert decode_payload(rtype, payload) == rec


def test_header_is_nine_bytes_and_types_are_stable() -> None:
    # on-disk identity: changing these breaks every existing WAL
    assert HEADER_BYTES == 9
    assert [int(t) for t in RecordType] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("rtype", "obj"),
    [
        (RecordType.ENTRY, [1, 2, 3]),  # too few fields
        (RecordType.ENTRY, [1, 2, 3, "text"]),  # str, not bytes
        (RecordType.ENTRY, [-1, 2, 3, b""]),  # negative index
        (RecordType.HARD_STATE, [1, 2, True]),  # bool is not an int here
        (RecordType.SNAPSHOT, {"index": 1}),  # a map, not an array
        (RecordType.METADATA, ["x"]),
        (RecordType.CRC, [1.5]),
    ],
)
def test_off_schema_payload_is_rejected(rtype: int, obj: object) -> None:
    with pytest.raises(PayloadError):
        decode_payload(rtype, msgpack.packb(obj))


def test_garbage_and_unknown_type_are_rejected() -> None:
    with pytest.raises(PayloadError):
        decode_payload(RecordType.ENTRY, b"\xc1")  # never-used msgpack byte
    with pytest.raises(PayloadError):
        decode_payload(99, msgpack.packb([1]))
