"""Frames and the handshake of the peer protocol (used by transport.py and transport_snapshot.py).

Theory of operation. Every peer connection is a plain TCP stream of frames:

    +-------------------+-----------+------------------+
    | length: uint32 BE | kind: u8  | payload (length) |
    +-------------------+-----------+------------------+

The dialing member speaks first with a HANDSHAKE frame, `msgpack([PROTOCOL_VERSION,
cluster_id, from_member_id, to_member_id, stream_kind])`. The listener checks it and answers
HANDSHAKE_OK, or ERROR (`msgpack([code, text])`) and closes. That is how "a member of another
cluster is refused": a cluster ID mismatch, a connection meant for another member ID, or a
sender that was removed from the cluster (etcd answers 403/410/412 in the same cases). This is
authentication of *configuration mistakes*, not of attackers: peer TLS is a separate feature.

After the handshake, a MESSAGE stream (one long-lived connection per ordered pair of members,
dialed by the sender) carries MESSAGE frames one way, each the peer_codec bytes of one raft
message. A SNAPSHOT stream (one connection per snapshot) carries one MESSAGE frame (the MsgSnap
header, body-less), then SNAP_CHUNK frames, then SNAP_END `msgpack([total_bytes, crc32c])`;
the receiver answers SNAP_STATUS `msgpack([ok, text])`. A MEMBERS stream (a joining member
that knows neither the cluster ID nor its own member ID yet) gets one MEMBERS frame,
`msgpack([cluster_id, [[id, name, peer_urls, client_urls, is_learner], ...]])`, and is closed.

Every frame has a size limit, checked before the payload is read, so a confused or hostile
peer can never make us allocate more than FRAME_BYTES_MAX (the raft size limits keep real
messages far below it).

Errors (peer and network faults; caller misuse raises ValueError):

    TransportError
     +-- ProtocolError          a peer broke the frame or handshake rules (connection closed)
     +-- HandshakeRefusedError  the other side refused our handshake (its ERROR frame's text)
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgpack

__all__ = [
    "FRAME_BYTES_MAX",
    "HEADER_BYTES",
    "PROTOCOL_VERSION",
    "FrameKind",
    "FrameSplitter",
    "Handshake",
    "HandshakeRefusedError",
    "InvariantViolation",
    "ProtocolError",
    "StreamKind",
    "TransportError",
    "encode_frame",
    "error_frame",
    "expect_frame",
    "frame_header",
    "invariant",
    "parse_peer_url",
    "read_frame",
    "unpack_list",
]

PROTOCOL_VERSION = 1
# Raft messages are bounded by max_size_per_msg_bytes (1 MiB) and a snapshot header has no
# body, so 64 MiB plus overhead is a generous ceiling that still bounds memory per peer.
FRAME_BYTES_MAX = 64 * 1024 * 1024 + 64 * 1024

_HEADER = struct.Struct(">IB")
HEADER_BYTES = _HEADER.size


class TransportError(Exception):
    """Base of the peer transport's errors (peer and network faults)."""


class ProtocolError(TransportError):
    """A peer sent something the protocol does not allow; the connection is closed."""


class HandshakeRefusedError(TransportError):
    """The listener refused our handshake; str() is its reason."""


class InvariantViolation(RuntimeError):
    """A programmer error detected by `invariant` (kept under `python -O`)."""


def invariant(cond: bool, msg: str) -> None:
    """Always-on assertion for programmer errors (`assert` vanishes under -O)."""
    if not cond:
        raise InvariantViolation(msg)


class FrameKind:
    """Frame kind bytes. Part of the protocol: never renumber, only append."""

    HANDSHAKE = 1
    HANDSHAKE_OK = 2
    ERROR = 3
    MESSAGE = 4
    SNAP_CHUNK = 5
    SNAP_END = 6
    SNAP_STATUS = 7
    MEMBERS = 8


class StreamKind:
    """What a connection carries after the handshake."""

    MESSAGES = 0
    SNAPSHOT = 1
    # A member joining with --initial-cluster-state=existing asks for the cluster ID and the
    # member list (etcd's GET /members on the peer port); its handshake carries zero IDs.
    MEMBERS = 2


@dataclass(frozen=True, slots=True)
class Handshake:
    cluster_id: int
    from_id: int
    to_id: int
    stream_kind: int
    version: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        body = msgpack.packb(
            [self.version, self.cluster_id, self.from_id, self.to_id, self.stream_kind]
        )
        return encode_frame(FrameKind.HANDSHAKE, body)

    @classmethod
    def decode(cls, payload: bytes) -> Handshake:
        ints: list[int] = []
        for value in unpack_list(payload, 5):
            if type(value) is not int or value < 0:
                raise ProtocolError("malformed handshake")
            ints.append(value)
        version, cluster_id, from_id, to_id, stream_kind = ints
        return cls(cluster_id, from_id, to_id, stream_kind, version)


def frame_header(kind: int, length: int) -> bytes:
    invariant(0 <= length <= FRAME_BYTES_MAX, f"frame of {length} bytes exceeds the limit")
    return _HEADER.pack(length, kind)


def encode_frame(kind: int, payload: bytes) -> bytes:
    return frame_header(kind, len(payload)) + payload


def unpack_list(payload: bytes, length: int) -> list[object]:
    """A msgpack array of exactly `length` items, or ProtocolError."""
    try:
        value = msgpack.unpackb(payload, use_list=True, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(f"not msgpack: {type(exc).__name__}") from None
    if type(value) is not list or len(value) != length:
        raise ProtocolError("unexpected frame payload shape")
    return value


def error_frame(code: str, text: str) -> bytes:
    return encode_frame(FrameKind.ERROR, msgpack.packb([code, text]))


class FrameSplitter:
    """Cuts a byte stream into (kind, payload) frames, however the bytes arrive: a read of
    the socket may hold many frames or part of one. One read yields every frame it completes,
    so a burst of messages costs one wake-up of the reader rather than two per frame."""

    def __init__(self, *, bytes_max: int = FRAME_BYTES_MAX) -> None:
        self._buf = bytearray()
        self._bytes_max = bytes_max

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The frames completed by `data`; ProtocolError for a frame above the limit (checked
        as soon as its header is in, before buffering its payload)."""
        buf = self._buf
        buf += data
        frames: list[tuple[int, bytes]] = []
        pos, end = 0, len(buf)
        while end - pos >= HEADER_BYTES:
            length, kind = _HEADER.unpack_from(buf, pos)
            if length > self._bytes_max:
                raise ProtocolError(f"frame of {length} bytes exceeds the limit of {self._bytes_max}")
            stop = pos + HEADER_BYTES + length
            if stop > end:
                break
            frames.append((kind, bytes(buf[pos + HEADER_BYTES:stop])))
            pos = stop
        if pos:
            del buf[:pos]
        return frames

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)


async def read_frame(
    reader: asyncio.StreamReader, *, bytes_max: int = FRAME_BYTES_MAX
) -> tuple[int, bytes]:
    """The next (kind, payload). Raises asyncio.IncompleteReadError at EOF and ProtocolError
    for a frame above `bytes_max` (checked before reading the payload)."""
    header = await reader.readexactly(HEADER_BYTES)
    length, kind = _HEADER.unpack(header)
    if length > bytes_max:
        raise ProtocolError(f"frame of {length} bytes exceeds the limit of {bytes_max}")
    payload = await reader.readexactly(length) if length else b""
    return kind, payload


async def expect_frame(
    reader: asyncio.StreamReader, kind: int, *, timeout_s: float, bytes_max: int = 64 * 1024
) -> bytes:
    """Read one frame of `kind` within `timeout_s`. An ERROR frame raises
    HandshakeRefusedError with the peer's reason; any other kind is a ProtocolError."""
    got, payload = await asyncio.wait_for(read_frame(reader, bytes_max=bytes_max), timeout_s)
    if got == FrameKind.ERROR:
        fields = unpack_list(payload, 2)
        raise HandshakeRefusedError(f"{fields[0]}: {fields[1]}")
    if got != kind:
        raise ProtocolError(f"expected frame kind {kind}, got {got}")
    return payload


def parse_peer_url(url: str) -> tuple[str, int]:
    """host and port of a peer URL such as http://127.0.0.1:2380 (ValueError if it has none)."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"peer URL has no host:port: {url!r}")
    return parts.hostname, parts.port
