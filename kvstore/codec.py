"""Versioned msgpack layouts of kvstore's LMDB values (never pickle).

A `key` database value is one version of a key (the revision lives in the LMDB key):

    [RECORD_FORMAT=1, flags, create_revision, version, lease, value]

`flags` bit 0 marks a tombstone (the key was deleted at this revision; the other fields
are zero). The first two elements are positive fixints, so an encoded record always starts
with bytes 0x96 0x01 <flags>: `is_tombstone` reads byte 2 without decoding, which keeps
count-only and hash scans cheap. A decoder that meets another format number stops with
CorruptRecordError instead of guessing.

A `rev` database value is a one-byte marker (REV_PUT / REV_TOMBSTONE, etcd appends a 't'
to the revision key instead) followed by the user key.

A `lease` database value is [LEASE_FORMAT=1, ttl, remaining_ttl].
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import msgpack

from kvstore.errors import CorruptRecordError

__all__ = [
    "LEASE_FORMAT",
    "RECORD_FORMAT",
    "REV_PUT",
    "REV_TOMBSTONE",
    "TOMBSTONE_RECORD",
    "decode_lease",
    "decode_record",
    "encode_lease",
    "encode_record",
    "is_tombstone",
    "pack_u64",
    "unpack_u64",
]

RECORD_FORMAT = 1
LEASE_FORMAT = 1
FLAG_TOMBSTONE = 1
REV_PUT = 0
REV_TOMBSTONE = 1

_U64 = struct.Struct(">Q")
# Only the single applying thread packs (under LMDB's write lock), so one Packer is safe.
_packb: Callable[[object], bytes] = msgpack.Packer(use_bin_type=True).pack


def encode_record(create_revision: int, version: int, lease: int, value: bytes) -> bytes:
    return _packb([RECORD_FORMAT, 0, create_revision, version, lease, value])


TOMBSTONE_RECORD = _packb([RECORD_FORMAT, FLAG_TOMBSTONE, 0, 0, 0, b""])


def is_tombstone(raw: bytes) -> bool:
    return bool(raw[2] & FLAG_TOMBSTONE)


def decode_record(raw: bytes) -> tuple[int, int, int, bytes]:
    """(create_revision, version, lease, value) of a live record."""
    try:
        fmt, flags, create_revision, version, lease, value = msgpack.unpackb(raw)
    except Exception as e:  # msgpack raises several types; all mean the same here
        raise CorruptRecordError(f"undecodable record {raw[:32]!r}") from e
    if fmt != RECORD_FORMAT or flags & FLAG_TOMBSTONE:
        raise CorruptRecordError(f"unexpected record format={fmt} flags={flags}")
    return create_revision, version, lease, value


def encode_lease(ttl: int, remaining_ttl: int) -> bytes:
    return _packb([LEASE_FORMAT, ttl, remaining_ttl])


def decode_lease(raw: bytes) -> tuple[int, int]:
    try:
        fmt, ttl, remaining_ttl = msgpack.unpackb(raw)
    except Exception as e:
        raise CorruptRecordError(f"undecodable lease {raw[:32]!r}") from e
    if fmt != LEASE_FORMAT:
        raise CorruptRecordError(f"unexpected lease format={fmt}")
    return int(ttl), int(remaining_ttl)


def pack_u64(n: int) -> bytes:
    return _U64.pack(n)


def unpack_u64(raw: bytes) -> int:
    return int(_U64.unpack(raw)[0])


_U64_MASK = (1 << 64) - 1


def pack_lease_id(lease_id: int) -> bytes:
    """A lease ID (etcd's int64: negative IDs are valid) as 8 bytes, two's complement."""
    return pack_u64(lease_id & _U64_MASK)


def unpack_lease_id(raw: bytes) -> int:
    value = unpack_u64(raw)
    return value - (1 << 64) if value >= 1 << 63 else value
