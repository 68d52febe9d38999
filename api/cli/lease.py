"""lease grant / revoke / timetolive / list / keep-alive, with etcdctl's messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from api.cli.command import Command, bad_args, parse_hex_id
from api.cli.context import Ctx
from api.cli.errors import EXIT_BAD_CONNECTION, EXIT_ERROR, CliError
from api.cli.flags import BOOL, Flag, Parsed
from api.cli.output.simple import SimplePrinter
from api.client import EtcdError
from api.client._connection import REQUIRE_LEADER
from api.client._errors import from_rpc_error
from api.proto import rpc_pb2

__all__ = ["COMMANDS"]

LEASE_NOT_FOUND = "etcdserver: requested lease not found"


async def _server_error(ctx: Ctx, what: str, coro: object) -> object:
    """Run a unary call; a server error becomes `failed to <what> (<message>)` (exit 1)."""
    try:
        return await coro  # type: ignore[misc]
    except EtcdError as exc:
        raise CliError(EXIT_ERROR, f"failed to {what} ({exc.message})") from None


async def _grant(ctx: Ctx, p: Parsed) -> None:
    if len(p.args) != 1:
        raise bad_args("lease grant command needs TTL argument")
    try:
        ttl = int(p.args[0], 10)
    except ValueError:
        raise bad_args(f'bad TTL (strconv.ParseInt: parsing "{p.args[0]}": invalid syntax)') from None
    printer = ctx.printer()
    req = rpc_pb2.LeaseGrantRequest(TTL=ttl)
    r = await _server_error(ctx, "grant lease", ctx.unary(lambda s: s.lease.LeaseGrant, req, read_only=False))
    printer.lease_grant(r)


async def _revoke(ctx: Ctx, p: Parsed) -> None:
    if len(p.args) != 1:
        raise bad_args("lease revoke command needs 1 argument")
    lease_id = parse_hex_id(p.args[0], what="lease")
    printer = ctx.printer()
    req = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
    r = await _server_error(ctx, "revoke lease", ctx.unary(lambda s: s.lease.LeaseRevoke, req, read_only=False))
    printer.lease_revoke(lease_id, r)


async def _timetolive(ctx: Ctx, p: Parsed) -> None:
    if len(p.args) != 1:
        raise bad_args("lease timetolive command needs lease ID as argument")
    lease_id = parse_hex_id(p.args[0], what="lease")
    printer = ctx.printer()
    keys = bool(p.values["keys"])
    req = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
    r = await _server_error(ctx, "get TimeToLive of lease",
                            ctx.unary(lambda s: s.lease.LeaseTimeToLive, req, read_only=True))
    printer.lease_ttl(r, keys)


async def _list(ctx: Ctx, p: Parsed) -> None:
    printer = ctx.printer()
    r = await _server_error(ctx, "list leases",
                            ctx.unary(lambda s: s.lease.LeaseLeases, rpc_pb2.LeaseLeasesRequest(), read_only=True))
    printer.lease_list(r)


async def _keep_alive(ctx: Ctx, p: Parsed) -> None:
    if len(p.args) != 1:
        raise bad_args("lease keep-alive command needs lease ID as argument")
    lease_id = parse_hex_id(p.args[0], what="lease")
    printer = ctx.printer()
    once = bool(p.values["once"])
    wake = asyncio.Event()

    async def requests() -> AsyncIterator[rpc_pb2.LeaseKeepAliveRequest]:
        while True:
            yield rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)
            if once:
                return
            await wake.wait()
            wake.clear()

    stream = ctx.client.conn.stubs().lease.LeaseKeepAlive(requests(), metadata=REQUIRE_LEADER)
    try:
        async for resp in stream:
            if resp.TTL <= 0:
                if once:
                    raise CliError(EXIT_BAD_CONNECTION, LEASE_NOT_FOUND)
                break
            printer.lease_keepalive(resp)
            ctx.out.flush()
            if once:
                return
            # clientv3 renews every TTL/3 seconds.
            await asyncio.sleep(max(resp.TTL / 3.0, 0.5))
            wake.set()
    except grpc.RpcError as exc:
        err = from_rpc_error(exc)
        raise CliError(EXIT_BAD_CONNECTION, err.message) from None
    finally:
        stream.cancel()
    if isinstance(printer, SimplePrinter):
        ctx.out.line(f"lease {lease_id:016x} expired or revoked.")


COMMANDS = [
    Command(("lease", "grant"), "Creates leases", "etcdctl lease grant <ttl> [flags]", _grant),
    Command(("lease", "revoke"), "Revokes leases", "etcdctl lease revoke <leaseID> [flags]", _revoke),
    Command(("lease", "timetolive"), "Get lease information", "etcdctl lease timetolive <leaseID> [options] [flags]",
            _timetolive, (Flag("keys", BOOL, False, "Get keys attached to this lease"),)),
    Command(("lease", "list"), "List all active leases", "etcdctl lease list [flags]", _list),
    Command(("lease", "keep-alive"), "Keeps leases alive (renew)", "etcdctl lease keep-alive [options] <leaseID> [flags]",
            _keep_alive, (Flag("once", BOOL, False, "Resets the keep-alive time to its original value and exits immediately"),)),
]
