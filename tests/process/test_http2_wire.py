"""api/http2 on the wire, as a raw socket sees it: SETTINGS first, PING, a bad preface, a
header block split over CONTINUATION, flow control, protocol errors."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, NamedTuple

import grpc
import hpack
import pytest

from api.http2 import frames as F
from api.http2.server import Http2Server
from tests.hpack_blocks import decode_block

SERVICE = "test.Echo"
pytestmark = pytest.mark.slow


def _run(body: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(body, 5))


# ---------------------------------------------------------------------- raw socket


class Frame(NamedTuple):
    kind: int
    flags: int
    stream_id: int
    payload: bytes


async def _echo(request: bytes, context: Any) -> bytes:
    return request


@contextlib.asynccontextmanager
async def _raw() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    server = Http2Server(max_receive_bytes=1 << 20)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        await server.stop(0)


async def _read_frame(reader: asyncio.StreamReader) -> Frame:
    head = await reader.readexactly(F.HEADER_LEN)
    length = int.from_bytes(head[:3], "big")
    stream_id = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
    return Frame(head[3], head[4], stream_id, await reader.readexactly(length))


async def _read_until(reader: asyncio.StreamReader, done: Callable[[Frame], bool]) -> list[Frame]:
    frames = [await _read_frame(reader)]
    while not done(frames[-1]):
        frames.append(await _read_frame(reader))
    return frames


def _request_block(path: str, *extra: tuple[bytes, bytes]) -> bytes:
    return hpack.Encoder().encode([
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
        (b":authority", b"x"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
        *extra,
    ])


def _grpc_message(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def _is_end_of_stream_1(frame: Frame) -> bool:
    return frame.stream_id == 1 and frame.kind == F.HEADERS and bool(frame.flags & F.END_STREAM)


def test_the_server_answers_the_preface_with_settings_then_acks_ours() -> None:
    async def body() -> None:
        async with _raw() as (reader, writer):
            writer.write(F.PREFACE + F.settings({}))
            first = await _read_frame(reader)
            assert (first.kind, first.flags, first.stream_id) == (F.SETTINGS, 0, 0)
            advertised = dict(F.parse_settings(first.payload))
            assert advertised[F.SETTINGS_INITIAL_WINDOW_SIZE] > F.DEFAULT_WINDOW
            frames = await _read_until(reader, lambda f: f.kind == F.SETTINGS)
            assert (frames[-1].flags, frames[-1].payload) == (F.ACK, b"")

    _run(body())


def test_a_ping_is_answered_with_the_same_bytes() -> None:
    async def body() -> None:
        async with _raw() as (reader, writer):
            writer.write(F.PREFACE + F.settings({}) + F.ping(b"\x01pingme\xff", ack=False))
            frames = await _read_until(reader, lambda f: f.kind == F.PING)
            assert (frames[-1].flags, frames[-1].stream_id, frames[-1].payload) == (
                F.ACK, 0, b"\x01pingme\xff")

    _run(body())


@pytest.mark.parametrize("preface", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", b"X"])
def test_a_bad_preface_gets_goaway_then_the_connection_closes(preface: bytes) -> None:
    async def body() -> None:
        async with _raw() as (reader, writer):
            writer.write(preface)
            frames = await _read_until(reader, lambda f: f.kind == F.GOAWAY)
            last_stream_id = int.from_bytes(frames[-1].payload[:4], "big")
            code = int.from_bytes(frames[-1].payload[4:8], "big")
            assert (last_stream_id, code) == (0, F.PROTOCOL_ERROR)
            assert await reader.read() == b""

    _run(body())


def test_a_header_block_split_over_continuation_gets_the_echo() -> None:
    async def body() -> None:
        block = _request_block(f"/{SERVICE}/Echo", (b"padding", b"p" * 40))
        half = len(block) // 2
        async with _raw() as (reader, writer):
            writer.write(F.PREFACE + F.settings({})
                         + F.frame(F.HEADERS, 0, 1, block[:half])
                         + F.frame(F.CONTINUATION, 0, 1, block[half:half + 3])
                         + F.frame(F.CONTINUATION, F.END_HEADERS, 1, block[half + 3:])
                         + F.frame(F.DATA, F.END_STREAM, 1, _grpc_message(b"split \x00 ok")))
            frames = [f for f in await _read_until(reader, _is_end_of_stream_1)
                      if f.stream_id == 1]
            assert [f.kind for f in frames] == [F.HEADERS, F.DATA, F.HEADERS]
            head, data, tail = frames
            assert head.flags & F.END_HEADERS and not head.flags & F.END_STREAM
            assert decode_block(head.payload) == [
                (":status", "200"), ("content-type", "application/grpc")]
            assert data.payload == _grpc_message(b"split \x00 ok")
            assert decode_block(tail.payload) == [("grpc-status", "0")]

    _run(body())


def test_an_unknown_method_gets_a_trailers_only_response() -> None:
    async def body() -> None:
        async with _raw() as (reader, writer):
            writer.write(F.PREFACE + F.settings({})
                         + F.frame(F.HEADERS, F.END_HEADERS, 1, _request_block(f"/{SERVICE}/No"))
                         + F.frame(F.DATA, F.END_STREAM, 1, _grpc_message(b"")))
            frames = [f for f in await _read_until(reader, _is_end_of_stream_1)
                      if f.stream_id == 1]
            assert len(frames) == 1
            assert dict(decode_block(frames[0].payload)) == {
                ":status": "200", "content-type": "application/grpc", "grpc-status": "12",
                "grpc-message": f"unknown method No for service {SERVICE}"}

    _run(body())


def test_a_frame_between_headers_and_continuation_is_a_protocol_error() -> None:
    async def body() -> None:
        block = _request_block(f"/{SERVICE}/Echo")
        async with _raw() as (reader, writer):
            writer.write(F.PREFACE + F.settings({})
                         + F.frame(F.HEADERS, 0, 1, block[:5])
                         + F.ping(b"12345678", ack=False))
            frames = await _read_until(reader, lambda f: f.kind == F.GOAWAY)
            assert int.from_bytes(frames[-1].payload[4:8], "big") == F.PROTOCOL_ERROR
            assert F.PING not in [f.kind for f in frames]
            assert await reader.read() == b""

    _run(body())


def test_a_malformed_grpc_timeout_does_not_kill_the_connection() -> None:
    async def body() -> None:
        block = _request_block(f"/{SERVICE}/Echo", (b"grpc-timeout", b"\xb2S"))
        async with _raw() as (reader, writer):
            writer.write(F.PREFACE + F.settings({})
                         + F.frame(F.HEADERS, F.END_HEADERS, 1, block)
                         + F.frame(F.DATA, F.END_STREAM, 1, _grpc_message(b"x")))
            frames = await _read_until(
                reader, lambda f: f.kind == F.GOAWAY or _is_end_of_stream_1(f))
            assert frames[-1].kind == F.HEADERS

    _run(body())


def test_a_large_response_is_split_into_max_frame_sized_data_and_waits_for_window() -> None:
    async def body() -> None:
        message = _grpc_message(bytes(range(256)) * 400)
        chunks = [message[i: i + F.DEFAULT_MAX_FRAME]
                  for i in range(0, len(message), F.DEFAULT_MAX_FRAME)]
        async with _raw() as (reader, writer):
            writer.write(F.PREFACE + F.settings({})
                         + F.frame(F.HEADERS, F.END_HEADERS, 1, _request_block(f"/{SERVICE}/Echo"))
                         + b"".join(F.frame(F.DATA, 0, 1, c) for c in chunks[:-1])
                         + F.frame(F.DATA, F.END_STREAM, 1, chunks[-1]))
            data: list[Frame] = []
            while sum(len(f.payload) for f in data) < F.DEFAULT_WINDOW:
                frame = await _read_frame(reader)
                if frame.kind == F.DATA:
                    data.append(frame)
            assert sum(len(f.payload) for f in data) == F.DEFAULT_WINDOW
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(_read_frame(reader), 0.1)
            writer.write(F.window_update(0, len(message)) + F.window_update(1, len(message)))
            rest = await _read_until(reader, _is_end_of_stream_1)
            data += [f for f in rest if f.kind == F.DATA]
            assert all(f.stream_id == 1 and len(f.payload) <= F.DEFAULT_MAX_FRAME for f in data)
            assert b"".join(f.payload for f in data) == message

    _run(body())


def test_a_response_reset_while_waiting_for_window_leaves_no_unretrieved_error() -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(logging.ERROR)
    logging.getLogger("asyncio").addHandler(handler)

    async def body() -> None:
        message = _grpc_message(bytes(100_000))
        async with _raw() as (reader, writer):
            writer.write(F.PREFACE + F.settings({})
                         + F.frame(F.HEADERS, F.END_HEADERS, 1, _request_block(f"/{SERVICE}/Echo"))
                         + F.frame(F.DATA, F.END_STREAM, 1, message))
            received = 0
            while received < F.DEFAULT_WINDOW:  # the rest waits for a WINDOW_UPDATE
                frame = await _read_frame(reader)
                received += len(frame.payload) if frame.kind == F.DATA else 0
            writer.write(F.rst_stream(1, F.CANCEL))
            await asyncio.sleep(0.05)
            gc.collect()  # an abandoned future with an exception logs here
            await asyncio.sleep(0)

    try:
        _run(body())
    finally:
        logging.getLogger("asyncio").removeHandler(handler)
    assert not records, [r.getMessage() for r in records]
