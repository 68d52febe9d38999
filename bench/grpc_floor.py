"""`kvbench floor`: a gRPC round trip with nothing behind it.

A server process answers one unary method by returning the request bytes, and one client
sends sequential calls with the same grpc.aio client `kvbench load` uses for its 1x1
shapes. `--front http2` (the default) serves it with api/http2, kvstore's client-port
server; `--front grpcio` with grpc.aio on uvloop, the server kvstore used before (and
still offers with --experimental-grpc-front=grpcio). The latency it prints is the floor
under every single-client figure of kvstore with that front: no put, range or watch can
answer faster. Compare it with etcd's whole put latency from `kvbench load --workload put
--shapes 1x1 --compare-etcd`.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import grpc
import grpc.aio

from bench.load.histogram import Histogram
from bench.ports import free_port
from bench.server_process import REPO

METHOD = "/kvbench.Floor/Echo"
WARMUP_CALLS = 300
START_TIMEOUT_S = 20.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=5000, help="measured sequential calls")
    parser.add_argument("--payload", type=int, default=300,
                        help="request bytes (about a put of a 256-byte value)")
    parser.add_argument("--front", choices=("http2", "grpcio"), default="http2",
                        help="echo server: api/http2 (kvstore's) or grpc.aio")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.serve is not None:
        _serve(args.serve, args.front)
        return 0
    if args.calls < 1 or args.payload < 0:
        print("kvbench floor: --calls must be >= 1 and --payload >= 0", file=sys.stderr)
        return 2
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "floor", "--serve", str(port), "--front", args.front],
        cwd=REPO)
    try:
        hist, wall_s = asyncio.run(_measure(f"127.0.0.1:{port}", args.calls, args.payload))
    finally:
        server.kill()
        server.wait()
    s = hist.summary()
    label = "api/http2" if args.front == "http2" else "grpc.aio"
    print(f"python gRPC floor ({label} + uvloop echo, {args.payload} B, 1 client): "
          f"{args.calls / wall_s:.0f} calls/s, p50 {s.p50_ms:.3f} ms, p90 {s.p90_ms:.3f} ms, "
          f"p99 {s.p99_ms:.3f} ms")
    return 0


async def _measure(endpoint: str, calls: int, payload: int) -> tuple[Histogram, float]:
    request = b"x" * payload
    async with grpc.aio.insecure_channel(endpoint) as channel:
        await asyncio.wait_for(channel.channel_ready(), START_TIMEOUT_S)
        echo = channel.unary_unary(METHOD)
        for _ in range(WARMUP_CALLS):
            await echo(request)
        hist = Histogram()
        start = time.perf_counter()
        for _ in range(calls):
            sent = time.perf_counter()
            reply = await echo(request)
            hist.record(int((time.perf_counter() - sent) * 1e6))
            if len(reply) != payload:
                raise RuntimeError(f"echo answered {len(reply)} bytes for {payload}")
        return hist, time.perf_counter() - start


def _serve(port: int, front: str) -> None:
    async def echo(request: bytes, _context: object) -> bytes:
        return request

    async def main() -> None:
        from api.http2.server import Http2Server

        server = Http2Server(max_receive_bytes=4 << 20) if front == "http2" else grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(echo)
        service, method = METHOD.strip("/").split("/")
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {method: handler}),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - kvstore depends on uvloop where it exists
        asyncio.run(main())
    else:
        uvloop.run(main())
