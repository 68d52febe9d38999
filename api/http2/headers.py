"""Header blocks: requests decoded with hpack (RFC 7541, Huffman and the dynamic table),
responses encoded here as literals that never touch the peer's dynamic table."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from urllib.parse import quote

import hpack

__all__ = [
    "RESPONSE_HEADERS",
    "HeaderDecoder",
    "RequestHeaders",
    "parse_timeout",
    "trailers",
]

_STATUS_200 = b"\x88"  # indexed: static table entry 8, ":status: 200"


def _int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """HPACK integer with an N-bit prefix (RFC 7541 5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(raw: bytes) -> bytes:
    return _int(len(raw), 7) + raw  # not Huffman-coded


def _literal(name: bytes, value: bytes) -> bytes:
    """Literal header field without indexing, new name (RFC 7541 6.2.2)."""
    return b"\x00" + _string(name) + _string(value)


def _literal_static_name(index: int, value: bytes) -> bytes:
    """Literal without indexing whose name is static table entry `index`."""
    return _int(index, 4) + _string(value)


# ":status: 200" + "content-type: application/grpc" (static entry 31 names content-type).
RESPONSE_HEADERS = _STATUS_200 + _literal_static_name(31, b"application/grpc")

# grpc-message is percent-encoded: every byte outside printable ASCII, and "%" itself.
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


@functools.lru_cache(maxsize=256)  # one block per status the server gives, mostly OK
def trailers(code: int, message: str, *, headers_too: bool = False) -> bytes:
    """The status trailer block; with headers_too, a "trailers-only" response."""
    block = _literal(b"grpc-status", str(code).encode())
    if message:
        block += _literal(b"grpc-message", quote(message, safe=_SAFE).encode("ascii"))
    return (RESPONSE_HEADERS + block) if headers_too else block


_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


_TIMEOUT = re.compile(r"[0-9]{1,8}[HMSmun]")  # the spec's TimeoutValue: at most 8 ASCII digits


def parse_timeout(value: str) -> float | None:
    """grpc-timeout ("100m", "5S", ...) in seconds; None if malformed."""
    if not _TIMEOUT.fullmatch(value):
        return None
    return int(value[:-1]) * _TIMEOUT_UNITS[value[-1]]


class RequestHeaders:
    """The parts of a request's header block the server uses."""

    __slots__ = ("path", "content_type", "timeout_s", "encoding", "metadata", "method")

    def __init__(self, fields: list[tuple[bytes, bytes]]) -> None:
        self.path = ""
        self.method = ""
        self.content_type = ""
        self.timeout_s: float | None = None
        self.encoding = "identity"
        metadata: list[tuple[str, str | bytes]] = []
        for raw_name, raw_value in fields:
            name = raw_name.decode("latin-1")
            if name[:1] == ":":
                if name == ":path":
                    self.path = raw_value.decode("latin-1")
                elif name == ":method":
                    self.method = raw_value.decode("latin-1")
                continue
            if name == "content-type":
                self.content_type = raw_value.decode("latin-1")
            elif name == "grpc-timeout":
                self.timeout_s = parse_timeout(raw_value.decode("latin-1"))
            elif name == "grpc-encoding":
                self.encoding = raw_value.decode("latin-1")
            elif name == "te" or name.startswith("grpc-"):
                continue  # transport fields, not metadata
            elif name.endswith("-bin"):
                metadata.append((name, _unbase64(raw_value)))
            else:
                metadata.append((name, raw_value.decode("latin-1")))
        self.metadata = tuple(metadata)


def _unbase64(value: bytes) -> bytes:
    # Binary metadata travels base64-encoded, padding optional (gRPC over HTTP/2 spec).
    try:
        return base64.b64decode(value + b"=" * (-len(value) % 4))
    except binascii.Error:
        return value


class HeaderDecoder:
    """hpack's decoder with a cache of whole header blocks.

    Once a client's fields sit in the dynamic table it sends the same block for every call
    of a method (all indexed references), and decoding such a block leaves the table as it
    was: its fields depend only on the block and the table. So a block whose decode did not
    touch the table is remembered, until the table next changes (an added entry or a size
    update). Decoding was a seventh of the loop's time under load.
    """

    CACHE_MAX = 256

    def __init__(self, max_header_list_size: int) -> None:
        self._decoder = hpack.Decoder()
        self._decoder.max_header_list_size = max_header_list_size
        self._generation = 0
        self._cache: dict[bytes, tuple[int, list[tuple[bytes, bytes]]]] = {}
        table = self._decoder.header_table
        add = table.add

        def counting_add(name: bytes, value: bytes) -> None:
            self._generation += 1
            add(name, value)

        table.add = counting_add  # type: ignore[method-assign]

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        hit = self._cache.get(block)
        if hit is not None and hit[0] == self._generation:
            return hit[1]
        table = self._decoder.header_table
        generation, size = self._generation, table.maxsize
        fields = list(self._decoder.decode(block, raw=True))
        if table.maxsize != size:
            self._generation += 1
        if self._generation != generation:
            self._cache.clear()  # every remembered block may point at moved entries
        else:
            if len(self._cache) >= self.CACHE_MAX:
                self._cache.clear()
            self._cache[block] = (generation, fields)
        return fields

