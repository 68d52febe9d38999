"""One client connection: frames in, streams and flow control, frames out.

The parse loop runs in `data_received` and dispatches on the frame type; a stream's
request bytes go to its Call (call.py). Outgoing frames are collected and written once per
loop iteration (a "cork"): a fan-out of 1,000 watch responses becomes a few large socket
writes instead of 1,000 small ones.

Flow control (RFC 9113 section 5.2): we advertise large receive windows and top them up as
requests are consumed; our sends respect the client's connection and stream windows, and a
stream whose window is spent queues its data until a WINDOW_UPDATE arrives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import hpack

from api.http2 import frames as F
from api.http2.headers import HeaderDecoder, RequestHeaders

if TYPE_CHECKING:
    from api.http2.call import Call

log = logging.getLogger(__name__)

# etcd's --grpc-keepalive-interval / --grpc-keepalive-timeout: a connection silent this
# long is pinged, and closed if the ping goes unanswered (a vanished client's watches end).
KEEPALIVE_INTERVAL_S = 2 * 3600.0
KEEPALIVE_TIMEOUT_S = 20.0
STREAM_WINDOW = 4 << 20  # above the largest request (--max-request-bytes + 512 KiB)
CONN_WINDOW = 16 << 20
MAX_HEADER_LIST = 16 << 20  # grpc-go's default
HEADER_BLOCK_MAX = 1 << 20


class ConnectionError_(Exception):
    """A connection error: GOAWAY with `code`, then close."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Stream:
    __slots__ = (
        "id", "send_window", "pending", "pending_end", "waiter", "remote_closed",
        "local_closed", "call", "recv_unacked",
    )

    def __init__(self, stream_id: int, send_window: int) -> None:
        self.id = stream_id
        self.send_window = send_window
        self.pending = bytearray()  # DATA payload (gRPC frames) waiting for window
        self.pending_end: bytes | None = None  # trailer block to send after pending
        self.waiter: asyncio.Future[None] | None = None  # set when pending drains
        self.remote_closed = False
        self.local_closed = False
        self.call: Call | None = None
        self.recv_unacked = 0


class Connection(asyncio.Protocol):
    def __init__(self, start_call: Callable[[Connection, Stream, RequestHeaders], Call | None],
                 on_close: Callable[[Connection], None],
                 http1: Callable[[], asyncio.Protocol] | None = None) -> None:
        self._start_call = start_call
        self._on_close = on_close
        self._http1 = http1
        self.loop = asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self._buf = bytearray()
        self._preface_done = False
        self._decoder = HeaderDecoder(MAX_HEADER_LIST)
        self.streams: dict[int, Stream] = {}
        self._last_stream_id = 0
        self._continuation: tuple[int, int, bytearray] | None = None  # (sid, flags, block)
        self.send_window = F.DEFAULT_WINDOW
        self._peer_initial_window = F.DEFAULT_WINDOW
        self.max_frame = F.DEFAULT_MAX_FRAME
        self._recv_unacked = 0
        self._blocked: dict[int, Stream] = {}  # streams with pending data, in order
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self.closing = False  # GOAWAY sent: no new streams
        self.closed = False
        self._last_recv = 0.0
        self._keepalive: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self._last_recv = self.loop.time()
        self._keepalive = self.loop.call_later(KEEPALIVE_INTERVAL_S, self._keepalive_due)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = f"ipv4:{peer[0]}:{peer[1]}" if ":" not in peer[0] else \
                f"ipv6:[{peer[0]}]:{peer[1]}"

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        for stream in list(self.streams.values()):
            self._drop(stream)
        for fut in self._drain_waiters:
            if not fut.done():
                fut.set_exception(ConnectionResetError())
        self._drain_waiters.clear()
        self._on_close(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def drain(self) -> None:
        """Wait while the socket's send buffer is over its high-water mark."""
        if self._paused and not self.closed:
            fut = self.loop.create_future()
            self._drain_waiters.append(fut)
            await fut
        if self.closed:
            raise ConnectionResetError()

    def _keepalive_due(self) -> None:
        idle = self.loop.time() - self._last_recv
        if idle < KEEPALIVE_INTERVAL_S:
            self._keepalive = self.loop.call_later(KEEPALIVE_INTERVAL_S - idle,
                                                   self._keepalive_due)
            return
        self.write(F.ping(b"kvstore\x00", ack=False))
        self._keepalive = self.loop.call_later(
            KEEPALIVE_TIMEOUT_S, self._keepalive_expired, self.loop.time())

    def _keepalive_expired(self, pinged_at: float) -> None:
        if self._last_recv >= pinged_at:
            self._keepalive_due()  # something arrived since the ping: alive
            return
        log.info("http2: closing connection from %s: keepalive ping unanswered", self.peer)
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self._last_recv = self.loop.time()
        buf = self._buf
        buf += data
        try:
            if not self._preface_done:
                head = bytes(buf[: len(F.PREFACE)])
                if not F.PREFACE.startswith(head):
                    if self._http1 is not None:
                        self._hand_off_http1()
                        return
                    raise ConnectionError_(F.PROTOCOL_ERROR, "bad connection preface")
                if len(head) < len(F.PREFACE):
                    return
                # Our SETTINGS wait for the client's preface: until then the client may
                # still turn out to speak HTTP/1.1 (see _hand_off_http1).
                self.write(F.settings({
                    F.SETTINGS_MAX_CONCURRENT_STREAMS: (1 << 31) - 1,
                    F.SETTINGS_INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                    F.SETTINGS_MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
                }) + F.window_update(0, CONN_WINDOW - F.DEFAULT_WINDOW))
                del buf[: len(F.PREFACE)]
                self._preface_done = True
            pos = 0
            end = len(buf)
            while end - pos >= F.HEADER_LEN:
                length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
                if length > F.MAX_FRAME_LIMIT:
                    raise ConnectionError_(F.FRAME_SIZE_ERROR, "frame too large")
                if end - pos < F.HEADER_LEN + length:
                    break
                kind = buf[pos + 3]
                flags = buf[pos + 4]
                sid = int.from_bytes(buf[pos + 5: pos + 9], "big") & 0x7FFFFFFF
                payload = bytes(buf[pos + 9: pos + 9 + length])
                pos += F.HEADER_LEN + length
                self._frame(kind, flags, sid, payload)
            del buf[:pos]
        except ConnectionError_ as exc:
            self._fail(exc.code, str(exc))
        except Exception:  # a bug here must not leave the client hanging
            log.exception("http2: connection failed")
            self._fail(F.INTERNAL_ERROR, "internal error")

    def _hand_off_http1(self) -> None:
        """Not HTTP/2: an HTTP/1.1 client (etcd serves /health, /version and /metrics on
        the client URL too). The socket goes to that protocol with the bytes read so far."""
        assert self._http1 is not None and self.transport is not None
        protocol = self._http1()
        transport, data = self.transport, bytes(self._buf)
        self._buf.clear()
        self.closed = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._on_close(self)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(data)

    # ------------------------------------------------------------------ frames in

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if self._continuation is not None and kind != F.CONTINUATION:
            raise ConnectionError_(F.PROTOCOL_ERROR, "expected CONTINUATION")
        if kind == F.DATA:
            self._on_data(flags, sid, payload)
        elif kind == F.HEADERS:
            self._on_headers(flags, sid, payload)
        elif kind == F.CONTINUATION:
            self._on_continuation(flags, sid, payload)
        elif kind == F.WINDOW_UPDATE:
            self._on_window_update(sid, payload)
        elif kind == F.SETTINGS:
            self._on_settings(flags, sid, payload)
        elif kind == F.PING:
            if sid != 0 or len(payload) != 8:
                raise ConnectionError_(F.PROTOCOL_ERROR, "bad PING")
            if not flags & F.ACK:
                self.write(F.ping(payload, ack=True))
        elif kind == F.RST_STREAM:
            self._on_rst_stream(sid, payload)
        elif kind == F.GOAWAY:
            pass  # the client closes the connection when its streams are done
        elif kind == F.PUSH_PROMISE:
            raise ConnectionError_(F.PROTOCOL_ERROR, "PUSH_PROMISE from a client")
        # PRIORITY and unknown frame types are ignored (RFC 9113 5.5).

    def _on_data(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0:
            raise ConnectionError_(F.PROTOCOL_ERROR, "DATA on stream 0")
        flow_len = len(payload)
        if flags & F.PADDED:
            payload = _unpad(payload)
        self._recv_unacked += flow_len
        if self._recv_unacked >= CONN_WINDOW // 2:
            self.write(F.window_update(0, self._recv_unacked))
            self._recv_unacked = 0
        stream = self.streams.get(sid)
        if stream is None or stream.remote_closed:
            if sid > self._last_stream_id:
                raise ConnectionError_(F.PROTOCOL_ERROR, "DATA on an idle stream")
            return  # a stream we already closed: the bytes are counted above, then dropped
        stream.recv_unacked += flow_len
        if flags & F.END_STREAM:
            stream.remote_closed = True
        call = stream.call
        if call is not None:
            call.on_data(payload, bool(flags & F.END_STREAM))
        if stream.local_closed and stream.remote_closed:
            self._forget(stream)

    def consumed(self, stream: Stream, held: int = 0) -> None:
        """Top the stream's receive window up once half of it is spent on bytes the call
        has taken. `held`: bytes of whole messages still queued for the handler, which
        stay unacknowledged (the backpressure on a streaming call)."""
        free = stream.recv_unacked - held
        if free >= STREAM_WINDOW // 2 and not stream.remote_closed:
            self.write(F.window_update(stream.id, free))
            stream.recv_unacked = held

    def _on_headers(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0:
            raise ConnectionError_(F.PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & F.PADDED:
            payload = _unpad(payload)
        if flags & F.PRIORITY_FLAG:
            payload = payload[5:]
        if not flags & F.END_HEADERS:
            self._continuation = (sid, flags, bytearray(payload))
            return
        self._headers_complete(sid, flags, payload)

    def _on_continuation(self, flags: int, sid: int, payload: bytes) -> None:
        if self._continuation is None or self._continuation[0] != sid:
            raise ConnectionError_(F.PROTOCOL_ERROR, "unexpected CONTINUATION")
        block = self._continuation[2]
        block += payload
        if len(block) > HEADER_BLOCK_MAX:
            raise ConnectionError_(F.PROTOCOL_ERROR, "header block too large")
        if flags & F.END_HEADERS:
            first_flags = self._continuation[1]
            self._continuation = None
            self._headers_complete(sid, first_flags, bytes(block))

    def _headers_complete(self, sid: int, flags: int, block: bytes) -> None:
        try:
            fields = self._decoder.decode(block)
        except hpack.HPACKError as exc:
            raise ConnectionError_(F.COMPRESSION_ERROR, f"hpack: {exc}") from exc
        end_stream = bool(flags & F.END_STREAM)
        stream = self.streams.get(sid)
        if stream is not None:  # trailers from the client: the end of its side
            if not end_stream:
                raise ConnectionError_(F.PROTOCOL_ERROR, "HEADERS without END_STREAM")
            stream.remote_closed = True
            if stream.call is not None:
                stream.call.on_data(b"", True)
            if stream.local_closed:
                self._forget(stream)
            return
        if sid % 2 == 0 or sid <= self._last_stream_id:
            raise ConnectionError_(F.PROTOCOL_ERROR, f"bad stream id {sid}")
        self._last_stream_id = sid
        if self.closing:
            self.write(F.rst_stream(sid, F.REFUSED_STREAM))
            return
        new = Stream(sid, self._peer_initial_window)
        new.remote_closed = end_stream
        self.streams[sid] = new
        new.call = self._start_call(self, new, RequestHeaders(fields))

    def _on_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionError_(F.FRAME_SIZE_ERROR, "bad WINDOW_UPDATE")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if sid == 0:
            if increment == 0:
                raise ConnectionError_(F.PROTOCOL_ERROR, "zero window increment")
            self.send_window += increment
            if self.send_window > F.MAX_WINDOW:
                raise ConnectionError_(F.FLOW_CONTROL_ERROR, "window overflow")
            for blocked in list(self._blocked.values()):
                self._flush_stream(blocked)
                if self.send_window <= 0:
                    break
            return
        stream = self.streams.get(sid)
        if stream is None:
            return
        if increment == 0:
            self._reset(stream, F.PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > F.MAX_WINDOW:
            self._reset(stream, F.FLOW_CONTROL_ERROR)
            return
        if stream.pending or stream.pending_end is not None:
            self._flush_stream(stream)

    def _on_settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid != 0:
            raise ConnectionError_(F.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & F.ACK:
            return
        if len(payload) % 6:
            raise ConnectionError_(F.FRAME_SIZE_ERROR, "bad SETTINGS length")
        for key, value in F.parse_settings(payload):
            if key == F.SETTINGS_INITIAL_WINDOW_SIZE:
                if value > F.MAX_WINDOW:
                    raise ConnectionError_(F.FLOW_CONTROL_ERROR, "initial window too large")
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
            elif key == F.SETTINGS_MAX_FRAME_SIZE:
                if not F.DEFAULT_MAX_FRAME <= value <= F.MAX_FRAME_LIMIT:
                    raise ConnectionError_(F.PROTOCOL_ERROR, "bad MAX_FRAME_SIZE")
                self.max_frame = value
            # HEADER_TABLE_SIZE does not matter: our responses never use the dynamic table.
        self.write(F.settings_ack())
        for stream in list(self._blocked.values()):
            self._flush_stream(stream)

    def _on_rst_stream(self, sid: int, payload: bytes) -> None:
        if sid == 0 or len(payload) != 4:
            raise ConnectionError_(F.PROTOCOL_ERROR, "bad RST_STREAM")
        stream = self.streams.get(sid)
        if stream is not None:
            self._drop(stream)

    def _drop(self, stream: Stream) -> None:
        """The stream ends without its response: reset by either side, or the connection
        is gone. Its call is cancelled; a writer waiting for window sees the closed stream
        on its next send."""
        self._forget(stream)
        stream.local_closed = stream.remote_closed = True
        if stream.call is not None:
            stream.call.cancel()
        if stream.waiter is not None and not stream.waiter.done():
            stream.waiter.set_result(None)

    # ------------------------------------------------------------------ frames out

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and not self.closed and self.transport is not None:
            out, self._out = self._out, []
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])

    def send_data(self, stream: Stream, data: bytes) -> asyncio.Future[None] | None:
        """Queue DATA for a stream; returns a future while some waits for window, else None."""
        if stream.local_closed:
            raise ConnectionResetError()
        if not stream.pending:
            n = min(len(data), self.send_window, stream.send_window)
            if n == len(data) and n <= self.max_frame:
                if n:
                    self.send_window -= n
                    stream.send_window -= n
                    self.write(F.frame_head(F.DATA, 0, stream.id, n) + data)
                return None
        stream.pending += data
        self._flush_stream(stream)
        if not stream.pending:
            return None
        if stream.waiter is None or stream.waiter.done():
            stream.waiter = self.loop.create_future()
        return stream.waiter

    def end(self, stream: Stream, trailer_block: bytes) -> None:
        """Send the trailers (END_STREAM) after any DATA still waiting for window. The
        frames of one loop iteration go out in one socket write (write), so headers, a
        small response and its trailers share one."""
        if stream.local_closed:
            return
        if stream.pending:
            stream.pending_end = trailer_block
            return
        self.write(self._trailers_frame(stream.id, trailer_block))
        self._closed_locally(stream)

    def _trailers_frame(self, sid: int, block: bytes) -> bytes:
        if len(block) <= self.max_frame:
            return F.frame(F.HEADERS, F.END_HEADERS | F.END_STREAM, sid, block)
        parts = [block[i: i + self.max_frame] for i in range(0, len(block), self.max_frame)]
        out = [F.frame(F.HEADERS, F.END_STREAM, sid, parts[0])]
        for i, part in enumerate(parts[1:], 1):
            out.append(F.frame(F.CONTINUATION, F.END_HEADERS if i == len(parts) - 1 else 0,
                               sid, part))
        return b"".join(out)

    def _flush_stream(self, stream: Stream) -> None:
        pending = stream.pending
        while pending:
            n = min(len(pending), self.send_window, stream.send_window, self.max_frame)
            if n <= 0:
                self._blocked[stream.id] = stream
                return
            self.send_window -= n
            stream.send_window -= n
            self.write(F.frame_head(F.DATA, 0, stream.id, n) + bytes(pending[:n]))
            del pending[:n]
        self._blocked.pop(stream.id, None)
        if stream.waiter is not None and not stream.waiter.done():
            stream.waiter.set_result(None)
        if stream.pending_end is not None:
            block, stream.pending_end = stream.pending_end, None
            self.write(self._trailers_frame(stream.id, block))
            self._closed_locally(stream)

    def _closed_locally(self, stream: Stream) -> None:
        stream.local_closed = True
        if not stream.remote_closed:
            # The response is complete; the client need not send more (RFC 9113 8.1).
            self.write(F.rst_stream(stream.id, F.NO_ERROR))
            stream.remote_closed = True
        self._forget(stream)

    def _forget(self, stream: Stream) -> None:
        self.streams.pop(stream.id, None)
        self._blocked.pop(stream.id, None)

    def _reset(self, stream: Stream, code: int) -> None:
        self.write(F.rst_stream(stream.id, code))
        self._drop(stream)

    def goaway(self) -> None:
        """Graceful: streams already started finish; new ones are refused."""
        if not self.closing and not self.closed:
            self.closing = True
            self.write(F.goaway(self._last_stream_id, F.NO_ERROR))

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self._flush()
            self.transport.close()

    def _fail(self, code: int, message: str) -> None:
        log.debug("http2: closing connection from %s: %s", self.peer, message)
        self.write(F.goaway(self._last_stream_id, code, message.encode()[:256]))
        self.close()

    @property
    def has_pending_output(self) -> bool:
        return bool(self._blocked) and not self.closed


def _unpad(payload: bytes) -> bytes:
    if not payload:
        raise ConnectionError_(F.PROTOCOL_ERROR, "padding")
    pad = payload[0]
    if pad >= len(payload):
        raise ConnectionError_(F.PROTOCOL_ERROR, "padding exceeds the frame")
    return payload[1: len(payload) - pad]

