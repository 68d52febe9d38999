"""The clients: register processes, watchers and lease processes, all recorded.

Theory of operation. Each process runs one operation at a time on its own `api.client`
Client (all endpoints, starting at a different one), so its operations never overlap and a
timed-out operation leaves the process free to go on (its op stays `unknown` forever, see
history.py). Register processes pick a key from a small set and do a linearizable get, a
put, a CAS on mod_revision or on value (Txn: if the compare holds, put; else get the key),
or a delete. Written values are unique ("<process>.<seq>"). A CAS on mod_revision uses the
(value, mod_revision) the process last saw for that key, and is recorded with that value as
its expectation (see checker_linear.py). Watchers watch the whole prefix from revision 1,
and after any error re-create the watch from their last revision + 1. Lease processes grant
a short lease, put a key on it, keep it alive for a while, then revoke it or let it expire
(polling TimeToLive until "not found"), and read the key back.

Every answer's header revision is recorded; the injector (inject.py) may corrupt answers
on their way to the history.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from api.client import Client, Compare, EventType, Get, Put
from bench.jepsen.history import FAIL, OK, History, Op, WatchEvent, WatchLog, error_text, outcome_of
from bench.jepsen.inject import Injector

OP_TIMEOUT_S = 2.0


def _s(b: bytes) -> str:
    return b.decode("utf-8", "replace")


@dataclass(slots=True)
class Workload:
    endpoints: list[str]
    history: History
    prefix: str
    now: Callable[[], float]
    rng: random.Random
    keys: int = 5
    concurrency: int = 6
    watchers: int = 2
    lease_processes: int = 1
    injector: Injector = field(default_factory=Injector)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    clients: list[Client] = field(default_factory=list)
    watch_last: dict[int, int] = field(default_factory=dict)

    def key(self, i: int) -> str:
        return f"{self.prefix}r/k{i}"

    def client(self, p: int) -> Client:
        eps = self.endpoints[p % len(self.endpoints):] + self.endpoints[:p % len(self.endpoints)]
        c = Client(eps, timeout_s=OP_TIMEOUT_S)
        self.clients.append(c)
        return c

    async def close(self) -> None:
        for c in self.clients:
            await c.close()

    # ---- recording --------------------------------------------------------------------------

    def _begin(self, p: int, f: str, key: str, args: dict[str, object]) -> Op:
        return self.history.invoke(p, f, key, args, self.now())

    def _ok(self, op: Op, revision: int, **result: object) -> None:
        op.complete_s = self.now()
        op.outcome = OK
        op.revision = revision
        op.result = dict(result)

    def _err(self, op: Op, err: BaseException, *, read_only: bool) -> None:
        op.outcome = outcome_of(err, read_only=read_only)
        op.error = error_text(err)
        op.complete_s = self.now() if op.outcome == FAIL else None

    # ---- register processes -----------------------------------------------------------------

    async def register_process(self, p: int) -> None:
        c = self.client(p)
        rnd = random.Random(self.rng.random())
        seen: dict[str, tuple[str | None, int]] = {}
        seq = 0
        while not self.stop.is_set():
            key = self.key(rnd.randrange(self.keys))
            seq += 1
            value = f"{p}.{seq}"
            x = rnd.random()
            if x < 0.35:
                await self.do_get(c, p, key, seen)
            elif x < 0.60:
                await self.do_put(c, p, key, value)
            elif x < 0.90:
                await self.do_cas(c, p, key, value, seen, by_value=x >= 0.75)
            else:
                await self.do_delete(c, p, key)

    async def do_get(self, c: Client, p: int, key: str, seen: dict[str, tuple[str | None, int]],
                     *, lease_key: bool = False) -> None:
        op = self._begin(p, "get", key, {"lease_key": True} if lease_key else {})
        try:
            r = await c.get(key.encode())
        except Exception as e:  # noqa: BLE001 - every failure is recorded
            self._err(op, e, read_only=True)
            return
        value = _s(r.kvs[0].value) if r.kvs else None
        mod_rev = r.kvs[0].mod_revision if r.kvs else 0
        stale = self.injector.stale_read(key, op.invoke_s)
        if stale is not None:
            value, mod_rev = stale
        self._ok(op, r.header.revision, value=value, mod_revision=mod_rev)
        seen[key] = (value, mod_rev)
        self.injector.observe(key, value, mod_rev, op.complete_s or 0.0)

    async def do_put(self, c: Client, p: int, key: str, value: str) -> None:
        op = self._begin(p, "put", key, {"value": value})
        if self.injector.drop_put(op.invoke_s):
            last = max((o.revision for o in self.history.ops if o.process == p and o.outcome == OK),
                       default=1)
            self._ok(op, last)
            return
        try:
            r = await c.put(key.encode(), value.encode())
        except Exception as e:  # noqa: BLE001
            self._err(op, e, read_only=False)
            return
        self._ok(op, r.header.revision)
        self._acked(op, key, value)

    def _acked(self, op: Op, key: str, value: str) -> None:
        assert op.complete_s is not None
        self.injector.acked_write(key, value, op.invoke_s, op.complete_s)
        self.injector.observe(key, value, op.revision, op.complete_s)

    async def do_cas(self, c: Client, p: int, key: str, value: str,
                     seen: dict[str, tuple[str | None, int]], *, by_value: bool) -> None:
        expect, mod_rev = seen.get(key, (None, 0))
        kb = key.encode()
        if by_value and expect is not None:
            cmp = Compare.value(kb) == expect.encode()
            args: dict[str, object] = {"expect": expect, "new": value, "by": "value"}
        else:
            cmp = Compare.mod(kb) == mod_rev
            args = {"expect": expect, "new": value, "by": "mod_revision", "mod_revision": mod_rev}
        op = self._begin(p, "cas", key, args)
        try:
            r = await c.txn().if_(cmp).then(Put(kb, value.encode())).else_(Get(kb)).commit()
        except Exception as e:  # noqa: BLE001
            self._err(op, e, read_only=False)
            return
        if r.succeeded:
            self._ok(op, r.header.revision, succeeded=True)
            self._acked(op, key, value)
            seen[key] = (value, r.header.revision)
        else:
            got = r.responses[0]
            kvs = getattr(got, "kvs", ())
            now_value = _s(kvs[0].value) if kvs else None
            now_rev = kvs[0].mod_revision if kvs else 0
            self._ok(op, r.header.revision, succeeded=False, value=now_value, mod_revision=now_rev)
            seen[key] = (now_value, now_rev)
            self.injector.observe(key, now_value, now_rev, op.complete_s or 0.0)

    async def do_delete(self, c: Client, p: int, key: str) -> None:
        op = self._begin(p, "delete", key, {})
        try:
            r = await c.delete(key.encode())
        except Exception as e:  # noqa: BLE001
            self._err(op, e, read_only=False)
            return
        self._ok(op, r.header.revision, deleted=r.deleted)

    # ---- watchers ---------------------------------------------------------------------------

    async def watcher(self, w: int) -> None:
        c = self.client(1000 + w)
        log = WatchLog(w)
        self.history.watches.append(log)
        next_rev = 1
        while True:
            log.starts.append((self.now(), next_rev))
            watch = c.watch(self.prefix.encode(), prefix=True, start_revision=next_rev)
            try:
                async for ev in watch:
                    rev = ev.kv.mod_revision
                    e = WatchEvent(rev, _s(ev.kv.key), ev.type.name,
                                   _s(ev.kv.value) if ev.type is EventType.PUT else "", self.now())
                    for _ in range(self.injector.watch_copies(w, e.at_s)):
                        log.events.append(e)
                    next_rev = max(next_rev, rev + 1)
                    self.watch_last[w] = max(self.watch_last.get(w, 0), rev)
                raise RuntimeError("watch ended")
            except asyncio.CancelledError:
                await watch.cancel()
                raise
            except Exception as e:  # noqa: BLE001 - resume from last revision + 1
                log.errors.append((self.now(), error_text(e)))
                await watch.cancel()
                await asyncio.sleep(0.2)

    # ---- leases -----------------------------------------------------------------------------

    async def lease_process(self, p: int) -> None:
        c = self.client(p)
        rnd = random.Random(self.rng.random())
        n = 0
        while not self.stop.is_set():
            n += 1
            ttl = rnd.choice((2, 3, 4))
            op = self._begin(p, "lease_grant", "", {"ttl_s": ttl})
            try:
                g = await c.lease_grant(ttl)
            except Exception as e:  # noqa: BLE001
                self._err(op, e, read_only=False)
                await asyncio.sleep(0.5)
                continue
            self._ok(op, g.header.revision, lease_id=g.lease_id)
            lid = g.lease_id
            key = f"{self.prefix}lease/{p}.{n}"
            value = f"{p}.L{n}"
            op = self._begin(p, "lease_put", key, {"value": value, "lease_id": lid})
            try:
                r = await c.put(key.encode(), value.encode(), lease_id=lid)
                self._ok(op, r.header.revision)
            except Exception as e:  # noqa: BLE001
                self._err(op, e, read_only=False)
            ka = c.keep_alive(lid, ttl_s=ttl)
            await self._sleep(rnd.uniform(0.5, 3.0))
            await ka.stop()
            if rnd.random() < 0.5:
                op = self._begin(p, "lease_revoke", "", {"lease_id": lid})
                try:
                    h = await c.lease_revoke(lid)
                    self._ok(op, h.revision)
                except Exception as e:  # noqa: BLE001
                    self._err(op, e, read_only=False)
            else:
                deadline = time.monotonic() + ttl + 15
                while time.monotonic() < deadline and not self.stop.is_set():
                    op = self._begin(p, "lease_ttl", "", {"lease_id": lid})
                    try:
                        t = await c.lease_time_to_live(lid)
                    except Exception as e:  # noqa: BLE001
                        self._err(op, e, read_only=True)
                        await asyncio.sleep(0.5)
                        continue
                    self._ok(op, t.header.revision, ttl_s=t.ttl_s, granted_ttl_s=t.granted_ttl_s)
                    if t.ttl_s < 0 and t.granted_ttl_s == 0:
                        break
                    await asyncio.sleep(0.5)
            await self.do_get(c, p, key, {}, lease_key=True)

    async def _sleep(self, s: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), s)
        except TimeoutError:
            pass
