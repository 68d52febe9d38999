"""api/http2 end to end: an Http2Server on a loopback port in the test's event loop, called
by a real grpcio client. Round trips, flow control, size limits, status codes and details,
metadata, deadlines, streaming in both directions, cancellation and graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import grpc
import pytest

from api.http2.server import Http2Server
from api.proto import rpc_pb2

pytestmark = pytest.mark.slow

SERVICE = "test.Echo"
Methods = dict[str, grpc.RpcMethodHandler]
# A client that advertises RFC 9113's initial 64 KiB window and 16 KiB frames, so the server
# must split DATA and wait for WINDOW_UPDATEs (grpcio's defaults are 4 MiB for both).
SMALL_WINDOWS = (("grpc.http2.max_frame_size", 16_384), ("grpc.http2.lookahead_bytes", 65_535),
                 ("grpc.http2.bdp_probe", 0))


def _run(body: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(body, 15))


@contextlib.asynccontextmanager
async def _serving(methods: Methods, *, max_receive_bytes: int = 4 << 20,
                   options: tuple[tuple[str, int], ...] = ()
                   ) -> AsyncIterator[tuple[Http2Server, grpc.aio.Channel]]:
    server = Http2Server(max_receive_bytes=max_receive_bytes)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, methods)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)
    try:
        yield server, channel
    finally:
        await channel.close()
        await server.stop(0)


def _unary(fn: Callable[[Any, Any], Awaitable[Any]]) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(fn)


async def _echo(request: bytes, context: Any) -> bytes:
    return request


async def _error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


async def _stream_error(call: Any) -> grpc.aio.AioRpcError:
    """Read a stream's responses until it fails; the error it failed with."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        while await call.read() is not grpc.aio.EOF:
            pass
    return info.value


def _pattern(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def test_unary_echo_round_trips_bytes() -> None:
    async def body() -> None:
        async with _serving({"Echo": _unary(_echo)}) as (_, channel):
            echo = channel.unary_unary(f"/{SERVICE}/Echo")
            assert await echo(b"hello") == b"hello"
            assert await echo(b"") == b""
            call = echo(b"\x00\xff" * 10)
            assert await call == b"\x00\xff" * 10
            assert await call.code() == grpc.StatusCode.OK

    _run(body())


def test_unary_protobuf_messages_round_trip() -> None:
    async def put(request: rpc_pb2.PutRequest, context: Any) -> rpc_pb2.PutResponse:
        return rpc_pb2.PutResponse(
            header=rpc_pb2.ResponseHeader(revision=len(request.key) + len(request.value)))

    async def body() -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            put, request_deserializer=rpc_pb2.PutRequest.FromString,
            response_serializer=rpc_pb2.PutResponse.SerializeToString)
        async with _serving({"Put": handler}) as (_, channel):
            stub = channel.unary_unary(
                f"/{SERVICE}/Put", request_serializer=rpc_pb2.PutRequest.SerializeToString,
                response_deserializer=rpc_pb2.PutResponse.FromString)
            response = await stub(rpc_pb2.PutRequest(key=b"foo", value=b"barbaz"))
            assert response.header.revision == 9

    _run(body())


def test_many_sequential_calls_on_one_channel() -> None:
    async def body() -> None:
        async with _serving({"Echo": _unary(_echo)}) as (_, channel):
            echo = channel.unary_unary(f"/{SERVICE}/Echo")
            for i in range(500):
                assert await echo(b"%d" % i) == b"%d" % i

    _run(body())


def test_two_hundred_concurrent_calls_on_one_channel() -> None:
    async def slow_echo(request: bytes, context: Any) -> bytes:
        await asyncio.sleep(0.01)
        return request

    async def body() -> None:
        async with _serving({"Echo": _unary(slow_echo)}) as (_, channel):
            echo = channel.unary_unary(f"/{SERVICE}/Echo")
            replies = await asyncio.gather(*(echo(b"%d" % i) for i in range(200)))
            assert replies == [b"%d" % i for i in range(200)]

    _run(body())


@pytest.mark.parametrize("options", [(), SMALL_WINDOWS], ids=["grpc-windows", "small-windows"])
@pytest.mark.parametrize("size", [64 * 1024 + 1, 200_000, 3 << 20])
def test_large_responses_arrive_byte_exact(size: int, options: tuple[tuple[str, int], ...]
                                           ) -> None:
    async def sized(request: bytes, context: Any) -> bytes:
        return _pattern(int(request))

    async def body() -> None:
        async with _serving({"Sized": _unary(sized)}, options=options) as (_, channel):
            stub = channel.unary_unary(f"/{SERVICE}/Sized")
            first, second = await asyncio.gather(stub(b"%d" % size), stub(b"%d" % size))
            assert first == second == _pattern(size)

    _run(body())


def test_a_large_request_within_the_limit_is_received_whole() -> None:
    async def body() -> None:
        async with _serving({"Echo": _unary(_echo)}, max_receive_bytes=2 << 20) as (_, channel):
            request = _pattern(1 << 20)
            assert await channel.unary_unary(f"/{SERVICE}/Echo")(request) == request

    _run(body())


def test_a_request_over_max_receive_bytes_is_resource_exhausted() -> None:
    async def body() -> None:
        async with _serving({"Echo": _unary(_echo)}, max_receive_bytes=1024) as (_, channel):
            echo = channel.unary_unary(f"/{SERVICE}/Echo")
            error = await _error(echo(b"x" * 2000))
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error.details().startswith("grpc: received message larger than max")
            assert error.details() == "grpc: received message larger than max (2000 vs. 1024)"
            assert await echo(b"x" * 1024) == b"x" * 1024

    _run(body())


def test_an_oversized_request_spanning_many_data_frames_keeps_its_exact_error() -> None:
    async def body() -> None:
        async with _serving({"Echo": _unary(_echo)}, max_receive_bytes=1024) as (_, channel):
            echo = channel.unary_unary(f"/{SERVICE}/Echo")
            assert await echo(b"warm") == b"warm"
            error = await _error(echo(b"x" * 100_000))
            assert (error.code(), error.details()) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "grpc: received message larger than max (100000 vs. 1024)")

    _run(body())


def test_a_streaming_handler_sees_no_requests_after_an_oversized_one() -> None:
    received: list[bytes] = []

    async def bidi(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            received.append(request)
            yield request

    async def body() -> None:
        handler = grpc.stream_stream_rpc_method_handler(bidi)
        async with _serving({"Bidi": handler}, max_receive_bytes=1024) as (_, channel):
            call = channel.stream_stream(f"/{SERVICE}/Bidi")()
            await call.write(b"warm")
            assert await call.read() == b"warm"
            await call.write(bytes(100_000))
            error = await _stream_error(call)
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    _run(body())
    assert received == [b"warm"]


def test_a_request_larger_than_the_stream_window_but_within_the_limit_is_received() -> None:
    async def size(request: bytes, context: Any) -> bytes:
        return b"%d" % len(request)

    async def body() -> None:
        async with _serving({"Size": _unary(size)}, max_receive_bytes=8 << 20) as (_, channel):
            stub = channel.unary_unary(f"/{SERVICE}/Size")
            assert await stub(bytes(5 << 20), timeout=1.5) == b"%d" % (5 << 20)

    _run(body())


def test_a_streamed_message_larger_than_the_stream_window_is_received() -> None:
    async def sizes(requests: Any, context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            yield b"%d" % len(request)

    async def body() -> None:
        handler = grpc.stream_stream_rpc_method_handler(sizes)
        async with _serving({"Sizes": handler}, max_receive_bytes=8 << 20) as (_, channel):
            call = channel.stream_stream(f"/{SERVICE}/Sizes")(timeout=3)
            await call.write(bytes(5 << 20))
            assert await call.read() == b"%d" % (5 << 20)
            await call.done_writing()

    _run(body())


def _unary_error(fn: Callable[[Any, Any], Awaitable[Any]]) -> grpc.aio.AioRpcError:
    """Serve `fn` as a unary method, call it once, and return the error the client got."""
    async def body() -> grpc.aio.AioRpcError:
        async with _serving({"M": _unary(fn)}) as (_, channel):
            return await _error(channel.unary_unary(f"/{SERVICE}/M")(b""))

    return asyncio.run(asyncio.wait_for(body(), 10))


def test_abort_reaches_the_client_with_its_code_and_details() -> None:
    async def get(request: bytes, context: Any) -> bytes:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided")
        raise AssertionError("abort returned")

    error = _unary_error(get)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "etcdserver: key is not provided"


def test_a_handler_exception_is_unknown() -> None:
    async def boom(request: bytes, context: Any) -> bytes:
        raise ValueError("boom")

    error = _unary_error(boom)
    assert error.code() == grpc.StatusCode.UNKNOWN
    assert "boom" in (error.details() or "")


def test_set_code_and_details_without_abort_end_the_call_with_them() -> None:
    async def missing(request: bytes, context: Any) -> bytes:
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_details("etcdserver: requested lease not found")
        return b"ignored"

    error = _unary_error(missing)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "etcdserver: requested lease not found"


def test_an_unknown_method_or_service_is_unimplemented() -> None:
    async def body() -> None:
        async with _serving({"Echo": _unary(_echo)}) as (_, channel):
            for path in (f"/{SERVICE}/Nope", "/other.Service/Echo"):
                error = await _error(channel.unary_unary(path)(b""))
                assert error.code() == grpc.StatusCode.UNIMPLEMENTED
            assert await channel.unary_unary(f"/{SERVICE}/Echo")(b"still") == b"still"

    _run(body())


@pytest.mark.parametrize("details", [
    "ключ «x» 100% done",
    "%2541 %zz %",
    "tab\tnew\nline \u2713 \U0001f600 ~!@#$^&*()",
])
def test_details_survive_percent_encoding(details: str) -> None:
    async def fail(request: bytes, context: Any) -> bytes:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, details)
        raise AssertionError("abort returned")

    async def body() -> None:
        async with _serving({"Fail": _unary(fail)}) as (_, channel):
            error = await _error(channel.unary_unary(f"/{SERVICE}/Fail")(b""))
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert error.details() == details

    _run(body())


def test_invocation_metadata_and_peer_are_visible_to_the_handler() -> None:
    seen: list[tuple[tuple[str, Any], ...]] = []
    peers: list[str] = []

    async def record(request: bytes, context: Any) -> bytes:
        seen.append(tuple(context.invocation_metadata()))
        peers.append(context.peer())
        return b""

    async def body() -> None:
        async with _serving({"Record": _unary(record)}) as (_, channel):
            stub = channel.unary_unary(f"/{SERVICE}/Record")
            await stub(b"", metadata=(("hasleader", "true"), ("token", "abc"),
                                      ("trace-bin", b"\x00\xff\x01")))
            await stub(b"")

    _run(body())
    first, second = seen
    assert ("hasleader", "true") in first and ("token", "abc") in first
    assert ("trace-bin", b"\x00\xff\x01") in first
    assert not any(name.startswith(("grpc-", ":")) or name == "te" for name, _ in first)
    assert "hasleader" not in dict(second)
    assert peers[0].startswith("ipv4:127.0.0.1:")


def test_a_client_deadline_cancels_the_handler() -> None:
    remaining: list[float | None] = []

    async def body() -> None:
        cancelled = asyncio.Event()

        async def sleepy(request: bytes, context: Any) -> bytes:
            remaining.append(context.time_remaining())
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return request

        async with _serving({"Sleep": _unary(sleepy), "Echo": _unary(_echo)}) as (_, channel):
            started = asyncio.get_running_loop().time()
            error = await _error(channel.unary_unary(f"/{SERVICE}/Sleep")(b"", timeout=0.2))
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert asyncio.get_running_loop().time() - started < 2
            await asyncio.wait_for(cancelled.wait(), 2)
            assert await channel.unary_unary(f"/{SERVICE}/Echo")(b"ok") == b"ok"

    _run(body())
    [left] = remaining
    assert left is not None and 0 < left <= 0.25


def test_no_deadline_means_no_time_remaining() -> None:
    remaining: list[float | None] = []

    async def record(request: bytes, context: Any) -> bytes:
        remaining.append(context.time_remaining())
        return b""

    async def body() -> None:
        async with _serving({"Record": _unary(record)}) as (_, channel):
            await channel.unary_unary(f"/{SERVICE}/Record")(b"")

    _run(body())
    assert remaining == [None]


def test_server_streaming_delivers_a_thousand_messages_in_order() -> None:
    async def count(request: bytes, context: Any) -> AsyncIterator[bytes]:
        for i in range(int(request)):
            yield b"%d" % i

    async def body() -> None:
        handler = grpc.unary_stream_rpc_method_handler(count)
        async with _serving({"Count": handler}) as (_, channel):
            call = channel.unary_stream(f"/{SERVICE}/Count")(b"1000")
            assert [m async for m in call] == [b"%d" % i for i in range(1000)]
            assert await call.code() == grpc.StatusCode.OK

    _run(body())


def test_server_streaming_large_messages_respect_flow_control() -> None:
    async def chunks(request: bytes, context: Any) -> AsyncIterator[bytes]:
        for i in range(8):
            yield bytes([i]) * (300 * 1024)

    async def body() -> None:
        handler = grpc.unary_stream_rpc_method_handler(chunks)
        async with _serving({"Chunks": handler}, options=SMALL_WINDOWS) as (_, channel):
            received = [m async for m in channel.unary_stream(f"/{SERVICE}/Chunks")(b"")]
            assert received == [bytes([i]) * (300 * 1024) for i in range(8)]

    _run(body())


def test_a_streaming_abort_after_messages_reaches_the_client() -> None:
    async def partial(request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield b"one"
        yield b"two"
        await context.abort(grpc.StatusCode.OUT_OF_RANGE,
                            "etcdserver: mvcc: required revision has been compacted")

    async def body() -> None:
        handler = grpc.unary_stream_rpc_method_handler(partial)
        async with _serving({"Partial": handler}) as (_, channel):
            call = channel.unary_stream(f"/{SERVICE}/Partial")(b"")
            received = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for message in call:
                    received.append(message)
            assert received == [b"one", b"two"]
            assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
            assert info.value.details() == "etcdserver: mvcc: required revision has been compacted"

    _run(body())


def test_bidi_echo_interleaves_writes_and_reads() -> None:
    async def bidi(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request.upper()

    async def body() -> None:
        handler = grpc.stream_stream_rpc_method_handler(bidi)
        async with _serving({"Bidi": handler}) as (_, channel):
            call = channel.stream_stream(f"/{SERVICE}/Bidi")()
            for i in range(100):
                await call.write(b"m%d" % i)
                assert await call.read() == b"M%d" % i
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
            assert await call.code() == grpc.StatusCode.OK

    _run(body())


def test_client_streaming_sees_every_request() -> None:
    async def total(requests: AsyncIterator[bytes], context: Any) -> bytes:
        return b"%d" % sum([int(r) async for r in requests])

    async def body() -> None:
        handler = grpc.stream_unary_rpc_method_handler(total)
        async with _serving({"Sum": handler}) as (_, channel):
            call = channel.stream_unary(f"/{SERVICE}/Sum")()
            for i in range(50):
                await call.write(b"%d" % i)
            await call.done_writing()
            assert await call == b"1225"

    _run(body())


def test_a_client_cancelling_a_bidi_stream_cancels_the_handler() -> None:
    async def body() -> None:
        cancelled = asyncio.Event()

        async def bidi(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
            try:
                async for request in requests:
                    yield request
            except asyncio.CancelledError:
                cancelled.set()
                raise

        handler = grpc.stream_stream_rpc_method_handler(bidi)
        async with _serving({"Bidi": handler, "Echo": _unary(_echo)}) as (server, channel):
            call = channel.stream_stream(f"/{SERVICE}/Bidi")()
            await call.write(b"a")
            assert await call.read() == b"a"
            assert call.cancel()
            await asyncio.wait_for(cancelled.wait(), 2)
            assert await channel.unary_unary(f"/{SERVICE}/Echo")(b"ok") == b"ok"
            assert not server._calls

    _run(body())


@pytest.mark.parametrize("response, options", [
    (b"late", ()),
    # 3 MiB against 64 KiB windows: still waiting for the client's window when stop runs
    (_pattern(3 << 20), SMALL_WINDOWS),
], ids=["small", "large-behind-flow-control"])
def test_stop_lets_an_in_flight_call_finish_then_refuses_new_calls(
    response: bytes, options: tuple[tuple[str, int], ...]
) -> None:
    async def body() -> None:
        entered = asyncio.Event()

        async def slow(request: bytes, context: Any) -> bytes:
            entered.set()
            await asyncio.sleep(0.2)
            return response

        async with _serving({"Slow": _unary(slow), "Echo": _unary(_echo)},
                            options=options) as (server, channel):
            echo = channel.unary_unary(f"/{SERVICE}/Echo")
            assert await echo(b"before") == b"before"
            in_flight = asyncio.ensure_future(
                channel.unary_unary(f"/{SERVICE}/Slow")(b"", timeout=5))
            await asyncio.wait_for(entered.wait(), 2)
            await server.stop(1.0)
            assert await in_flight == response
            error = await _error(echo(b"after", timeout=2))
            assert error.code() == grpc.StatusCode.UNAVAILABLE

    _run(body())


def test_a_client_cancelling_a_stream_blocked_on_flow_control_releases_the_handler() -> None:
    async def body() -> None:
        released = asyncio.Event()

        async def flood(request: bytes, context: Any) -> AsyncIterator[bytes]:
            try:
                while True:
                    yield bytes(200_000)
            finally:
                released.set()

        handler = grpc.unary_stream_rpc_method_handler(flood)
        async with _serving({"Flood": handler, "Echo": _unary(_echo)},
                            options=SMALL_WINDOWS) as (server, channel):
            call = channel.unary_stream(f"/{SERVICE}/Flood")(b"")
            assert await call.read() == bytes(200_000)
            assert call.cancel()
            await asyncio.wait_for(released.wait(), 2)
            assert await channel.unary_unary(f"/{SERVICE}/Echo")(b"ok") == b"ok"
            assert not server._calls

    _run(body())


def test_stop_cancels_calls_still_running_after_the_grace() -> None:
    async def body() -> None:
        entered = asyncio.Event()
        cancelled = asyncio.Event()

        async def stuck(request: bytes, context: Any) -> bytes:
            entered.set()
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return request

        async with _serving({"Stuck": _unary(stuck)}) as (server, channel):
            in_flight = asyncio.ensure_future(channel.unary_unary(f"/{SERVICE}/Stuck")(b""))
            await asyncio.wait_for(entered.wait(), 2)
            started = asyncio.get_running_loop().time()
            await server.stop(0.1)
            assert asyncio.get_running_loop().time() - started < 1
            assert cancelled.is_set()
            error = await _error(in_flight)
            assert error.code() != grpc.StatusCode.OK

    _run(body())


def test_an_oversized_request_ends_a_call_whose_handler_reads_elsewhere() -> None:
    """Like a watch stream: requests are read by another task, which swallows errors."""
    async def bidi(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async def read() -> None:
            with contextlib.suppress(Exception):
                async for _ in requests:
                    pass
        reader = asyncio.create_task(read())
        try:
            yield b"hello"
            await asyncio.Event().wait()
        finally:
            reader.cancel()

    async def body() -> None:
        handler = grpc.stream_stream_rpc_method_handler(bidi)
        async with _serving({"Bidi": handler}, max_receive_bytes=1024) as (server, channel):
            call = channel.stream_stream(f"/{SERVICE}/Bidi")(timeout=3)
            assert await call.read() == b"hello"
            await call.write(bytes(2000))
            error = await _stream_error(call)
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error.details() == "grpc: received message larger than max (2000 vs. 1024)"
            assert not server._calls

    _run(body())


def test_a_unix_socket_serves_and_is_removed_on_stop(tmp_path: Any) -> None:
    path = str(tmp_path / "kv.sock")

    async def body() -> None:
        server = Http2Server(max_receive_bytes=1 << 20)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            SERVICE, {"Echo": _unary(_echo)})])
        server.add_insecure_port(f"unix:{path}")
        await server.start()
        async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
            assert await channel.unary_unary(f"/{SERVICE}/Echo")(b"hi", timeout=2) == b"hi"
        await server.stop(0)

    _run(body())
    assert not (tmp_path / "kv.sock").exists()
