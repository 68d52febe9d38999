"""Tell a torn tail from corruption, and truncate a torn tail. The only code that truncates.

Theory of operation
-------------------
A crash can leave the newest segment ending in a record that was only partly written: a
partial header, a partial payload, garbage, or a frame whose crc does not match. Those
records were never acknowledged as durable (the sync that would have covered them did not
return), so cutting them off loses nothing that was promised. A bad frame *followed by a
good one* is different: the writer only writes forward, so the good frame was written
after the bad one, and if anything after the bad frame was synced, so was the bad frame.
That is corruption, and we refuse to open rather than drop a synced record.

The rule (`find_frame_after`): after the first bad frame at offset p of the last segment,
look for any later frame that validates. Because crcs are chained, a frame only validates
with its predecessor's crc as the seed, so the candidates seeds are:

* the crc stored in p's header and the crc recomputed over p's bytes (a flipped payload
  bit keeps the stored value, a flipped crc bit keeps the recomputed one), plus the chain
  value before p; these seeds are tried on *every* offset after p with a sane-looking
  header, which also finds p's real successor when p's length field was damaged;
* for every sane-looking header r after p, r's stored crc, tried on the offset where r
  says it ends (r + header + length); this finds a run of intact frames after a stretch
  of damage whose first frames are lost entirely.

If any candidate validates, the tail is corrupt; otherwise it is torn, and everything from
p to the end of the file is discarded. Zero bytes alone never validate as a frame, so a
garbage or partial record followed only by zeros (preallocated space) is a torn tail.

The rule cannot tell a synced record damaged after the fact, when it is the very last
record, from a torn one: such a record is dropped. And after a power loss that persisted
the pages of an unsynced batch out of order (a hole followed by intact frames), it refuses
to open: it fails safe, and the operator decides.
"""

from __future__ import annotations

import os
import re

from crc32c import crc32c

from .decoder import check_frame, data_end
from .record import CRC_BYTES, HEADER, HEADER_BYTES, RECORD_BYTES_MAX, RecordType
from .segment import preallocate

# A frame header has its type byte at offset 8; candidates are found by searching for a
# valid type byte (a C-speed scan) rather than testing every offset in Python.
_TYPE_AT = 8
_TYPE_BYTE = re.compile(b"[" + bytes([min(RecordType)]) + b"-" + bytes([max(RecordType)]) + b"]")


def find_frame_after(data: bytes, bad_offset: int, prev_crc: int) -> int | None:
    """Offset of a frame after `bad_offset` that validates (=> corruption), or None (=> torn)."""
    size = len(data)
    nz_end = data_end(data)
    seeds = {prev_crc}
    successor_seeds: dict[int, set[int]] = {}
    if bad_offset + HEADER_BYTES <= size:
        stored, n, _ = HEADER.unpack_from(data, bad_offset)
        seeds.add(stored)
        end = bad_offset + HEADER_BYTES + n
        if 0 < n <= RECORD_BYTES_MAX and end <= size:
            view = memoryview(data)
            recomputed = crc32c(view[bad_offset + CRC_BYTES : end], prev_crc)
            seeds.add(recomputed)
            successor_seeds[end] = {stored, recomputed}
    for m in _TYPE_BYTE.finditer(data, bad_offset + 1 + _TYPE_AT, nz_end + _TYPE_AT):
        q = m.start() - _TYPE_AT
        if q + HEADER_BYTES > size:
            break
        stored, n, _ = HEADER.unpack_from(data, q)
        end = q + HEADER_BYTES + n
        if n == 0 or n > RECORD_BYTES_MAX or end > size:
            continue
        for seed in seeds | successor_seeds.get(q, set()):
            if not isinstance(check_frame(data, q, seed, size), str):
                return q
        successor_seeds.setdefault(end, set()).add(stored)
    return None


def truncate_torn_tail(path: str, end: int, *, segment_bytes: int) -> None:
    """Cut the last segment at `end` (the end of its last good frame), durably.

    The space is preallocated again afterwards, so that the zero bytes mark the end of
    data and later appends do not grow the file.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        os.ftruncate(fd, end)
        preallocate(fd, segment_bytes)
        os.fsync(fd)
    finally:
        os.close(fd)
