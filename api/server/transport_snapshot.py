"""Streaming a snapshot body to a peer and receiving one, in chunks, never whole in memory.

Theory of operation. A raft MsgSnap names a snapshot (index, term, conf_state); its body is
a file that can be as big as the store. It never travels inside the message: the sender
dials a dedicated SNAPSHOT connection (so a long transfer never delays heartbeats on the
message stream), sends the MsgSnap with an empty `snapshot.data`, then the file in chunks of
CHUNK_BYTES read on a worker thread (the next one while this one is sent), then SNAP_END
with the byte count and CRC-32C of the body. Backpressure is TCP's: each chunk is followed
by `drain()`, and the receiver writes a chunk on a worker thread while it reads the next,
so at most about two chunks are buffered on either side.

The receiver writes chunks to a temp file in `snapshot_dir` (`*.part`), and only after the
byte count and checksum match and the file is fsynced (and renamed, and the directory
fsynced) does it hand the file to the node (`on_snapshot(message, path)`); it then answers
SNAP_STATUS ok. On any failure the partial file is deleted and the answer is "fail" (when the
connection still allows an answer). The sender turns that answer, or any error on the way,
into `on_snapshot_status(peer, ok)`, which the node reports to raft (etcd ReportSnapshot).

Ordering it relies on: the file handed to `on_snapshot` is complete and durable; the node
owns it from then on (the transport never touches it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import tempfile
from collections.abc import Callable
from typing import BinaryIO

import crc32c
import msgpack

from api.server.peer_codec import decode_message, encode_message
from api.server.transport_wire import (
    FRAME_BYTES_MAX,
    FrameKind,
    Handshake,
    ProtocolError,
    StreamKind,
    encode_frame,
    expect_frame,
    frame_header,
    read_frame,
    unpack_list,
)
from raft.types import Message, MessageType, Snapshot

__all__ = ["CHUNK_BYTES", "receive_snapshot", "send_snapshot_stream"]

log = logging.getLogger("kvstore.transport")

CHUNK_BYTES = 1024 * 1024
CHUNK_FRAME_BYTES_MAX = 8 * 1024 * 1024
IO_TIMEOUT_S = 30.0
# The receiver fsyncs the whole body and the node installs it before the answer.
STATUS_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 3.0


def _sync_and_publish(f: BinaryIO, tmp_path: str) -> str:
    f.flush()
    os.fsync(f.fileno())
    f.close()
    final = tmp_path.removesuffix(".part")
    os.replace(tmp_path, final)
    dir_fd = os.open(os.path.dirname(final) or ".", os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final


def header_of(message: Message) -> Message:
    """The MsgSnap as it travels: the body is streamed separately, so data is emptied."""
    snap = message.snapshot if message.snapshot is not None else Snapshot()
    return dataclasses.replace(message, snapshot=dataclasses.replace(snap, data=b""))


async def send_snapshot_stream(
    *, host: str, port: int, cluster_id: int, member_id: int, message: Message, body_path: str
) -> None:
    """Send `message` and the body at `body_path` to the member at host:port. Returns when the
    receiver has installed it; raises OSError, TimeoutError, TransportError or
    asyncio.IncompleteReadError if it did not (the caller reports failure)."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, limit=64 * 1024), CONNECT_TIMEOUT_S
    )
    f: BinaryIO | None = None
    next_read: asyncio.Future[bytes] | None = None
    try:
        writer.write(Handshake(cluster_id, member_id, message.to, StreamKind.SNAPSHOT).encode())
        await expect_frame(reader, FrameKind.HANDSHAKE_OK, timeout_s=CONNECT_TIMEOUT_S)
        writer.write(encode_frame(FrameKind.MESSAGE, encode_message(header_of(message))))
        f = await loop.run_in_executor(None, lambda: open(body_path, "rb"))
        crc, total = 0, 0
        # The next chunk is read on a worker thread while this one is sent.
        next_read = loop.run_in_executor(None, f.read, CHUNK_BYTES)
        while True:
            chunk = await next_read
            if not chunk:
                break
            next_read = loop.run_in_executor(None, f.read, CHUNK_BYTES)
            crc = crc32c.crc32c(chunk, crc)
            total += len(chunk)
            # Two writes, no concatenation: the chunk is not copied again.
            writer.write(frame_header(FrameKind.SNAP_CHUNK, len(chunk)))
            writer.write(chunk)
            del chunk
            await asyncio.wait_for(writer.drain(), IO_TIMEOUT_S)
        writer.write(encode_frame(FrameKind.SNAP_END, msgpack.packb([total, crc])))
        await asyncio.wait_for(writer.drain(), IO_TIMEOUT_S)
        payload = await expect_frame(reader, FrameKind.SNAP_STATUS, timeout_s=STATUS_TIMEOUT_S)
        ok, text = unpack_list(payload, 2)
        if ok is not True:
            raise ProtocolError(f"peer refused the snapshot: {text}")
    finally:
        if next_read is not None:
            with contextlib.suppress(Exception):
                await next_read  # the file stays open until the worker is done with it
        if f is not None:
            f.close()
        writer.close()


async def receive_snapshot(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    from_id: int,
    snapshot_dir: str,
    on_snapshot: Callable[[Message, str], None],
    snapshot_bytes_max: int,
) -> bool:
    """Receive one snapshot on an accepted, handshaken SNAPSHOT connection. Returns whether
    it was installed; the answer has been sent to the peer when possible."""
    loop = asyncio.get_running_loop()
    ok, reason = False, "receive failed"
    tmp_path: str | None = None
    f: BinaryIO | None = None
    writing: asyncio.Future[int] | None = None
    try:
        kind, payload = await asyncio.wait_for(
            read_frame(reader, bytes_max=FRAME_BYTES_MAX), IO_TIMEOUT_S
        )
        if kind != FrameKind.MESSAGE:
            raise ProtocolError(f"snapshot stream starts with frame kind {kind}")
        message = decode_message(payload)
        if message.type is not MessageType.SNAP or message.snapshot is None:
            raise ProtocolError(f"snapshot stream carries {message.type.value}")
        if message.from_ != from_id:
            raise ProtocolError("snapshot message sender differs from the handshake")
        meta = message.snapshot.metadata
        fd, tmp_path = tempfile.mkstemp(
            dir=snapshot_dir,
            prefix=f"recv-{meta.term:016x}-{meta.index:016x}-{from_id:016x}-",
            suffix=".snap.part",
        )
        f = os.fdopen(fd, "wb")
        crc, total = 0, 0
        while True:
            kind, payload = await asyncio.wait_for(
                read_frame(reader, bytes_max=CHUNK_FRAME_BYTES_MAX), IO_TIMEOUT_S
            )
            if kind == FrameKind.SNAP_CHUNK:
                total += len(payload)
                if total > snapshot_bytes_max:
                    raise ProtocolError(f"snapshot body exceeds {snapshot_bytes_max} bytes")
                crc = crc32c.crc32c(payload, crc)
                # This chunk is written on a worker thread while the next one is read.
                if writing is not None:
                    await writing
                writing = loop.run_in_executor(None, f.write, payload)
                del payload
            elif kind == FrameKind.SNAP_END:
                if writing is not None:
                    await writing
                    writing = None
                want_total, want_crc = unpack_list(payload, 2)
                if want_total != total or want_crc != crc:
                    reason = f"checksum mismatch: got {total} bytes crc {crc:08x}"
                    raise ProtocolError(reason)
                break
            else:
                raise ProtocolError(f"unexpected frame kind {kind} in a snapshot stream")
        final = await loop.run_in_executor(None, _sync_and_publish, f, tmp_path)
        f, tmp_path = None, None
        try:
            on_snapshot(message, final)
        except Exception:
            log.exception("on_snapshot failed for the snapshot from %x", from_id)
            reason = "the receiver could not install the snapshot"
            os.unlink(final)
            raise
        ok, reason = True, ""
        log.info(
            "received snapshot [index: %d, term: %d] from peer %x (%d bytes)",
            meta.index, meta.term, from_id, total,
        )
    except (ProtocolError, ValueError) as exc:
        log.warning("refused the snapshot from peer %x: %s", from_id, exc)
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        log.warning("failed to receive the snapshot from peer %x: %r", from_id, exc)
    except Exception:  # on_snapshot raised; logged above
        pass
    finally:
        if writing is not None:
            with contextlib.suppress(Exception):
                await writing  # the file stays open until the worker is done with it
        if f is not None:
            f.close()
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_path)
    try:
        writer.write(encode_frame(FrameKind.SNAP_STATUS, msgpack.packb([ok, reason])))
        await asyncio.wait_for(writer.drain(), IO_TIMEOUT_S)
    except (OSError, TimeoutError):
        pass
    return ok
