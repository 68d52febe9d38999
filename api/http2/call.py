"""One RPC on an HTTP/2 stream: gRPC message framing, the servicer context, the status.

A servicer sees the same surface as under grpc.aio: a request (or an async iterator of
them), a context with invocation_metadata/abort/set_code/set_details/time_remaining/peer,
and it returns a response (or yields them). Status codes and messages follow grpc-go's
server (etcd's), e.g. "grpc: received message larger than max (N vs. M)".
"""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import grpc

from api.http2 import frames as F
from api.http2.connection import Connection, Stream
from api.http2.headers import RESPONSE_HEADERS, RequestHeaders, trailers


class StatusError(Exception):
    """Ends the RPC with this status: raised by context.abort(), and for bad input."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def end_with_status(conn: Connection, stream: Stream, code: grpc.StatusCode, details: str,
                    *, headers_sent: bool = False) -> None:
    """The status trailers; a "trailers-only" response when no headers went out yet."""
    conn.end(stream, trailers(int(code.value[0]), details, headers_too=not headers_sent))


class Context:
    """The part of grpc.aio.ServicerContext that the servicers use."""

    __slots__ = ("_call", "_code", "_details")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._code: grpc.StatusCode | None = None
        self._details = ""

    def invocation_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self._call.headers.metadata

    def peer(self) -> str:
        return self._call.conn.peer

    def time_remaining(self) -> float | None:
        deadline = self._call.deadline
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    async def abort(self, code: grpc.StatusCode, details: str = "",
                    trailing_metadata: Any = ()) -> None:
        raise StatusError(code, details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details


class Call:
    """Created when a stream's request headers arrive; ends with the status trailers."""

    __slots__ = (
        "conn", "stream", "headers", "handler", "max_receive", "deadline", "cancelled",
        "finished", "task", "_buf", "_messages", "_ended", "_waiter", "_error",
        "_timer", "_headers_sent", "_deadline_hit", "_tracker", "_queued_bytes",
    )

    def __init__(self, conn: Connection, stream: Stream, headers: RequestHeaders,
                 handler: grpc.RpcMethodHandler, max_receive: int,
                 tracker: set[Call]) -> None:
        self.conn = conn
        self.stream = stream
        self.headers = headers
        self.handler = handler
        self.max_receive = max_receive
        self.cancelled = False
        self.finished = False
        self.task: asyncio.Task[None] | None = None
        self._buf = bytearray()
        self._messages: deque[tuple[bytes, int]] = deque()  # (message, wire bytes)
        self._queued_bytes = 0  # wire bytes of the queued messages
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: StatusError | None = None
        self._headers_sent = False
        self._deadline_hit = False
        self._tracker = tracker
        self.deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        if headers.timeout_s is not None:
            self.deadline = time.monotonic() + headers.timeout_s
            self._timer = conn.loop.call_later(headers.timeout_s, self._expire)
        tracker.add(self)
        if handler.request_streaming:
            self.task = conn.loop.create_task(self._run())

    # ------------------------------------------------------------------ requests in

    def on_data(self, payload: bytes, end_stream: bool) -> None:
        if self._error is not None:
            return  # the call already failed on its input; the rest is dropped
        if payload:
            buf = self._buf
            buf += payload
            while len(buf) >= 5:
                length = int.from_bytes(buf[1:5], "big")
                if length > self.max_receive:
                    self._fail_input(StatusError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"grpc: received message larger than max ({length} vs. "
                        f"{self.max_receive})"))
                    return
                if len(buf) < 5 + length:
                    break
                flag = buf[0]
                message = bytes(buf[5: 5 + length])
                del buf[: 5 + length]
                if flag:
                    try:
                        message = self._decompress(message)
                    except StatusError as exc:
                        self._fail_input(exc)
                        return
                self._messages.append((message, 5 + length))
                self._queued_bytes += 5 + length
            # A message still arriving is let in whatever its size against the stream
            # window (max_receive bounds it); whole messages not yet read hold the window
            # (only a streaming call has any).
            self.conn.consumed(self.stream, self._queued_bytes)
        if end_stream:
            self._ended = True
            if self._buf:
                self._fail_input(StatusError(
                    grpc.StatusCode.INTERNAL, "grpc: the client sent a truncated message"))
                return
        if self.task is None:
            if self._ended:
                self.task = self.conn.loop.create_task(self._run())
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _decompress(self, message: bytes) -> bytes:
        encoding = self.headers.encoding
        if encoding == "gzip":
            try:
                return gzip.decompress(message)
            except (OSError, EOFError, zlib.error) as exc:
                raise StatusError(grpc.StatusCode.INTERNAL,
                                f"grpc: failed to decompress the received message: {exc}") from exc
        if encoding in ("", "identity"):
            raise StatusError(grpc.StatusCode.INTERNAL,
                            "grpc: compressed flag set with identity or empty encoding")
        raise StatusError(grpc.StatusCode.UNIMPLEMENTED,
                        f'grpc: Decompressor is not installed for grpc-encoding "{encoding}"')

    def _fail_input(self, error: StatusError) -> None:
        """Bad input ends the call with its status, whatever the handler is doing (a
        streaming handler may read its requests in another task, or not at all)."""
        self._error = error
        self._ended = True
        self._buf.clear()
        if self.task is None:
            self.task = self.conn.loop.create_task(self._run())
        elif not self.task.done():
            self.task.cancel()

    async def _next_request(self) -> bytes | None:
        while not self._messages:
            if self._error is not None:
                raise self._error
            if self._ended:
                return None
            self._waiter = self.conn.loop.create_future()
            await self._waiter
        message, wire_bytes = self._messages.popleft()
        self._queued_bytes -= wire_bytes
        self.conn.consumed(self.stream, self._queued_bytes)
        return message

    async def _request_iterator(self) -> AsyncIterator[Any]:
        deserialize = self.handler.request_deserializer
        while True:
            raw = await self._next_request()
            if raw is None:
                return
            yield self._deserialize(deserialize, raw)

    def _deserialize(self, deserialize: Any, raw: bytes) -> Any:
        if deserialize is None:
            return raw
        try:
            return deserialize(raw)
        except Exception as exc:
            raise StatusError(grpc.StatusCode.INTERNAL,
                            f"grpc: error unmarshalling request: {exc}") from exc

    def _unary_request(self) -> Any:
        if self._error is not None:
            raise self._error
        if len(self._messages) != 1:
            raise StatusError(
                grpc.StatusCode.INTERNAL if self._messages else grpc.StatusCode.UNIMPLEMENTED,
                "grpc: too many requests for a unary RPC" if self._messages
                else "grpc: the client sent no request message")
        raw = self._messages.popleft()[0]
        self._queued_bytes = 0
        return self._deserialize(self.handler.request_deserializer, raw)

    # ------------------------------------------------------------------ the handler

    async def _run(self) -> None:
        context = Context(self)
        handler = self.handler
        try:
            if handler.response_streaming:
                if handler.request_streaming:
                    responses = handler.stream_stream(self._request_iterator(), context)
                else:
                    responses = handler.unary_stream(self._unary_request(), context)
                try:
                    async for response in responses:
                        await self._send(response)
                finally:
                    # Cancelled while waiting for window, the generator sits at a yield:
                    # close it now so its cleanup (a watch stream's watchers) runs at once.
                    aclose = getattr(responses, "aclose", None)
                    if aclose is not None:
                        await aclose()
            else:
                if handler.request_streaming:
                    response = await handler.stream_unary(self._request_iterator(), context)
                else:
                    response = await handler.unary_unary(self._unary_request(), context)
                if context.code() in (None, grpc.StatusCode.OK):
                    # Not awaited: the trailers queue behind whatever waits for window.
                    self.conn.send_data(self.stream, self._framed(response))
            code = context.code() or grpc.StatusCode.OK
            self._finish(code, "" if code is grpc.StatusCode.OK else context.details())
        except StatusError as exc:
            self._finish(exc.code, exc.details)
        except asyncio.CancelledError:
            if self._deadline_hit:
                self._finish(grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
            elif self._error is not None and not self.cancelled:
                self._finish(self._error.code, self._error.details)
            else:
                self._done()
            # Swallowed: cancellation here is this call's own end, not the server's.
        except (ConnectionResetError, BrokenPipeError):
            self._done()
        except Exception as exc:
            code = context.code()
            if code in (None, grpc.StatusCode.OK):
                self._finish(grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc)}: {exc}")
            else:
                self._finish(code, context.details())  # type: ignore[arg-type]

    async def _send(self, response: Any) -> None:
        wait = self.conn.send_data(self.stream, self._framed(response))
        if wait is not None:
            await wait
        await self.conn.drain()

    def _framed(self, response: Any) -> bytes:
        """The response as one gRPC message (5-byte prefix), after the response headers
        if these are still to go."""
        data = self._serialize(response)
        if not self._headers_sent:
            self._headers_sent = True
            self.conn.write(F.frame(F.HEADERS, F.END_HEADERS, self.stream.id, RESPONSE_HEADERS))
        return b"\x00" + len(data).to_bytes(4, "big") + data

    def _serialize(self, response: Any) -> bytes:
        serialize = self.handler.response_serializer
        if serialize is None:
            return bytes(response)
        try:
            return bytes(serialize(response))
        except Exception as exc:
            raise StatusError(grpc.StatusCode.INTERNAL,
                            f"grpc: error while marshaling: {exc}") from exc

    def _finish(self, code: grpc.StatusCode, details: str) -> None:
        end_with_status(self.conn, self.stream, code, details, headers_sent=self._headers_sent)
        self._done()

    def _done(self) -> None:
        self.finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._tracker.discard(self)

    # ------------------------------------------------------------------ ends from outside

    def _expire(self) -> None:
        self._timer = None
        if self.finished:
            return
        self._deadline_hit = True
        if self.task is not None:
            self.task.cancel()
        else:
            self._finish(grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")

    def cancel(self) -> None:
        """The client reset the stream or the connection went away."""
        self.cancelled = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
        elif self.task is None:
            self._done()

