"""Decode one segment file: verify every frame and the CRC chain, stop at the first bad one.

Theory of operation
-------------------
`decode_segment` walks the frames of one segment held in memory. It checks, in order:
the first frame is VERSION (seeded with 0) with a known format version; the second is CRC,
whose payload must equal the previous segment's final crc when the caller knows it (this
joins the chain across files); every following frame has a known type, a sane length that
fits in the file, and a crc that matches the chain. It stops at

* the end of data: the rest of the file is zero bytes (preallocated space), or the file
  ends exactly at a frame boundary; the scan is then `clean`;
* the first frame that fails a check: the scan reports `bad_offset` and `bad_reason` and
  the records before it. Whether that is a torn tail (repairable) or corruption is not the
  decoder's call: wal.py decides with repair.py, which alone knows the rule.

A frame whose crc matches but whose payload does not fit its schema was written that way
by a bug or by another format: that is corruption at once (WalCorruptError), never torn.
Damage in the segment header (VERSION or CRC frame) is corruption too, since a segment is
only ever named after its header was fsynced (segment.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack
from crc32c import crc32c

from .errors import WalCorruptError, WalUnsupportedVersionError
from .record import (
    CRC_BYTES,
    FORMAT_VERSION,
    HEADER,
    HEADER_BYTES,
    RECORD_BYTES_MAX,
    RECORD_TYPES,
    CrcRecord,
    Payload,
    RecordType,
    VersionRecord,
    WalEntry,
    decode_payload,
)

_ENTRY = int(RecordType.ENTRY)
_unpackb = msgpack.unpackb


@dataclass(slots=True)
class SegmentScan:
    """What one segment holds up to its end or its first bad frame."""

    path: str
    records: list[tuple[int, Payload]] = field(default_factory=list)  # (offset, record)
    end: int = 0  # offset just past the last good frame
    crc: int = 0  # chain value after the last good frame
    prev_crc: int = 0  # the chain value carried in from the previous segment
    bad_offset: int | None = None
    bad_reason: str = ""


_ZERO_BLOCK = bytes(1 << 16)


def data_end(data: bytes) -> int:
    """Offset after the last non-zero byte: beyond it nothing but preallocated zeros.

    Compares 64 KiB blocks with a zero block from the end (memcmp speed) instead of
    `rstrip`, which walks a 64 MiB preallocated tail one byte at a time.
    """
    ch = len(_ZERO_BLOCK)
    end = len(data)
    while end > 0:
        lo = max(0, end - ch)
        block = data[lo:end]
        if block != _ZERO_BLOCK[: end - lo]:
            return lo + len(block.rstrip(b"\x00"))
        end = lo
    return 0


def check_frame(data: bytes, off: int, seed: int, size: int) -> tuple[int, int, int] | str:
    """(type, length, crc) if a frame at `off` is intact when chained on `seed`, else why not."""
    if off + HEADER_BYTES > size:
        return "partial frame header"
    stored, n, rtype = HEADER.unpack_from(data, off)
    if rtype not in RECORD_TYPES:
        return f"unknown record type {rtype}" if (n or rtype or stored) else "zero header before data"
    if n == 0 or n > RECORD_BYTES_MAX:
        return f"bad record length {n}"
    if off + HEADER_BYTES + n > size:
        return f"record of {n} bytes runs past the end of the file"
    view = memoryview(data)
    crc = crc32c(view[off + CRC_BYTES : off + HEADER_BYTES + n], seed)
    if crc != stored:
        return "crc mismatch"
    return rtype, n, crc


def decode_segment(path: str, data: bytes, *, expected_prev_crc: int | None) -> SegmentScan:
    """Decode the frames of one segment; see the module docstring for where it stops."""
    scan = SegmentScan(path)
    size = len(data)
    nz_end = data_end(data)
    view = memoryview(data)

    # Header: VERSION (seed 0), then CRC (chained on the value it carries).
    first = check_frame(data, 0, 0, size)
    if isinstance(first, str):
        raise WalCorruptError(path, 0, f"bad segment header (VERSION record): {first}")
    version = _decode(path, 0, first[0], view[HEADER_BYTES : HEADER_BYTES + first[1]])
    if not isinstance(version, VersionRecord):
        raise WalCorruptError(path, 0, "segment does not start with a VERSION record")
    if version.version != FORMAT_VERSION:
        raise WalUnsupportedVersionError(
            f"wal: {path} has format version {version.version}, this build reads {FORMAT_VERSION}"
        )
    off = HEADER_BYTES + first[1]
    if off + HEADER_BYTES > size:
        raise WalCorruptError(path, off, "segment header is missing its CRC record")
    n = HEADER.unpack_from(data, off)[1]
    carried = _decode(path, off, RecordType.CRC, view[off + HEADER_BYTES : off + HEADER_BYTES + n])
    if not isinstance(carried, CrcRecord):
        raise WalCorruptError(path, off, "second record of the segment is not a CRC record")
    second = check_frame(data, off, carried.prev_crc, size)
    if isinstance(second, str) or second[0] != RecordType.CRC:
        raise WalCorruptError(path, off, f"bad segment header (CRC record): {second}")
    if expected_prev_crc is not None and carried.prev_crc != expected_prev_crc:
        raise WalCorruptError(
            path,
            off,
            f"crc chain broken between segments: carried {carried.prev_crc:#010x}, "
            f"previous segment ended with {expected_prev_crc:#010x}",
        )
    scan.prev_crc = carried.prev_crc
    crc = second[2]
    off += HEADER_BYTES + second[1]

    # Body: the hot loop, with the common path (an intact frame) inlined.
    records = scan.records
    unpack_from = HEADER.unpack_from
    types = RECORD_TYPES
    unpackb = _unpackb
    hb = HEADER_BYTES
    while off < nz_end:
        if off + hb > size:
            break
        stored, n, rtype = unpack_from(data, off)
        end = off + hb + n
        if rtype not in types or n == 0 or n > RECORD_BYTES_MAX or end > size:
            break
        c = crc32c(view[off + 4 : end], crc)
        if c != stored:
            break
        rec: Payload | None = None
        if rtype == _ENTRY:
            # The common case, inlined; anything unusual goes through the full check.
            try:
                f = unpackb(view[off + hb : end])
            except Exception:
                f = None
            if (
                type(f) is list
                and len(f) == 4
                and type(f[0]) is int
                and type(f[1]) is int
                and type(f[2]) is int
                and type(f[3]) is bytes
                and f[0] >= 0
                and f[1] >= 0
                and f[2] >= 0
            ):
                rec = WalEntry(f[0], f[1], f[2], f[3])
        if rec is None:
            rec = _decode(path, off, rtype, view[off + hb : end])
        records.append((off, rec))
        crc = c
        off = end
    scan.end = off
    scan.crc = crc
    if off < nz_end:
        why = check_frame(data, off, crc, size)
        scan.bad_offset = off
        scan.bad_reason = why if isinstance(why, str) else "unexpected frame"
    return scan


def _decode(path: str, off: int, rtype: int, payload: memoryview) -> Payload:
    try:
        return decode_payload(rtype, payload)
    except Exception as exc:  # msgpack errors on garbage that happens to pass the crc
        raise WalCorruptError(path, off, f"record passed its crc but does not decode: {exc}") from None
