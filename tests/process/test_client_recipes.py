"""Lock and Election recipes: mutual exclusion among our clients, and interoperability with
the real `etcdctl lock` / `etcdctl elect` (clientv3's concurrency package) on the same names,
against real etcd 3.4 and kvstore.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator

import pytest

from api.client import Client
from tests.process.servers import KINDS, ServerProcess, needs_etcdctl, run_server

pytestmark = [pytest.mark.slow, needs_etcdctl]


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with run_server(request.param) as s:
        yield s


class Etcdctl:
    """A long-running etcdctl child whose stdout lines are read by a thread."""

    def __init__(self, server: ServerProcess, *args: str) -> None:
        binary = shutil.which("etcdctl")
        assert binary is not None
        self.proc = subprocess.Popen(
            [binary, f"--endpoints={server.endpoint}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "ETCDCTL_API": "3"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode().rstrip("\n"))

    async def line(self, timeout_s: float = 10.0) -> str:
        return await asyncio.to_thread(self.lines.get, True, timeout_s)

    def no_line_yet(self) -> bool:
        return self.lines.empty()

    async def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return await asyncio.to_thread(self.proc.wait, 10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def test_lock_excludes_and_fences_between_our_clients(server: ServerProcess) -> None:
    async def main() -> None:
        async with Client([server.endpoint]) as a, Client([server.endpoint]) as b:
            la = a.lock(b"m", ttl_s=10)
            rev_a = await la.acquire()
            lb = b.lock(b"m", ttl_s=10)
            waiter = asyncio.create_task(lb.acquire())
            await asyncio.sleep(0.5)
            assert not waiter.done()
            await la.release()
            rev_b = await asyncio.wait_for(waiter, 10.0)
            assert rev_b > rev_a  # fencing revisions grow across holders
            await lb.release()

    asyncio.run(main())


def test_our_lock_blocks_etcdctl_lock_and_vice_versa(server: ServerProcess) -> None:
    async def main() -> None:
        async with Client([server.endpoint]) as c:
            ours = c.lock(b"shared", ttl_s=10)
            await ours.acquire()
            theirs = Etcdctl(server, "lock", "shared")
            try:
                await asyncio.sleep(1.0)
                assert theirs.no_line_yet() and theirs.proc.poll() is None
                await ours.release()
                key = await theirs.line()  # etcdctl prints its key once it holds the lock
                assert key.startswith("shared/")
                held = (await c.get(key.encode())).kvs[0]
                # Now etcdctl holds it: our acquire must wait until etcdctl lets go.
                again = c.lock(b"shared", ttl_s=10)
                waiter = asyncio.create_task(again.acquire())
                await asyncio.sleep(1.0)
                assert not waiter.done()
                await theirs.interrupt()
                rev = await asyncio.wait_for(waiter, 15.0)
                assert rev > held.create_revision
                await again.release()
            finally:
                theirs.kill()

    asyncio.run(main())


def test_election_with_etcdctl_elect(server: ServerProcess) -> None:
    async def main() -> None:
        async with Client([server.endpoint]) as c:
            ours = c.election(b"vote", ttl_s=10)
            await ours.campaign(b"ours")
            await ours.proclaim(b"ours-2")
            leader = await ours.leader()
            assert leader is not None and leader.value == b"ours-2"
            listener = Etcdctl(server, "elect", "-l", "vote")
            contender = Etcdctl(server, "elect", "vote", "theirs")
            observed = ours.observe()
            try:
                # `elect -l` prints the leader key then its value.
                assert (await listener.line()).startswith("vote/")
                assert await listener.line() == "ours-2"
                assert (await observed.__anext__()).value == b"ours-2"
                await asyncio.sleep(0.5)
                assert contender.no_line_yet()  # etcdctl waits behind our leadership
                await ours.resign()
                assert (await contender.line()).startswith("vote/")
                assert await contender.line() == "theirs"
                now = await c.election(b"vote").leader()
                assert now is not None and now.value == b"theirs"
                assert (await asyncio.wait_for(observed.__anext__(), 10.0)).value == b"theirs"
            finally:
                await observed.aclose()
                listener.kill()
                contender.kill()

    asyncio.run(main())
