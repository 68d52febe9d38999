"""One load-generator process: `python -m bench.load.worker`, driven over stdin/stdout.

Protocol (one JSON object per line; JSON, never pickle):
  driver -> worker   {"spec": WorkerSpec}
  worker -> driver   {"ready": true}                    channels open, setup done
  driver -> worker   {"start_at": <unix time s>}        the same instant for every worker
  worker -> driver   {"result": Outcome, "elapsed_s": x, "cpu_s": y}   (y: this process's CPU)
A failure is reported as {"error": "..."} and a non-zero exit. Only protocol lines go to
stdout; diagnostics go to stderr.

The start instant is wall-clock time because it is shared between processes; each worker
turns it into its own monotonic deadline once, so a clock step during the run cannot
stretch or cut the measured window.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from typing import Any

import grpc
import grpc.aio

from bench.load.workloads import WorkerSpec, make_workload

# Separate channels must be separate TCP connections (that is what --conns means); gRPC
# otherwise shares one subchannel between channels with equal arguments.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _readline() -> dict[str, Any]:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        raise EOFError("driver closed stdin")
    message: dict[str, Any] = json.loads(line)
    return message


async def run_worker() -> None:
    spec = WorkerSpec.from_json((await _readline())["spec"])
    channels = [
        grpc.aio.insecure_channel(
            spec.endpoints[(spec.conn_offset + i) % len(spec.endpoints)], options=CHANNEL_OPTIONS)
        for i in range(max(1, spec.conns))
    ]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 20.0)
        workload = make_workload(spec)
        await workload.setup(channels)
        _send({"ready": True})
        start_at = float((await _readline())["start_at"])
        delay = start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        started = time.monotonic()
        cpu_started = time.process_time()
        deadline = started + spec.duration_s - max(0.0, time.time() - start_at)
        await workload.run(deadline)
        elapsed = time.monotonic() - started
        cpu_s = time.process_time() - cpu_started
        await workload.close()
        _send({"result": workload.out.to_json(), "elapsed_s": elapsed, "cpu_s": cpu_s})
    finally:
        for channel in channels:
            await channel.close()


def main() -> int:
    try:
        asyncio.run(run_worker())
    except BaseException as exc:  # report, then fail: the driver turns this into WorkerError
        traceback.print_exc(file=sys.stderr)
        _send({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
