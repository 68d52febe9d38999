"""Watch acceptance on a real member: past revisions then live events, and one stream with
1,000 watchers keeping up with 100 puts/s (every event delivered, in order, promptly)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest

from api.proto import rpc_pb2, rpc_pb2_grpc
from tests.process.servers import ServerProcess

pytestmark = pytest.mark.slow

WATCHERS = 1000
PUTS_PER_S = 100
SECONDS = 5


async def _fanout(endpoint: str) -> tuple[int, int, list[float]]:
    async with grpc.aio.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        requests: asyncio.Queue[rpc_pb2.WatchRequest] = asyncio.Queue()
        for i in range(WATCHERS):
            await requests.put(rpc_pb2.WatchRequest(
                create_request=rpc_pb2.WatchCreateRequest(key=b"w/%04d" % i)
            ))

        async def request_iter():  # type: ignore[no-untyped-def]
            while True:
                yield await requests.get()

        stream = rpc_pb2_grpc.WatchStub(channel).Watch(request_iter())
        created = 0
        async for resp in stream:
            created += int(resp.created)
            if created == WATCHERS:
                break
        received: dict[int, list[int]] = {}
        latencies: list[float] = []
        total_puts = PUTS_PER_S * SECONDS

        async def reader() -> None:
            async for resp in stream:
                now = time.monotonic()
                for ev in resp.events:
                    received.setdefault(resp.watch_id, []).append(ev.kv.mod_revision)
                    latencies.append(now - float(ev.kv.value))
                if len(latencies) >= total_puts:
                    return

        reading = asyncio.create_task(reader())
        start = time.monotonic()
        for n in range(total_puts):
            await asyncio.sleep(max(0.0, start + n / PUTS_PER_S - time.monotonic()))
            key = b"w/%04d" % ((n * 7) % WATCHERS)
            await kv.Put(rpc_pb2.PutRequest(key=key, value=repr(time.monotonic()).encode()))
        await asyncio.wait_for(reading, 10)
        stream.cancel()
        in_order = all(revs == sorted(set(revs)) for revs in received.values())
        return len(latencies), int(in_order), sorted(latencies)


def test_thousand_watchers_keep_up_with_100_puts_per_second(tmp_path: Path) -> None:
    server = ServerProcess("kvstore", tmp_path, ())
    try:
        server.start()
        delivered, in_order, latencies = asyncio.run(_fanout(server.endpoint))
        assert delivered == PUTS_PER_S * SECONDS
        assert in_order
        p50 = latencies[len(latencies) // 2]
        assert p50 < 0.25, f"p50 event latency {p50 * 1000:.1f} ms"
    finally:
        server.kill()


def test_watch_from_a_past_revision_then_live(tmp_path: Path) -> None:
    server = ServerProcess("kvstore", tmp_path, ())
    try:
        server.start()
        with grpc.insecure_channel(server.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            for i in range(300):
                kv.Put(rpc_pb2.PutRequest(key=b"p/%03d" % i, value=b"%d" % i))
            create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
                key=b"p/", range_end=b"p0", start_revision=100, prev_kv=True))
            stream = rpc_pb2_grpc.WatchStub(channel).Watch(iter([create]), timeout=20)
            revisions: list[int] = []
            live_sent = False
            for resp in stream:
                revisions.extend(ev.kv.mod_revision for ev in resp.events)
                if not live_sent and revisions and revisions[-1] >= 301:
                    for i in range(300, 310):
                        kv.Put(rpc_pb2.PutRequest(key=b"p/%03d" % i, value=b"live"))
                    live_sent = True
                if revisions and revisions[-1] >= 311:
                    stream.cancel()
                    break
        assert revisions == list(range(100, 312))
    finally:
        server.kill()
