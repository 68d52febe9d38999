"""lock and elect, on api.client's recipes (etcd's clientv3/concurrency key layout).

`lock name` holds `name/<lease hex>` until SIGINT/SIGTERM, printing the key as a Get
response; `lock name cmd args...` runs the command while holding the lock, with
ETCD_LOCK_KEY and ETCD_LOCK_REV in its environment. `elect name proposal` campaigns, prints
the leader key once elected and holds leadership until a signal; `elect -l name` prints the
leader each time it changes. Holders interoperate with etcdctl's and etcd's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from api.cli.command import Command, bad_args
from api.cli.context import Ctx
from api.cli.flags import BOOL, INT, Flag, Parsed
from api.cli.output.base import Printer
from api.proto import rpc_pb2

__all__ = ["COMMANDS"]


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _print_key(ctx: Ctx, printer: Printer, key: bytes) -> None:
    r = await ctx.unary(lambda s: s.kv.Range, rpc_pb2.RangeRequest(key=key), read_only=True)
    printer.get(r)
    ctx.out.flush()


async def _lock(ctx: Ctx, p: Parsed) -> int | None:
    if not p.args:
        raise bad_args("lock takes a lock name argument and an optional command to execute")
    printer = ctx.printer()
    stop = _stop_event()
    lock = ctx.client.lock(p.args[0].encode(), ttl_s=int(str(p.values["ttl"])))
    acquire = asyncio.create_task(lock.acquire())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not acquire.done():
        acquire.cancel()
        return None
    stopped.cancel()
    revision = acquire.result()
    try:
        command = p.args[1:]
        if command:
            env = {**os.environ, "ETCD_LOCK_KEY": lock.key.decode(errors="replace"),
                   "ETCD_LOCK_REV": str(revision)}
            ctx.out.flush()
            proc = await asyncio.create_subprocess_exec(*command, env=env)
            return await proc.wait() and 1
        await _print_key(ctx, printer, lock.key)
        await stop.wait()
        return None
    finally:
        await lock.release()


async def _elect(ctx: Ctx, p: Parsed) -> None:
    listen = bool(p.values["listen"])
    if len(p.args) not in (1, 2):
        raise bad_args("elect takes one election name argument and an optional proposal argument.")
    if listen and len(p.args) != 1:
        raise bad_args("proposal given but -l is set")
    if not listen and len(p.args) != 2:
        raise bad_args("no proposal argument but -l not set")
    printer = ctx.printer()
    stop = _stop_event()
    election = ctx.client.election(p.args[0].encode(), ttl_s=60)
    if listen:
        async def observe() -> None:
            async for leader in election.observe():
                await _print_key(ctx, printer, leader.key)

        task = asyncio.create_task(observe())
        await stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return
    campaign = asyncio.create_task(election.campaign(p.args[1].encode()))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({campaign, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not campaign.done():
        campaign.cancel()
        await asyncio.gather(campaign, return_exceptions=True)
        return
    stopped.cancel()
    campaign.result()
    try:
        await _print_key(ctx, printer, election.key)
        await stop.wait()
    finally:
        await election.resign()


COMMANDS = [
    Command(("lock",), "Acquires a named lock", "etcdctl lock <lockname> [exec-command arg1 arg2 ...] [flags]",
            _lock, (Flag("ttl", INT, 10, "timeout for session"),)),
    Command(("elect",), "Observes and participates in leader election",
            "etcdctl elect <election-name> [proposal] [flags]", _elect,
            (Flag("listen", BOOL, False, "observation mode", "l"),)),
]
