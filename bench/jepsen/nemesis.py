"""The nemesis: random faults, one at a time, each healed before the next.

Theory of operation. From the seed, the nemesis draws a fault kind among the enabled ones,
a target (a random member, or the current leader), and a duration; it injects the fault,
waits, heals it, waits for the cluster to answer again, pauses, and draws the next. It stops
drawing when a fault could no longer be healed before `until_s`, so the run ends healed
and the workload gets a quiet period before the final reads. Every fault is recorded with
its window (history.Fault) for the verdict and the plots.

Kinds:
* kill        SIGKILL a member (or the leader), restart it on the same data dir;
* pause       SIGSTOP a member (or the leader), SIGCONT it;
* partition   isolate a member or the leader, or split off a random minority;
* delay       slow every peer link (netem or proxies) by 50-300 ms with jitter;
* membership  remove a member (MemberRemove; it exits), later re-add it (MemberAdd) on a
              fresh data dir with --initial-cluster-state existing;
* failpoints  (kvstore) restart a member with KVSTORE_FAILPOINTS armed: a crash, an I/O
              error (fail-stop) or a slow fsync in the WAL, apply or snapshot path; healed
              by a clean restart.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from api.client import Client
from bench.jepsen.control import Cluster
from bench.jepsen.history import Fault, History
from bench.jepsen.net import Net, pairs_between
from bench.jepsen.proxy import CLIENT

KINDS = ("kill", "pause", "partition", "delay", "membership", "failpoints")
FAILPOINT_SPECS = (
    "wal.before_fsync=panic@{n}",
    "wal.after_fsync=panic@{n}",
    "apply.before_commit=panic@{n}",
    "snapshot.before_rename=panic@1",
    "wal.before_fsync=error(EIO)@{n}",
    "wal.before_fsync=sleep(150)",
    "apply.before_commit=sleep(100)",
)


class Nemesis:
    def __init__(self, cluster: Cluster | None, net: Net, kinds: list[str], *, rng: random.Random,
                 history: History, now: Callable[[], float], log: Callable[[str], None],
                 endpoints: list[str], fault_s: tuple[float, float] = (3.0, 8.0),
                 gap_s: tuple[float, float] = (1.0, 3.0)) -> None:
        self.cluster = cluster
        self.net = net
        self.kinds = kinds
        self.rng = rng
        self.history = history
        self.now = now
        self.log = log
        self.fault_s = fault_s
        self.gap_s = gap_s
        self.admin = Client(endpoints, timeout_s=2.0)
        self.endpoints = endpoints

    async def close(self) -> None:
        await self.admin.close()

    # ---- observation ------------------------------------------------------------------------

    async def index_of(self, member_id: int) -> int | None:
        if self.cluster is None:
            return None
        try:
            members = await self.admin.member_list(timeout_s=2.0)
        except Exception:  # noqa: BLE001
            return None
        for m in members:
            if m.member_id == member_id:
                for i in range(self.cluster.n):
                    if self.cluster.net.urls(i)["peer_url"] in m.peer_urls:
                        return i
        return None

    async def leader(self) -> int | None:
        for ep in self.endpoints:
            try:
                st = await self.admin.status(endpoint=ep, timeout_s=1.0)
            except Exception:  # noqa: BLE001
                continue
            if st.leader:
                return await self.index_of(st.leader)
        return None

    async def wait_healthy(self, timeout_s: float = 20.0) -> bool:
        """Until every running member answers Status and names a leader."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            ok = True
            answered = 0
            for i, ep in enumerate(self.endpoints):
                if self.cluster is not None and not self.cluster.members[i].running:
                    continue
                try:
                    st = await self.admin.status(endpoint=ep, timeout_s=1.0)
                    ok = ok and st.leader != 0
                    answered += 1
                except Exception:  # noqa: BLE001
                    ok = False
            if ok and answered > len(self.endpoints) // 2:
                return True
            await asyncio.sleep(0.2)
        return False

    async def _target(self, fault: str) -> tuple[int, str]:
        n = len(self.endpoints)
        if self.rng.random() < 0.5:
            lead = await self.leader()
            if lead is not None:
                return lead, f"n{lead + 1} (leader)"
        i = self.rng.randrange(n)
        return i, f"n{i + 1}"

    # ---- the schedule -----------------------------------------------------------------------

    async def run(self, until_s: float) -> None:
        await asyncio.sleep(self.rng.uniform(*self.gap_s) + 1.0)
        while True:
            dur = self.rng.uniform(*self.fault_s)
            if self.now() + dur + 2.0 > until_s or not self.kinds:
                return
            kind = self.rng.choice(self.kinds)
            try:
                await getattr(self, f"fault_{kind}")(dur)
            except Exception as e:  # noqa: BLE001 - a fault that failed to apply is logged
                self.log(f"nemesis: {kind} failed: {type(e).__name__}: {e}")
            healthy = await self.wait_healthy()
            if not healthy:
                self.log("nemesis: cluster not healthy 20 s after healing")
            gap = self.rng.uniform(*self.gap_s)
            if self.now() + gap >= until_s:
                return
            await asyncio.sleep(gap)

    async def _window(self, kind: str, target: str, detail: str, dur: float) -> Fault:
        f = Fault(kind, target, self.now(), detail=detail)
        self.history.faults.append(f)
        self.log(f"[{f.start_s:7.1f}s] fault {kind} {target} {detail}".rstrip())
        await asyncio.sleep(dur)
        return f

    def _healed(self, f: Fault) -> None:
        f.end_s = self.now()
        self.log(f"[{f.end_s:7.1f}s] healed {f.kind} {f.target}")

    async def fault_kill(self, dur: float) -> None:
        assert self.cluster is not None
        i, name = await self._target("kill")
        self.cluster.kill(i)
        f = await self._window("kill", name, "", dur)
        self.cluster.spawn(i)
        self._healed(f)

    async def fault_pause(self, dur: float) -> None:
        assert self.cluster is not None
        i, name = await self._target("pause")
        self.cluster.pause(i)
        try:
            f = await self._window("pause", name, "", dur)
        finally:
            self.cluster.resume(i)
        self._healed(f)

    async def fault_partition(self, dur: float) -> None:
        n = len(self.endpoints)
        i, name = await self._target("partition")
        minority = [i]
        if n >= 5 and self.rng.random() < 0.5:
            minority = self.rng.sample(range(n), (n - 1) // 2)
            name = "minority " + ",".join(f"n{j + 1}" for j in sorted(minority))
        else:
            name = "isolate " + name
        majority = [j for j in range(n) if j not in minority]
        pairs = pairs_between(minority, majority)
        if self.cluster is None:  # an existing cluster: cut our clients from the minority
            pairs = {frozenset((CLIENT, j)) for j in minority}
        await asyncio.to_thread(self.net.partition, pairs)
        try:
            f = await self._window("partition", name, "", dur)
        finally:
            await asyncio.to_thread(self.net.heal_partition)
        self._healed(f)

    async def fault_delay(self, dur: float) -> None:
        ms = self.rng.randrange(50, 300)
        await asyncio.to_thread(self.net.delay, ms, ms // 4)
        try:
            f = await self._window("delay", "all links", f"{ms}ms", dur)
        finally:
            await asyncio.to_thread(self.net.heal_delay)
        self._healed(f)

    async def fault_failpoints(self, dur: float) -> None:
        assert self.cluster is not None
        i, name = await self._target("failpoints")
        spec = self.rng.choice(FAILPOINT_SPECS).format(n=self.rng.randrange(5, 200))
        self.cluster.restart(i, env={"KVSTORE_FAILPOINTS": spec})
        f = await self._window("failpoints", name, spec, dur)
        exited = not self.cluster.members[i].running
        self.cluster.restart(i)
        f.detail += " (it exited)" if exited else ""
        self._healed(f)

    async def fault_membership(self, dur: float) -> None:
        c = self.cluster
        assert c is not None
        i, name = await self._target("membership")
        peer_url = c.net.urls(i)["peer_url"]
        members = await self.admin.member_list()
        mine = [m for m in members if peer_url in m.peer_urls]
        if not mine or len(members) < c.n:
            raise RuntimeError("membership not as expected; skipped")
        f = Fault("membership", name, self.now(), detail="remove")
        self.history.faults.append(f)
        self.log(f"[{f.start_s:7.1f}s] fault membership remove {name}")
        try:
            await self.admin.member_remove(mine[0].member_id, timeout_s=5.0)
        except Exception as e:  # noqa: BLE001 - maybe applied: look
            self.log(f"nemesis: member remove answered {type(e).__name__}; checking")
        for _ in range(50):
            try:
                now_members = await self.admin.member_list()
            except Exception:  # noqa: BLE001
                await asyncio.sleep(0.2)
                continue
            if not any(peer_url in m.peer_urls for m in now_members):
                break
            await asyncio.sleep(0.2)
        else:
            f.detail = "remove did not happen"
            self._healed(f)
            return
        # The removed member shuts itself down once it learns of its removal.
        for _ in range(25):
            if not c.members[i].running:
                break
            await asyncio.sleep(0.2)
        c.kill(i)
        await asyncio.sleep(dur)
        new, after = await self._add_back(peer_url)
        initial = ",".join(
            f"{m.name if m.name else c.members[i].name}={m.peer_urls[0]}" for m in after)
        c.prepare_rejoin(i, initial)
        c.spawn(i)
        f.detail = f"removed, re-added as {new:x}"
        self._healed(f)

    async def _add_back(self, peer_url: str) -> tuple[int, tuple]:  # type: ignore[type-arg]
        last: Exception | None = None
        for _ in range(20):
            try:
                new, after = await self.admin.member_add([peer_url], timeout_s=5.0)
                return new.member_id, after
            except Exception as e:  # noqa: BLE001 - maybe applied: look before retrying
                last = e
                try:
                    members = await self.admin.member_list()
                    for m in members:
                        if peer_url in m.peer_urls:
                            return m.member_id, members
                except Exception:  # noqa: BLE001
                    pass
                await asyncio.sleep(0.5)
        raise RuntimeError(f"could not re-add {peer_url}: {last}")
