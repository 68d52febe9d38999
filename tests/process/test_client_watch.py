"""api.client watches against real etcd 3.4 and kvstore: filters, prev_kv, progress, cancel,
callbacks, and resume across a server crash (SIGKILL + restart on the same data dir) with no
lost or duplicated event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from api.client import Client, EtcdError, Event, EventType, Watcher
from tests.process.cluster import run_cluster
from tests.process.servers import KINDS, ServerProcess, run_server

pytestmark = pytest.mark.slow


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with run_server(request.param) as s:
        yield s


async def take(w: Watcher, n: int, timeout_s: float = 10.0) -> list[Event]:
    out: list[Event] = []

    async def run() -> None:
        async for ev in w:
            out.append(ev)
            if len(out) == n:
                return

    await asyncio.wait_for(run(), timeout_s)
    return out


def test_filters_prev_kv_progress_callback_cancel(server: ServerProcess) -> None:
    async def main() -> None:
        async with Client([server.endpoint]) as c:
            only_deletes = c.watch(b"w/", prefix=True, no_put=True, prev_kv=True)
            only_puts = c.watch(b"w/", prefix=True, no_delete=True)
            seen: list[Event] = []
            cb = c.watch(b"w/a", callback=seen.append)
            for w in (only_deletes, only_puts, cb):
                await w.wait_created()
            await c.put(b"w/a", b"1")
            await c.put(b"w/a", b"2")
            last = await c.delete(b"w/a")
            dels = await take(only_deletes, 1)
            assert dels[0].type is EventType.DELETE
            assert dels[0].prev_kv is not None and dels[0].prev_kv.value == b"2"
            puts = await take(only_puts, 2)
            assert [e.kv.value for e in puts] == [b"1", b"2"]
            assert [e.prev_kv for e in puts] == [None, None]
            rev = await only_puts.request_progress()
            assert rev >= last.header.revision
            for _ in range(100):
                if len(seen) == 3:
                    break
                await asyncio.sleep(0.02)
            assert [e.type for e in seen] == [EventType.PUT, EventType.PUT, EventType.DELETE]
            await cb.cancel()
            await only_deletes.cancel()
            await only_puts.cancel()
            # A cancelled watcher's iterator ends.
            assert [e async for e in only_puts] == []

    asyncio.run(main())


def test_watch_resumes_after_server_crash_without_loss_or_duplicates(
    server: ServerProcess,
) -> None:
    async def main() -> None:
        async with Client([server.endpoint], timeout_s=10.0) as c:
            w = c.watch(b"r/", prefix=True)
            await w.wait_created()
            expected: list[int] = []
            for i in range(5):
                expected.append((await c.put(b"r/k", b"%d" % i)).header.revision)
            got = await take(w, 3)  # two events are still unread when the server dies
            # SIGKILL and restart on the same data dir and port (blocking: the watcher's
            # stream breaks meanwhile and it retries in the background).
            await asyncio.to_thread(server.restart)
            for i in range(5, 10):
                expected.append((await c.put(b"r/k", b"%d" % i)).header.revision)
            got += await take(w, 7, timeout_s=20.0)
            assert [e.kv.mod_revision for e in got] == expected
            assert [e.kv.value for e in got] == [b"%d" % i for i in range(10)]
            assert w.reconnects >= 1
            await w.cancel()

    asyncio.run(main())


def test_watch_resume_point_compacted_raises(server: ServerProcess) -> None:
    async def main() -> None:
        async with Client([server.endpoint], timeout_s=10.0) as c:
            seen: list[Event] = []
            gate = asyncio.Event()

            async def slow(ev: Event) -> None:
                seen.append(ev)
                await gate.wait()  # the consumer stalls after the first event

            first = await c.put(b"x/k", b"0")
            w = c.watch(b"x/k", start_revision=first.header.revision, callback=slow)
            await w.wait_created()
            for _ in range(200):  # the first event is in the callback, which now stalls
                if seen:
                    break
                await asyncio.sleep(0.01)
            assert len(seen) == 1
            # While the consumer stalls, the server dies; the history it still owes us is
            # compacted before the watcher gets back.
            await asyncio.to_thread(server.kill)
            await asyncio.to_thread(server.start)
            r = None
            for i in range(3):
                r = await c.put(b"x/k", b"%d" % (i + 1))
            assert r is not None
            await c.compact(r.header.revision)
            gate.set()
            with pytest.raises(Exception) as ei:
                await asyncio.wait_for(w.wait(), 20.0)
            assert type(ei.value).__name__ == "CompactedError"
            assert getattr(ei.value, "compact_revision", 0) == r.header.revision

    asyncio.run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_watch_and_writes_fail_over_to_another_member(kind: str) -> None:
    """The member the client uses dies: writes and the watch move to the others; the watch
    resumes from its next revision on a different member with nothing lost or repeated."""
    with run_cluster(kind, 3) as cluster:

        async def main() -> None:
            async with Client(cluster.endpoints, timeout_s=10.0) as c:
                w = c.watch(b"f/", prefix=True)
                await w.wait_created()
                expected = [(await c.put(b"f/k", b"%d" % i)).header.revision for i in range(3)]
                got = await take(w, 2)
                await asyncio.to_thread(cluster.kill, 0)
                # Until a new leader is elected a write may time out, which is ambiguous (it
                # may still commit) and so, rightly, not retried by the client: wait for one.
                for _ in range(200):  # survivors first keep reporting the dead leader
                    if await asyncio.to_thread(cluster.wait_leader, [1, 2]) != 0:
                        break
                    await asyncio.sleep(0.05)
                # A linearizable read (safe to retry) proves the client's new member serves.
                for _ in range(100):
                    try:
                        await c.get(b"f/k")
                        break
                    except EtcdError:
                        await asyncio.sleep(0.1)
                for i in range(3, 6):
                    expected.append((await c.put(b"f/k", b"%d" % i)).header.revision)
                got += await take(w, 4, timeout_s=20.0)
                assert [e.kv.mod_revision for e in got] == expected
                assert c.conn.current != 0 and w.reconnects >= 1
                await w.cancel()

        asyncio.run(main())


def test_keep_alive_reports_loss_when_the_server_dies(server: ServerProcess) -> None:
    async def main() -> None:
        async with Client([server.endpoint], timeout_s=5.0) as c:
            g = await c.lease_grant(2)
            lost: list[object] = []
            ka = c.keep_alive(g.lease_id, ttl_s=g.ttl_s, on_lost=lost.append)
            await asyncio.sleep(0.3)
            assert ka.renewals >= 1
            await asyncio.to_thread(server.kill)
            t0 = asyncio.get_running_loop().time()
            await asyncio.wait_for(ka.lost.wait(), 6.0)
            # Reported once the last granted TTL ran out without a renewal, not before.
            assert asyncio.get_running_loop().time() - t0 >= 1.0
            assert type(ka.error).__name__ == "LeaseNotFoundError" and len(lost) == 1
            await ka.stop()

    asyncio.run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_periodic_progress_notifications(kind: str) -> None:
    interval = ("--experimental-watch-progress-notify-interval", "200ms")
    with run_server(kind, extra_args=interval) as srv:

        async def main() -> None:
            async with Client([srv.endpoint]) as c:
                quiet = c.watch(b"pn/", prefix=True, progress_notify=True)
                deaf = c.watch(b"pn/", prefix=True)  # did not ask: gets none
                await quiet.wait_created()
                await deaf.wait_created()
                r = await c.put(b"other", b"x")  # outside the watched range
                for _ in range(100):
                    if quiet.progress_revision >= r.header.revision:
                        break
                    await asyncio.sleep(0.05)
                assert quiet.progress_revision >= r.header.revision
                assert quiet.next_revision == quiet.progress_revision + 1
                assert deaf.progress_revision == 0
                await quiet.cancel()
                await deaf.cancel()

        asyncio.run(main())
