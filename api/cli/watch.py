"""watch: print events as they come (one gRPC Watch stream), optionally running a command.

Forms: `watch [--prefix] [--rev N] [--prev-kv] key [range_end] [-- cmd args...]` (the key
may come from ETCDCTL_WATCH_KEY / ETCDCTL_WATCH_RANGE_END), and `watch -i`, which reads
`watch ...` and `progress` lines from stdin. The raw stream is used (not api.client's
resuming Watcher) because etcdctl prints whole responses: -w json shows each response's
header and its events together; resuming after a crash is done here (see _Session). Like
clientv3, "created" confirmations are not printed; a
progress notification prints `progress notify: <revision>`; a cancel from the server prints
`watch was canceled (<reason>)` and ends with exit 5. Output is flushed per response so a
reader (or a test that kills us) sees every event at once.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import deque
from collections.abc import AsyncIterator

import grpc

from api.cli.command import Command, bad_args
from api.cli.context import Ctx
from api.cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_INVALID_INPUT, CliError
from api.cli.flags import BOOL, INT, Flag, FlagError, Parsed, parse_flags
from api.cli.output.base import Printer
from api.cli.output.text import go_quote
from api.client import prefix_range_end
from api.client._connection import REQUIRE_LEADER
from api.client._errors import from_rpc_error
from api.proto import kv_pb2, rpc_pb2

__all__ = ["COMMANDS"]

WATCH_FLAGS = (
    Flag("prefix", BOOL, False, "Watch on a prefix if prefix is set"),
    Flag("rev", INT, 0, "Revision to start watching"),
    Flag("prev-kv", BOOL, False, "get the previous key-value pair before the event happens"),
)
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
QUEUE_MAX = 1024
# Pause before opening a broken stream again (doubling while the server stays away).
RETRY_PAUSE_MIN_S = 0.1
RETRY_PAUSE_MAX_S = 2.0


def _create_request(args: list[str], v: dict[str, object]) -> rpc_pb2.WatchRequest:
    if not 1 <= len(args) <= 2:
        raise bad_args("bad number of arguments")
    key = args[0].encode()
    range_end = b""
    if len(args) == 2:
        if v["prefix"]:
            raise bad_args("`range_end` and `--prefix` are mutually exclusive")
        range_end = args[1].encode()
    if v["prefix"]:
        range_end = prefix_range_end(key) if key else b"\0"
        key = key or b"\0"
    create = rpc_pb2.WatchCreateRequest(
        key=key, range_end=range_end, start_revision=int(str(v["rev"])), prev_kv=bool(v["prev_kv"]),
    )
    return rpc_pb2.WatchRequest(create_request=create)


def _server_went_away(exc: grpc.RpcError) -> bool:
    """A broken connection (resume elsewhere or later), not an answer from a live server.
    "no leader" is an answer: clientv3 ends a require-leader watch on it."""
    return bool(exc.code() == grpc.StatusCode.UNAVAILABLE and "no leader" not in (exc.details() or ""))


def _is_progress(r: rpc_pb2.WatchResponse) -> bool:
    return (not r.events and not r.canceled and not r.created and r.compact_revision == 0
            and r.header.revision != 0)


class _Tracked:
    """A watch this session created: its create request and the next revision it needs."""

    __slots__ = ("create", "next_rev")

    def __init__(self, create: rpc_pb2.WatchCreateRequest) -> None:
        self.create = create
        self.next_rev = 0  # 0 until the server's "created" tells where the watch starts

    def resume_request(self) -> rpc_pb2.WatchRequest:
        create = rpc_pb2.WatchCreateRequest()
        create.CopyFrom(self.create)
        if self.next_rev:
            create.start_revision = self.next_rev
        return rpc_pb2.WatchRequest(create_request=create)


class _Session:
    """One Watch stream: requests go in through a queue, responses are printed.

    Like clientv3, a stream that breaks because the server went away (UNAVAILABLE, other
    than "no leader") is opened again, on the next endpoint and after a pause, and every
    watch is created anew from the revision after the last one printed: nothing is lost or
    printed twice.
    """

    def __init__(self, ctx: Ctx, printer: Printer, exec_args: list[str]) -> None:
        self.ctx = ctx
        self.printer = printer
        self.exec_args = exec_args
        self.requests: asyncio.Queue[rpc_pb2.WatchRequest | None] = asyncio.Queue(QUEUE_MAX)
        self.live: dict[int, _Tracked] = {}  # by the current stream's watch IDs
        self.unanswered: deque[_Tracked] = deque()  # creates sent, "created" not yet seen
        self.resend: list[rpc_pb2.WatchRequest] = []

    async def _request_iter(self) -> AsyncIterator[rpc_pb2.WatchRequest]:
        for req in self.resend:
            yield req
        self.resend = []
        while (req := await self.requests.get()) is not None:
            if req.HasField("create_request"):
                self.unanswered.append(_Tracked(req.create_request))
            yield req

    def _prepare_resume(self) -> None:
        """Every watch, answered or not, is created again on the next stream."""
        order = [self.live[i] for i in sorted(self.live)] + list(self.unanswered)
        self.live.clear()
        self.unanswered = deque(order)
        self.resend = [t.resume_request() for t in order]

    def _track(self, resp: rpc_pb2.WatchResponse) -> None:
        if resp.created and self.unanswered:
            tracked = self.unanswered.popleft()
            if not resp.canceled:
                self.live[resp.watch_id] = tracked
                if not tracked.next_rev:
                    tracked.next_rev = tracked.create.start_revision or resp.header.revision + 1
            return
        if resp.events:
            tracked = self.live.get(resp.watch_id)
            if tracked is not None:
                tracked.next_rev = resp.events[-1].kv.mod_revision + 1
        elif _is_progress(resp):
            # Every event up to the header revision has been delivered (to these watches).
            targets = self.live.values() if resp.watch_id == -1 else (
                [self.live[resp.watch_id]] if resp.watch_id in self.live else [])
            for tracked in targets:
                tracked.next_rev = max(tracked.next_rev, resp.header.revision + 1)

    async def run(self) -> int:
        """Print responses until the server cancels a watch (exit 5) or the stream fails."""
        conn = self.ctx.client.conn
        pause = RETRY_PAUSE_MIN_S
        while True:
            endpoint = conn.current
            stream = conn.stubs().watch.Watch(self._request_iter(), metadata=REQUIRE_LEADER)
            try:
                async for resp in stream:
                    pause = RETRY_PAUSE_MIN_S
                    self._track(resp)
                    if resp.created and not resp.canceled:
                        continue
                    if resp.canceled:
                        reason = COMPACTED if resp.compact_revision else resp.cancel_reason
                        self.ctx.out.err(f"watch was canceled ({reason})")
                    if _is_progress(resp):
                        self.ctx.out.line(f"progress notify: {resp.header.revision}")
                    self.printer.watch(resp)
                    self.ctx.out.flush()
                    await self._exec(resp)
                    if resp.canceled:
                        raise CliError(EXIT_INTERRUPTED, "watch is canceled by the server")
            except grpc.RpcError as exc:
                if not _server_went_away(exc):
                    raise from_rpc_error(exc) from exc
                stream.cancel()
                conn.failover(endpoint)  # the next endpoint, if there are several
                self._prepare_resume()
                await asyncio.sleep(pause)
                pause = min(RETRY_PAUSE_MAX_S, pause * 2)
                continue
            raise CliError(EXIT_INTERRUPTED, "watch is canceled by the server")

    async def _exec(self, resp: rpc_pb2.WatchResponse) -> None:
        if not self.exec_args:
            return
        for ev in resp.events:
            env = {
                **os.environ,
                "ETCD_WATCH_REVISION": str(resp.header.revision),
                "ETCD_WATCH_EVENT_TYPE": go_quote(kv_pb2.Event.EventType.Name(ev.type)),
                "ETCD_WATCH_KEY": go_quote(ev.kv.key),
                "ETCD_WATCH_VALUE": go_quote(ev.kv.value),
            }
            self.ctx.out.flush()
            try:
                proc = await asyncio.create_subprocess_exec(*self.exec_args, env=env)
                code = await proc.wait()
            except OSError as exc:
                code, detail = -1, str(exc)
            else:
                detail = f"exit status {code}"
            if code != 0:
                quoted = "[" + " ".join(go_quote(a) for a in self.exec_args) + "]"
                self.ctx.out.err(f"command {quoted} error ({detail})")
                raise CliError(EXIT_ERROR, f"command {quoted} failed")


def _split_exec(p: Parsed) -> tuple[list[str], list[str]]:
    if p.dash_index is None:
        return p.args, []
    return p.args[:p.dash_index], p.args[p.dash_index:]


async def _interactive(ctx: Ctx, session: _Session) -> int:
    runner = asyncio.create_task(session.run())
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if runner.done():
                return await runner
            if not line:
                raise CliError(EXIT_INVALID_INPUT, "Error reading watch request line: EOF")
            words = line.split()
            if not words:
                continue
            if words[0] == "progress":
                req = rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
            elif words[0] == "watch":
                if len(words) < 2:
                    ctx.out.err(f"Invalid command {line.strip()} (command type or key is not provided)")
                    continue
                try:
                    p = parse_flags(words[1:], WATCH_FLAGS)
                    req = _create_request(p.args, p.values)
                except (FlagError, CliError) as exc:
                    ctx.out.err(f"Invalid command {line.strip()} ({exc})")
                    continue
            else:
                ctx.out.err(f"Invalid command {line.strip()} (only support watch)")
                continue
            await session.requests.put(req)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def _watch(ctx: Ctx, p: Parsed) -> int:
    env_key = os.environ.get("ETCDCTL_WATCH_KEY", "")
    env_range = os.environ.get("ETCDCTL_WATCH_RANGE_END", "")
    if not env_key and env_range:
        raise bad_args(f"ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={go_quote(env_range)}")
    printer = ctx.printer()
    if p.values["interactive"]:
        return await _interactive(ctx, _Session(ctx, printer, []))
    args, exec_args = _split_exec(p)
    if p.dash_index is not None and not exec_args:
        raise bad_args("exec command not given")
    if env_key:
        if args:
            raise bad_args("bad number of arguments")
        args = [env_key] + ([env_range] if env_range else [])
    req = _create_request(args, p.values)
    session = _Session(ctx, printer, exec_args)
    await session.requests.put(req)
    return await session.run()


COMMANDS = [
    Command(("watch",), "Watches events stream on keys or prefixes",
            "etcdctl watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...] [flags]",
            _watch, (*WATCH_FLAGS, Flag("interactive", BOOL, False, "Interactive mode", "i"))),
]
