"""Loopback TCP proxies the nemesis can cut and slow, for any server (kvstore, etcd, ...).

Theory of operation. Every member advertises a proxy address as its peer URL, so all peer
traffic to member d enters d's proxy, which forwards it to d's real listening port. To cut
the link between members a and b, d's proxy must know who dialed it: on accept it looks
the connecting socket up in /proc/net/tcp (its inode) and finds which member process holds
that inode in /proc/<pid>/fd. (All members share the loopback address, so the address says
nothing; the owning process does.) In client mode (an existing cluster given by
--endpoints) one proxy sits in front of each endpoint and every connection is "the client".

A connection whose pair is cut is not refused but blackholed: its bytes are read and
discarded, as a partitioned network would lose them, so the peers see timeouts rather than
resets. When the partition heals every blackholed connection is closed (the stream lost
data, so it must not carry on) and the members dial again. Delay: each direction is a
queue of (due time, bytes) drained by a writer task, so order is kept and every chunk waits
`delay_s` (plus jitter) after it was read.

The proxies run on their own event loop in a daemon thread, so the workload's loop never
stalls them; the nemesis calls the thread-safe `cut`, `heal` and `set_delay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CLIENT = -1  # the source of connections from our own clients
UNKNOWN_SOURCE = -2
CHUNK_BYTES = 65536
QUEUE_MAX = 1024


def socket_inode(host_port: tuple[str, int]) -> int | None:
    """The inode of the local TCP socket bound to 127.0.0.1:port (from /proc/net/tcp)."""
    host, port = host_port
    want = f"{_hex_ip(host)}:{port:04X}"
    for path in ("/proc/net/tcp",):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1] == want:
                        return int(parts[9])
        except OSError:
            return None
    return None


def _hex_ip(host: str) -> str:
    return "".join(f"{int(x):02X}" for x in reversed(host.split(".")))


def pid_holding(inode: int, pids: dict[int, int]) -> int | None:
    """Which of `pids` (member index -> pid) has socket `inode` open."""
    target = f"socket:[{inode}]"
    for index, pid in pids.items():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return index
        except OSError:
            continue
    return None


@dataclass(slots=True, eq=False)  # hashed by identity: kept in a set
class _Conn:
    src: int
    dst: int
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    blackholed: bool = False


class ProxyHub:
    def __init__(self, *, seed: int = 0) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="jepsen-proxy", daemon=True)
        self._thread.start()
        self._cuts: set[frozenset[int]] = set()
        self.delay_s = 0.0
        self.jitter_s = 0.0
        self._rnd = random.Random(seed)
        self._conns: set[_Conn] = set()
        self._servers: list[asyncio.base_events.Server] = []
        self.pids: dict[int, int] = {}  # member index -> pid, for source identification
        self.unidentified = 0

    def _run(self, coro: object, timeout: float = 10.0) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def add(self, *, listen_port: int, dst: int, target: tuple[str, int], clients: bool) -> None:
        """Forward 127.0.0.1:listen_port to target; `clients`: sources are our clients."""
        identify: Callable[[tuple[str, int]], int] = (
            (lambda _addr: CLIENT) if clients else self._identify
        )

        async def start() -> None:
            async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                await self._serve(r, w, dst=dst, target=target, identify=identify)
            srv = await asyncio.start_server(handle, "127.0.0.1", listen_port, reuse_address=True)
            self._servers.append(srv)
        self._run(start())

    def _identify(self, addr: tuple[str, int]) -> int:
        for _ in range(3):
            inode = socket_inode(addr)
            if inode is not None:
                who = pid_holding(inode, dict(self.pids))
                if who is not None:
                    return who
            time.sleep(0.005)
        self.unidentified += 1
        return UNKNOWN_SOURCE

    def _is_cut(self, src: int, dst: int) -> bool:
        if src == UNKNOWN_SOURCE:
            return any(dst in c for c in self._cuts)  # cannot tell: cut if dst is cut at all
        return frozenset((src, dst)) in self._cuts

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, *, dst: int,
                     target: tuple[str, int], identify: Callable[[tuple[str, int]], int]) -> None:
        src = identify(w.get_extra_info("peername")[:2])
        conn = _Conn(src, dst, [w])
        self._conns.add(conn)
        try:
            if self._is_cut(src, dst):
                conn.blackholed = True
                while await r.read(CHUNK_BYTES):
                    pass
                return
            try:
                ur, uw = await asyncio.wait_for(asyncio.open_connection(*target), 5.0)
            except (OSError, TimeoutError):
                return
            conn.writers.append(uw)
            await asyncio.gather(self._pump(r, uw, conn), self._pump(ur, w, conn),
                                 return_exceptions=True)
        finally:
            self._conns.discard(conn)
            for x in conn.writers:
                x.close()

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, conn: _Conn) -> None:
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUE_MAX)

        async def writer() -> None:
            while (item := await queue.get()) is not None:
                due, data = item
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if conn.blackholed:
                    continue
                w.write(data)
                await w.drain()

        wt = asyncio.ensure_future(writer())
        try:
            while data := await r.read(CHUNK_BYTES):
                if conn.blackholed or self._is_cut(conn.src, conn.dst):
                    conn.blackholed = True
                    continue
                delay = self.delay_s + (self._rnd.uniform(0, self.jitter_s) if self.jitter_s else 0)
                await queue.put((time.monotonic() + delay, data))
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
            for x in conn.writers:
                x.close()
            wt.cancel()

    # ---- nemesis side (thread-safe) ---------------------------------------------------------

    def cut(self, pairs: set[frozenset[int]]) -> None:
        def apply() -> None:
            self._cuts |= pairs
            for c in self._conns:
                if self._is_cut(c.src, c.dst):
                    c.blackholed = True
        self.loop.call_soon_threadsafe(apply)

    def heal(self) -> None:
        def apply() -> None:
            self._cuts = set()
            for c in list(self._conns):
                if c.blackholed:
                    for x in c.writers:
                        x.close()
        self.loop.call_soon_threadsafe(apply)

    def set_delay(self, delay_s: float, jitter_s: float = 0.0) -> None:
        self.delay_s, self.jitter_s = delay_s, jitter_s

    def close(self) -> None:
        async def stop() -> None:
            for s in self._servers:
                s.close()
            for c in list(self._conns):
                for x in c.writers:
                    x.close()
        with contextlib.suppress(Exception):
            self._run(stop(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
