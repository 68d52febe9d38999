"""Frame records into a bytearray, continuing the CRC chain.

Theory of operation
-------------------
The encoder owns the running `crc`: the crc of the last frame it produced. Encoding
never touches the disk; wal.py appends a whole batch to one bytearray and hands it to one
`os.pwrite` per sync, so the per-record cost is a msgpack call, two crc32c calls and a
struct pack (the entry loop below binds them to locals to keep Python overhead down).

If a write of the encoded bytes fails, the chain in memory runs ahead of the file; wal.py
then marks the WAL failed (fail-stop), so the encoder never has to roll back.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgpack
from crc32c import crc32c

from .record import (
    HEADER,
    HEADER_CRC_PREFIX,
    RECORD_BYTES_MAX,
    CrcRecord,
    HardState,
    Metadata,
    Payload,
    RecordType,
    VersionRecord,
    WalEntry,
    encode_payload,
)

_ENTRY = int(RecordType.ENTRY)


class Encoder:
    """Appends framed records to caller-supplied bytearrays; `crc` is the chain value."""

    __slots__ = ("crc",)

    def __init__(self, crc: int = 0) -> None:
        self.crc = crc

    def encode(self, buf: bytearray, rec: Payload) -> None:
        rtype, payload = encode_payload(rec)
        self.encode_raw(buf, rtype, payload)

    def encode_raw(self, buf: bytearray, rtype: int, payload: bytes) -> None:
        n = len(payload)
        if n > RECORD_BYTES_MAX:
            raise ValueError(f"wal: record of {n} bytes exceeds the {RECORD_BYTES_MAX} byte limit")
        prefix = HEADER_CRC_PREFIX.pack(n, rtype)
        crc = crc32c(payload, crc32c(prefix, self.crc))
        buf += HEADER.pack(crc, n, rtype)
        buf += payload
        self.crc = crc

    def encode_entries(self, buf: bytearray, entries: Sequence[WalEntry]) -> None:
        """The hot path: frame a batch of entries with as little per-record work as we can."""
        packb = msgpack.packb
        pack_prefix = HEADER_CRC_PREFIX.pack
        pack_header = HEADER.pack
        crc = self.crc
        limit = RECORD_BYTES_MAX
        for e in entries:
            payload = packb((e.index, e.term, e.type, e.data))
            n = len(payload)
            if n > limit:
                self.crc = crc
                raise ValueError(f"wal: entry {e.index} of {n} bytes exceeds the record limit")
            crc = crc32c(payload, crc32c(pack_prefix(n, _ENTRY), crc))
            buf += pack_header(crc, n, _ENTRY)
            buf += payload
        self.crc = crc


def segment_header(
    *, prev_crc: int, metadata: bytes, hard_state: HardState | None, version: int
) -> tuple[bytes, int]:
    """The records that open every segment, and the chain value after them.

    VERSION is seeded with 0 so it can be read without knowing the chain; CRC carries the
    previous segment's last crc and is itself chained on it, which joins the two files.
    """
    buf = bytearray()
    enc = Encoder(0)
    enc.encode(buf, VersionRecord(version))
    enc.crc = prev_crc
    enc.encode(buf, CrcRecord(prev_crc))
    enc.encode(buf, Metadata(metadata))
    if hard_state is not None:
        enc.encode(buf, hard_state)
    return bytes(buf), enc.crc
