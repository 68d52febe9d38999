"""WAL record framing, record types and their payload schemas (format version 1).

Theory of operation
-------------------
A segment file is a sequence of frames followed by zero bytes (preallocated space):

    +---------+------------+---------+--------------------+
    | crc u32 | length u32 | type u8 | payload (length B) |   all integers little-endian
    +---------+------------+---------+--------------------+

`crc` is CRC-32C over everything after it (length, type, payload: one contiguous range,
so the reader needs a single crc32c call per frame), *seeded with the crc of the previous
frame* (etcd's chained CRC). The chain means a frame validates only in
its place: a frame copied or replayed elsewhere, or a frame whose predecessor changed,
fails. The chain starts at 0 in the first segment; every segment begins with

    VERSION (seeded with 0, so a segment's format is readable on its own)
    CRC     (payload = the last crc of the previous segment; the frame itself is chained
             on that value, so the chain continues across segment files)
    METADATA, HARD_STATE (a copy of the current state, so released older segments are
             never needed to learn them)

A payload is never empty (it is a msgpack array), so a header of nine zero bytes cannot
be a frame: it marks the end of the data. Payloads are msgpack arrays with a fixed
schema per record type, selected by the segment's VERSION record; never pickle.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

FORMAT_VERSION = 1
HEADER = struct.Struct("<IIB")  # crc, length, type
HEADER_BYTES = HEADER.size  # 9
# The crc covers the length and the type (the last five header bytes), then the payload.
HEADER_CRC_PREFIX = struct.Struct("<IB")
CRC_BYTES = 4
# Upper bound on one record's payload: anything larger is a corrupt length field.
RECORD_BYTES_MAX = 128 * 1024 * 1024


class RecordType(IntEnum):
    VERSION = 1
    CRC = 2
    METADATA = 3
    HARD_STATE = 4
    SNAPSHOT = 5
    ENTRY = 6


RECORD_TYPES = frozenset(int(t) for t in RecordType)


@dataclass(frozen=True, slots=True)
class WalEntry:
    """A raft log entry as the WAL stores it (the server maps raft's Entry onto it)."""

    index: int
    term: int
    type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class HardState:
    term: int
    vote: int
    commit: int


@dataclass(frozen=True, slots=True)
class SnapshotMarker:
    """Says "a snapshot at (index, term) exists"; entries up to index may be released."""

    index: int
    term: int


@dataclass(frozen=True, slots=True)
class Metadata:
    data: bytes


@dataclass(frozen=True, slots=True)
class CrcRecord:
    prev_crc: int


@dataclass(frozen=True, slots=True)
class VersionRecord:
    version: int


Payload = WalEntry | HardState | SnapshotMarker | Metadata | CrcRecord | VersionRecord


class PayloadError(ValueError):
    """The payload of a frame whose crc matched does not fit its schema."""


_packb = msgpack.packb


def encode_payload(rec: Payload) -> tuple[int, bytes]:
    """(record type, msgpack payload) for one record. The hot path (entries) is inlined in encoder.py."""
    if isinstance(rec, WalEntry):
        return RecordType.ENTRY, _packb((rec.index, rec.term, rec.type, rec.data))
    if isinstance(rec, HardState):
        return RecordType.HARD_STATE, _packb((rec.term, rec.vote, rec.commit))
    if isinstance(rec, SnapshotMarker):
        return RecordType.SNAPSHOT, _packb((rec.index, rec.term))
    if isinstance(rec, Metadata):
        return RecordType.METADATA, _packb((rec.data,))
    if isinstance(rec, CrcRecord):
        return RecordType.CRC, _packb((rec.prev_crc,))
    return RecordType.VERSION, _packb((rec.version,))


def _uint(v: Any) -> int:
    if type(v) is not int or v < 0:
        raise PayloadError(f"expected a non-negative integer, got {v!r}")
    return v


def _bytes(v: Any) -> bytes:
    if type(v) is not bytes:
        raise PayloadError(f"expected bytes, got {type(v).__name__}")
    return v


def _fields(payload: bytes | memoryview, n: int) -> list[Any]:
    try:
        obj = msgpack.unpackb(payload)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise PayloadError(f"undecodable msgpack payload: {exc}") from None
    if type(obj) is not list or len(obj) != n:
        raise PayloadError(f"expected an array of {n} fields, got {obj!r:.60}")
    return obj


def decode_payload(rtype: int, payload: bytes | memoryview) -> Payload:
    """Decode and validate a payload of format version 1."""
    if rtype == RecordType.ENTRY:
        f = _fields(payload, 4)
        return WalEntry(_uint(f[0]), _uint(f[1]), _uint(f[2]), _bytes(f[3]))
    if rtype == RecordType.HARD_STATE:
        f = _fields(payload, 3)
        return HardState(_uint(f[0]), _uint(f[1]), _uint(f[2]))
    if rtype == RecordType.SNAPSHOT:
        f = _fields(payload, 2)
        return SnapshotMarker(_uint(f[0]), _uint(f[1]))
    if rtype == RecordType.METADATA:
        return Metadata(_bytes(_fields(payload, 1)[0]))
    if rtype == RecordType.CRC:
        return CrcRecord(_uint(_fields(payload, 1)[0]))
    if rtype == RecordType.VERSION:
        return VersionRecord(_uint(_fields(payload, 1)[0]))
    raise PayloadError(f"unknown record type {rtype}")
