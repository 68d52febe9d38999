"""endpoint health / status / hashkv, per endpoint or for every member (--cluster).

Each endpoint is asked on its own (maintenance calls pinned to it, health through a client
of its own), as etcdctl does: one member's answer says nothing about another's.
"""

from __future__ import annotations

import time

from api.cli.command import Command
from api.cli.context import Ctx
from api.cli.errors import EXIT_ERROR, CliError
from api.cli.flags import BOOL, INT, Flag, Parsed
from api.cli.output.base import EndpointHashKV, EndpointHealth, EndpointStatus
from api.cli.output.text import go_duration
from api.client import Client, EtcdError
from api.proto import rpc_pb2

__all__ = ["COMMANDS", "endpoints_of"]

CLUSTER_FLAG = Flag("cluster", BOOL, False, "use all endpoints from the cluster member list")


async def endpoints_of(ctx: Ctx, p: Parsed) -> list[str]:
    if not p.values.get("cluster"):
        return list(ctx.g.endpoints)
    r = await ctx.unary(lambda s: s.cluster.MemberList, rpc_pb2.MemberListRequest(), read_only=True)
    return [u for m in r.members for u in m.clientURLs]


async def _health_of(ctx: Ctx, ep: str) -> EndpointHealth:
    client = Client([ep], timeout_s=ctx.g.command_timeout_s, attempts_max=1)
    try:
        start = time.monotonic()
        error = ""
        try:
            await client.conn.call(lambda s: s.kv.Range, rpc_pb2.RangeRequest(key=b"health"), read_only=True)
        except EtcdError as exc:
            if exc.code != "PERMISSION_DENIED":
                ctx.warn_retry(exc, ep)
                error = exc.message
        took = go_duration(time.monotonic() - start)
        if error:
            return EndpointHealth(ep, False, took, error)
        try:
            alarms = await client.conn.call(
                lambda s: s.maintenance.Alarm, rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET),
                read_only=True)
        except EtcdError:
            return EndpointHealth(ep, False, took, "Unable to fetch the alarm list")
        if alarms.alarms:
            names = "".join(f"{rpc_pb2.AlarmType.Name(a.alarm)} " for a in alarms.alarms)
            return EndpointHealth(ep, False, took, "Active Alarm(s): " + names)
        return EndpointHealth(ep, True, took)
    finally:
        await client.close()


async def _health(ctx: Ctx, p: Parsed) -> None:
    printer = ctx.printer()
    results = [await _health_of(ctx, ep) for ep in await endpoints_of(ctx, p)]
    printer.endpoint_health(results)
    if any(not h.health for h in results):
        raise CliError(EXIT_ERROR, "unhealthy cluster")


async def _status(ctx: Ctx, p: Parsed) -> None:
    printer = ctx.printer()
    statuses, failed = [], False
    for ep in await endpoints_of(ctx, p):
        try:
            r = await ctx.client.conn.call(lambda s: s.maintenance.Status, rpc_pb2.StatusRequest(),
                                           read_only=True, endpoint=ep, require_leader=False,
                                           timeout_s=ctx.g.command_timeout_s)
        except EtcdError as exc:
            ctx.out.err(f"Failed to get the status of endpoint {ep} ({exc.message})")
            failed = True
            continue
        statuses.append(EndpointStatus(ep, r))
    printer.endpoint_status(statuses)
    if failed:
        raise CliError(EXIT_ERROR, "context deadline exceeded")


async def _hashkv(ctx: Ctx, p: Parsed) -> None:
    printer = ctx.printer()
    hashes, failed = [], False
    req = rpc_pb2.HashKVRequest(revision=int(str(p.values["rev"])))
    for ep in await endpoints_of(ctx, p):
        try:
            r = await ctx.unary(lambda s: s.maintenance.HashKV, req, read_only=True, endpoint=ep,
                                require_leader=False)
        except EtcdError as exc:
            ctx.out.err(f"Failed to get the hash of endpoint {ep} ({exc.message})")
            failed = True
            continue
        hashes.append(EndpointHashKV(ep, r))
    printer.endpoint_hashkv(hashes)
    if failed:
        raise CliError(EXIT_ERROR, "context deadline exceeded")


COMMANDS = [
    Command(("endpoint", "health"), "Checks the healthiness of endpoints specified in `--endpoints` flag",
            "etcdctl endpoint health [flags]", _health, (CLUSTER_FLAG,)),
    Command(("endpoint", "status"), "Prints out the status of endpoints specified in `--endpoints` flag",
            "etcdctl endpoint status [flags]", _status, (CLUSTER_FLAG,)),
    Command(("endpoint", "hashkv"), "Prints the KV history hash for each endpoint in --endpoints",
            "etcdctl endpoint hashkv [flags]", _hashkv,
            (CLUSTER_FLAG, Flag("rev", INT, 0, "maximum revision to hash (default: all revisions)"))),
]
