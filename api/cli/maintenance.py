"""alarm list / disarm, defrag, move-leader, version and check perf."""

from __future__ import annotations

import asyncio
import os
import time

from api.cli.command import Command, bad_args, parse_hex_id
from api.cli.context import Ctx
from api.cli.endpoint import CLUSTER_FLAG, endpoints_of
from api.cli.errors import EXIT_ERROR, CliError
from api.cli.flags import BOOL, STRING, Flag, Parsed
from api.client import Client, EtcdError
from api.proto import rpc_pb2

__all__ = ["COMMANDS", "ETCDCTL_VERSION"]

# What kvctl reports as its version: the etcdctl release whose behaviour it reproduces.
ETCDCTL_VERSION = "3.4.23"
API_VERSION = "3.4"


async def _alarm_list(ctx: Ctx, p: Parsed) -> None:
    printer = ctx.printer()
    req = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
    r = await ctx.unary(lambda s: s.maintenance.Alarm, req, read_only=True)
    printer.alarm(r)


async def _alarm_disarm(ctx: Ctx, p: Parsed) -> None:
    printer = ctx.printer()
    listed = await ctx.unary(lambda s: s.maintenance.Alarm,
                             rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET), read_only=True)
    # clientv3 disarms every active alarm one by one and answers with what it cleared
    # (a response without a header).
    cleared = rpc_pb2.AlarmResponse()
    for a in listed.alarms:
        req = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=a.memberID, alarm=a.alarm)
        r = await ctx.unary(lambda s: s.maintenance.Alarm, req, read_only=False)
        cleared.alarms.extend(r.alarms)
    printer.alarm(cleared)


def _defrag_offline(data_dir: str) -> None:
    from kvstore.store import Store

    with Store(data_dir, durable=True) as store:
        store.defragment()


async def _defrag(ctx: Ctx, p: Parsed) -> None:
    if p.values["data_dir"]:
        await asyncio.get_running_loop().run_in_executor(None, _defrag_offline, str(p.values["data_dir"]))
        ctx.out.line(f"Finished defragmenting data dir {p.values['data_dir']}")
        return
    failed = False
    for ep in await endpoints_of(ctx, p):
        try:
            await ctx.unary(lambda s: s.maintenance.Defragment, rpc_pb2.DefragmentRequest(),
                            read_only=True, endpoint=ep, require_leader=False)
        except EtcdError as exc:
            ctx.out.err(f"Failed to defragment etcd member[{ep}] ({exc.message})")
            failed = True
            continue
        ctx.out.line(f"Finished defragmenting etcd member[{ep}]")
    if failed:
        raise CliError(EXIT_ERROR, "defrag failed")


async def _move_leader(ctx: Ctx, p: Parsed) -> None:
    if len(p.args) != 1:
        raise bad_args("move-leader command needs 1 argument")
    target = parse_hex_id(p.args[0], what="member", unsigned=True)
    printer = ctx.printer()
    # MoveLeader must reach the leader: find it among the endpoints by Status.
    for ep in ctx.g.endpoints:
        st = await ctx.unary(lambda s: s.maintenance.Status, rpc_pb2.StatusRequest(), read_only=True,
                             endpoint=ep, require_leader=False)
        if st.header.member_id == st.leader:
            r = await ctx.unary(lambda s: s.maintenance.MoveLeader,
                                rpc_pb2.MoveLeaderRequest(targetID=target), read_only=False, endpoint=ep)
            printer.move_leader(st.leader, target, r)
            return
    raise bad_args(f"no leader endpoint given at [{' '.join(ctx.g.endpoints)}]")


async def _version(ctx: Ctx, p: Parsed) -> None:
    ctx.out.line(f"etcdctl version: {ETCDCTL_VERSION}")
    ctx.out.line(f"API version: {API_VERSION}")


# check perf: (clients, put rate limit, duration s, min throughput) per load, as etcdctl's.
_LOADS = {"s": (50, 150, 60), "m": (200, 1000, 60), "l": (500, 8000, 60), "xl": (1000, 15000, 60)}


async def _check_perf(ctx: Ctx, p: Parsed) -> None:
    load = str(p.values["load"])
    if load not in _LOADS:
        raise bad_args(f"unknown load option {load}")
    clients, rate, duration_s = _LOADS[load]
    # KVCTL_CHECK_PERF_SECONDS shortens the run (tests); etcdctl always runs 60 s.
    duration_s = float(os.environ.get("KVCTL_CHECK_PERF_SECONDS", duration_s))
    prefix = str(p.values["prefix"]).encode()
    value = os.urandom(1024)
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration_s
    interval = clients / rate

    async def worker(n: int, client: Client) -> None:
        nonlocal errors
        i = 0
        while time.monotonic() < deadline:
            start = time.monotonic()
            key = prefix + f"{n:04d}{i:08d}".encode()
            try:
                await client.conn.call(lambda s: s.kv.Put, rpc_pb2.PutRequest(key=key, value=value),
                                       read_only=False)
                latencies.append(time.monotonic() - start)
            except EtcdError:
                errors += 1
            i += 1
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - start)))

    pool = [Client(list(ctx.g.endpoints), timeout_s=ctx.g.command_timeout_s) for _ in range(min(clients, 16))]
    progress = asyncio.create_task(_progress(ctx, duration_s))
    try:
        await asyncio.gather(*(worker(n, pool[n % len(pool)]) for n in range(clients)))
        await progress
        await ctx.unary(lambda s: s.kv.DeleteRange,
                        rpc_pb2.DeleteRangeRequest(key=prefix, range_end=_prefix_end(prefix)), read_only=False)
    finally:
        progress.cancel()
        for c in pool:
            await c.close()
    ok = _report(ctx, latencies, errors, duration_s, rate)
    if not ok:
        raise CliError(EXIT_ERROR, "")


async def _progress(ctx: Ctx, duration_s: float) -> None:
    """etcdctl's progress counter (seconds done / total, percent, time left), redrawn with
    a carriage return, and its last state on a line of its own."""
    total = max(1, round(duration_s))
    width = len(str(total))
    start = time.monotonic()
    while True:
        done = min(total, int(time.monotonic() - start))
        if done >= total:
            break
        left = total - (time.monotonic() - start)
        eta = f" {int(left) // 60:02d}m{int(left) % 60:02d}s" if done else ""
        ctx.out.stdout.write(f"\r {done:{width}d} / {total} {100 * done / total:7.2f}%{eta}")
        ctx.out.flush()
        await asyncio.sleep(0.2)
    ctx.out.stdout.write(f"\r {total:{width}d} / {total} {100.0:7.2f}% {_go_duration(total)}\n")


def _go_duration(seconds: int) -> str:
    """Go's time.Duration text for whole seconds: 45s, 1m0s, 1h2m3s."""
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    return f"{m}m{s}s" if m else f"{s}s"


def _prefix_end(prefix: bytes) -> bytes:
    from api.client import prefix_range_end

    return prefix_range_end(prefix)


def _report(ctx: Ctx, latencies: list[float], errors: int, duration_s: float, rate: int) -> bool:
    ok = True
    throughput = len(latencies) / duration_s if duration_s else 0.0
    if throughput < 0.9 * rate:
        ctx.out.line(f"FAIL: Throughput too low: {int(throughput)} writes/s")
        ok = False
    else:
        ctx.out.line(f"PASS: Throughput is {int(throughput)} writes/s")
    slowest = max(latencies, default=0.0)
    if slowest > 0.5:
        ctx.out.line(f"Slowest request took too long: {slowest:.6f}s")
        ok = False
    else:
        ctx.out.line(f"PASS: Slowest request took {slowest:.6f}s")
    mean = sum(latencies) / len(latencies) if latencies else 0.0
    std = (sum((x - mean) ** 2 for x in latencies) / len(latencies)) ** 0.5 if latencies else 0.0
    if std > 0.1:
        ctx.out.line(f"FAIL: Stddev too high: {std:.6f}s")
        ok = False
    else:
        ctx.out.line(f"PASS: Stddev is {std:.6f}s")
    if errors:
        ctx.out.line(f"FAIL: {errors} requests failed")
        ok = False
    ctx.out.line("PASS" if ok else "FAIL")
    return ok


COMMANDS = [
    Command(("alarm", "list"), "Lists all alarms", "etcdctl alarm list [flags]", _alarm_list),
    Command(("alarm", "disarm"), "Disarms all alarms", "etcdctl alarm disarm [flags]", _alarm_disarm),
    Command(("defrag",), "Defragments the storage of the etcd members with given endpoints",
            "etcdctl defrag [flags]", _defrag,
            (CLUSTER_FLAG, Flag("data-dir", STRING, "", "Optional. If present, defragments a data directory not in use by etcd."))),
    Command(("move-leader",), "Transfers leadership to another etcd cluster member.",
            "etcdctl move-leader <transferee-member-id> [flags]", _move_leader),
    Command(("version",), "Prints the version of etcdctl", "etcdctl version [flags]", _version),
    Command(("check", "perf"), "Check the performance of the etcd cluster", "etcdctl check perf [options] [flags]",
            _check_perf,
            (Flag("load", STRING, "s", "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)"),
             Flag("prefix", STRING, "/etcdctl-check-perf/", "The prefix for writing the performance check's keys."),
             Flag("auto-compact", BOOL, False, "Compact storage with last revision after test is finished."),
             Flag("auto-defrag", BOOL, False, "Defragment storage after test is finished."))),
]
