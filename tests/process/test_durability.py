"""Durability of one kvstore member under SIGKILL, torn WAL tails and WAL corruption.

Real processes on free loopback ports, real fsync, kill -9 by PID. A writer keeps many puts
in flight (unique key per put), the member is killed at a random moment, restarted on the
same data dir, and every acknowledged put must be there with its value; revisions never go
backwards; and at the end a watch from revision 1 replays every acknowledged write with no
gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from api.proto import rpc_pb2, rpc_pb2_grpc
from tests.process.servers import ServerProcess

pytestmark = pytest.mark.slow

CYCLES = 30
IN_FLIGHT = 32
LONE_WRITER_CYCLES = 10


async def _write_until_killed(
    server: ServerProcess, cycle: int, acked: dict[bytes, tuple[bytes, int]], rng: random.Random,
    in_flight: int,
) -> None:
    """Put unique keys with `in_flight` outstanding requests; SIGKILL the server mid-stream."""
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        seq = 0

        async def writer(worker: int) -> None:
            nonlocal seq
            while True:
                seq += 1
                key = b"c%03d-w%02d-%06d" % (cycle, worker, seq)
                value = b"v" + key
                try:
                    resp = await kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=5)
                except grpc.aio.AioRpcError:
                    return
                acked[key] = (value, resp.header.revision)

        tasks = [asyncio.create_task(writer(w)) for w in range(in_flight)]
        await asyncio.sleep(rng.uniform(0.05, 0.5))
        server.kill()
        await asyncio.gather(*tasks)


def _check_all_present(server: ServerProcess, acked: dict[bytes, tuple[bytes, int]]) -> int:
    with grpc.insecure_channel(server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        resp = kv.Range(rpc_pb2.RangeRequest(key=b"c", range_end=b"d"), timeout=10)
    stored = {kv_.key: (kv_.value, kv_.mod_revision) for kv_ in resp.kvs}
    missing = [k for k in acked if k not in stored]
    assert not missing, f"{len(missing)} acknowledged puts lost, e.g. {missing[:3]}"
    for key, (value, revision) in acked.items():
        assert stored[key] == (value, revision), key
    return int(resp.header.revision)


def _watch_all(server: ServerProcess, until_revision: int) -> list[tuple[bytes, int]]:
    events: list[tuple[bytes, int]] = []
    with grpc.insecure_channel(server.endpoint) as channel:
        stub = rpc_pb2_grpc.WatchStub(channel)
        create = rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(key=b"\0", range_end=b"\0", start_revision=1)
        )
        stream = stub.Watch(iter([create]), timeout=30)
        for resp in stream:
            for ev in resp.events:
                events.append((ev.kv.key, ev.kv.mod_revision))
            if events and events[-1][1] >= until_revision:
                stream.cancel()
                break
    return events


@pytest.mark.parametrize(
    ("in_flight", "cycles"),
    [
        (IN_FLIGHT, CYCLES),  # group commit: the disk thread syncs batches
        (1, LONE_WRITER_CYCLES),  # a lone writer: the leader syncs on its loop (fsync_on_loop)
    ],
    ids=["many-writers", "lone-writer"],
)
def test_acknowledged_puts_survive_kill_9(tmp_path: Path, in_flight: int, cycles: int) -> None:
    rng = random.Random(20261122)
    server = ServerProcess("kvstore", tmp_path, ())
    acked: dict[bytes, tuple[bytes, int]] = {}
    last_revision = 0
    try:
        server.start()
        for cycle in range(cycles):
            asyncio.run(_write_until_killed(server, cycle, acked, rng, in_flight))
            server.start()
            revision = _check_all_present(server, acked)
            assert revision >= last_revision, "revision went backwards after restart"
            last_revision = revision
        assert len(acked) > cycles * 10, "the writer barely wrote anything"
        events = _watch_all(server, last_revision)
        revisions = [r for _k, r in events]
        # One put per revision from 2 on: no gap, no duplicate, in order.
        assert revisions == list(range(2, last_revision + 1))
        seen = set(events)
        for key, (_value, revision) in acked.items():
            assert (key, revision) in seen
    finally:
        server.kill()


def _wal_segments(server: ServerProcess) -> list[Path]:
    return sorted((server.data_dir / "member" / "wal").glob("*.wal"))


def _data_end(path: Path) -> int:
    data = path.read_bytes()
    return len(data.rstrip(b"\0"))


def _put_some(server: ServerProcess, n: int) -> dict[bytes, int]:
    out = {}
    with grpc.insecure_channel(server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for i in range(n):
            resp = kv.Put(rpc_pb2.PutRequest(key=b"t%04d" % i, value=b"x" * 100), timeout=5)
            out[b"t%04d" % i] = resp.header.revision
    return out


def test_torn_wal_tail_starts_with_every_acknowledged_write(tmp_path: Path) -> None:
    server = ServerProcess("kvstore", tmp_path, ())
    try:
        server.start()
        written = _put_some(server, 200)
        server.kill()
        segment = _wal_segments(server)[-1]
        end = _data_end(segment)
        with open(segment, "r+b") as f:
            f.seek(end)
            f.write(random.Random(7).randbytes(300))  # a torn, half-written record
        server.start()
        with grpc.insecure_channel(server.endpoint) as channel:
            resp = rpc_pb2_grpc.KVStub(channel).Range(
                rpc_pb2.RangeRequest(key=b"t", range_end=b"u"), timeout=5
            )
        assert {kv.key: kv.mod_revision for kv in resp.kvs} == written
    finally:
        server.kill()


def test_flipped_byte_in_the_middle_of_the_wal_refuses_to_start(tmp_path: Path) -> None:
    server = ServerProcess("kvstore", tmp_path, ())
    try:
        server.start()
        _put_some(server, 200)
        server.kill()
        segment = _wal_segments(server)[0]
        end = _data_end(segment)
        with open(segment, "r+b") as f:
            f.seek(end // 2)
            byte = f.read(1)
            f.seek(end // 2)
            f.write(bytes([byte[0] ^ 0x40]))
        proc = subprocess.run(server.command(server.flags()), capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0
        assert re.search(rf"{re.escape(segment.name)}.*corrupt", proc.stderr), proc.stderr[-2000:]
    finally:
        server.kill()


def test_restart_is_quick_and_keeps_the_revision(tmp_path: Path) -> None:
    server = ServerProcess("kvstore", tmp_path, ())
    try:
        server.start()
        written = _put_some(server, 50)
        server.kill()
        t0 = time.monotonic()
        server.start()
        assert time.monotonic() - t0 < 15
        with grpc.insecure_channel(server.endpoint) as channel:
            resp = rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"t0049"), timeout=5)
        assert resp.header.revision == max(written.values())
    finally:
        server.kill()
