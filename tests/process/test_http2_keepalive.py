"""api/http2 keepalive (etcd's --grpc-keepalive-interval/-timeout): a silent connection is
pinged; one that answers stays open, one that does not is closed."""

from __future__ import annotations

import asyncio

import pytest

from api.http2 import connection
from api.http2 import frames as F
from api.http2.server import Http2Server

pytestmark = pytest.mark.slow


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    head = await reader.readexactly(9)
    length = int.from_bytes(head[:3], "big")
    return head[3], head[4], await reader.readexactly(length)


async def _client(port: int, *, answer_pings: bool) -> tuple[bool, int]:
    """Returns (closed by the server within 2 s, pings seen)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(F.PREFACE + F.settings({}))
    pings = 0
    try:
        async with asyncio.timeout(2.0):
            while True:
                kind, flags, payload = await _read_frame(reader)
                if kind == F.PING and not flags & F.ACK:
                    pings += 1
                    if answer_pings:
                        writer.write(F.ping(payload, ack=True))
    except asyncio.IncompleteReadError:
        return True, pings
    except TimeoutError:
        return False, pings
    finally:
        writer.close()


@pytest.mark.parametrize("answer_pings", [True, False])
def test_silent_connection_is_pinged_and_closed_only_if_it_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, answer_pings: bool
) -> None:
    monkeypatch.setattr(connection, "KEEPALIVE_INTERVAL_S", 0.2)
    monkeypatch.setattr(connection, "KEEPALIVE_TIMEOUT_S", 0.2)

    async def body() -> tuple[bool, int]:
        server = Http2Server(max_receive_bytes=1 << 20)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            return await _client(port, answer_pings=answer_pings)
        finally:
            await server.stop(0)

    closed, pings = asyncio.run(body())
    assert pings >= 1
    assert closed is (not answer_pings)
    if answer_pings:
        assert pings >= 3  # pinged again after each answer, every interval
