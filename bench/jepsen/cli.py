"""`kvbench jepsen`: run a cluster under faults, record a history, check it.

    kvbench jepsen --nodes 3 --time 60                       # kvstore, every fault
    kvbench jepsen --server etcd --faults kill,pause,partition
    kvbench jepsen --server-cmd "etcd --name {name} --data-dir {data_dir} ..."
    kvbench jepsen --endpoints 10.0.0.1:2379,10.0.0.2:2379   # someone else's cluster
    kvbench jepsen --time 15 --inject-bug stale-read         # must FAIL

The run: start the members (control.py) on a network backend (net.py: namespaces or
proxies, printed), start the clients (workload.py) and the nemesis (nemesis.py); after
--time seconds stop, heal everything, read every key and the full event history, and
judge (report.py). The last line printed is `verdict: PASS|FAIL|UNKNOWN ops=N
anomalies=N faults=N`; the exit status is 0 only on PASS. The results directory gets
history.json, verdict.json, verdict.txt, latency.png and throughput.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from api.client import Client
from bench.jepsen import inject, nemesis, plots, report
from bench.jepsen.control import Cluster
from bench.jepsen.history import OK, History
from bench.jepsen.net import ClientProxyNet, Net, choose
from bench.jepsen.workload import Workload

SERVER_FAULTS = {
    "kvstore": list(nemesis.KINDS),
    "etcd": [k for k in nemesis.KINDS if k != "failpoints"],
    "template": [k for k in nemesis.KINDS if k != "failpoints"],
    "endpoints": ["partition", "delay"],
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", choices=("kvstore", "etcd"), default="kvstore")
    p.add_argument("--server-cmd", default="", help="command template for any etcd-compatible "
                   "server; fields {name} {data_dir} {client_url} {peer_url} {listen_client_url} "
                   "{listen_peer_url} {initial_cluster} {initial_cluster_state} "
                   "{initial_cluster_token}")
    p.add_argument("--endpoints", default="", help="an existing cluster (comma-separated); "
                   "only client-side faults then")
    p.add_argument("--nodes", type=int, choices=(3, 5), default=3)
    p.add_argument("--time", type=float, default=60.0, help="workload seconds")
    p.add_argument("--faults", default=None,
                   help=f"comma-separated among {','.join(nemesis.KINDS)}, or 'none' "
                   "(default: all that apply to the server)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--concurrency", type=int, default=6, help="register client processes")
    p.add_argument("--keys", type=int, default=5)
    p.add_argument("--watchers", type=int, default=2)
    p.add_argument("--leases", type=int, default=1, help="lease client processes")
    p.add_argument("--results", default="", help="results directory (default: a new temp dir)")
    p.add_argument("--inject-bug", choices=inject.MODES, default="")
    p.add_argument("--net", choices=("auto", "netns", "proxy"), default="auto")
    p.add_argument("--quiet", type=float, default=5.0, help="fault-free seconds at the end")
    p.add_argument("--fault-s", default="3,8", help="fault duration range, seconds (min,max)")
    p.add_argument("--check-budget", type=float, default=120.0,
                   help="seconds the linearizability search may take before saying UNKNOWN")
    p.add_argument("--snapshot-count", type=int, default=2000)


def say(msg: str) -> None:
    print(msg, flush=True)


def pick_faults(args: argparse.Namespace, mode: str, net: Net | None) -> list[str]:
    allowed = SERVER_FAULTS[mode]
    if args.faults is None:
        kinds = list(allowed)
    elif args.faults.strip() in ("", "none"):
        kinds = []
    else:
        kinds = [k.strip() for k in args.faults.split(",") if k.strip()]
        for k in kinds:
            if k not in nemesis.KINDS:
                raise SystemExit(f"unknown fault {k!r}")
            if k not in allowed:
                raise SystemExit(f"fault {k!r} does not apply to {mode}")
    if "delay" in kinds and net is not None and not net.supports_delay:
        say("note: this network backend cannot delay; the delay fault is off")
        kinds.remove("delay")
    return kinds


def run(args: argparse.Namespace) -> int:
    # SIGTERM (a timeout, Ctrl-C's cousin) must still run the clean-up below: members,
    # namespaces and proxies are ours to remove.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    mode = "endpoints" if args.endpoints else ("template" if args.server_cmd else args.server)
    results = Path(args.results or tempfile.mkdtemp(prefix="kvbench-jepsen-"))
    results.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="kvbench-jepsen-data-"))
    say(f"kvbench jepsen: server={mode} nodes={args.nodes} time={args.time}s seed={seed} "
        f"results={results}")
    history = History(meta={"server": mode, "nodes": args.nodes, "seed": seed,
                            "time_s": args.time, "inject_bug": args.inject_bug})
    cluster: Cluster | None = None
    net: Net | None = None
    try:
        if args.endpoints:
            eps = [e.strip() for e in args.endpoints.split(",") if e.strip()]
            kinds = pick_faults(args, mode, None)
            net = ClientProxyNet(eps, seed=seed)
            endpoints = [net.client_endpoint(i) for i in range(len(eps))]
            history.fresh_cluster = False
            backend = net.name
        else:
            wanted = pick_faults(args, mode, None)
            net, backend = choose(args.nodes, want_delay="delay" in wanted, seed=seed,
                                  prefer=args.net)
            kinds = pick_faults(args, mode, net)
            cluster = Cluster(args.server, args.nodes, tmp, net, template=args.server_cmd,
                              snapshot_count=args.snapshot_count)
            cluster.start_all()
            endpoints = cluster.endpoints
        say(f"network: {backend}")
        say(f"faults: {','.join(kinds) or 'none'}")
        history.meta.update(network=backend, faults=kinds)
        asyncio.run(_run(args, history, cluster, net, endpoints, kinds, seed))
    finally:
        if cluster is not None:
            cluster.close()
            for i in range(cluster.n):
                with contextlib.suppress(OSError):
                    shutil.copy(cluster.members[i].log_path, results / cluster.members[i].log_path.name)
        if net is not None:
            net.close()
        shutil.rmtree(tmp, ignore_errors=True)
    history.save(results / "history.json")
    say(f"checking {len(history.ops)} ops, {sum(len(w.events) for w in history.watches)} "
        f"watch events, {len(history.full_events)} events in the full history ...")
    verdict = report.judge(history, budget_s=args.check_budget)
    report.write(verdict, results)
    try:
        plots.write(history, results)
    except Exception as e:  # noqa: BLE001 - plots must not hide the verdict
        say(f"plots failed: {e}")
    for c in verdict.checks:
        for a in c.anomalies:
            say(f"anomaly {a.kind}: {a.message}")
            for line in a.example[:3]:
                say(f"    {line}")
    say(f"results: {results}")
    say(verdict.line())
    return 0 if verdict.verdict == "PASS" else 1


async def _run(args: argparse.Namespace, history: History, cluster: Cluster | None, net: Net,
               endpoints: list[str], kinds: list[str], seed: int) -> None:
    t0 = time.monotonic()
    asyncio.get_running_loop().set_exception_handler(_quiet_grpc_teardown)

    def now() -> float:
        return time.monotonic() - t0

    rng = random.Random(seed)
    nem = nemesis.Nemesis(
        cluster, net, kinds, rng=random.Random(rng.random()), history=history, now=now,
        log=say, endpoints=endpoints,
        fault_s=tuple(float(x) for x in args.fault_s.split(",")),  # type: ignore[arg-type]
    )
    if cluster is not None and not await nem.wait_healthy(60.0):
        raise RuntimeError("cluster did not start: " + cluster.log_tail(0))
    say(f"cluster ready after {now():.1f}s: {', '.join(endpoints)}")
    prefix = f"/jepsen/{seed}/"
    wl = Workload(endpoints, history, prefix, now, random.Random(rng.random()), keys=args.keys,
                  concurrency=args.concurrency, watchers=args.watchers,
                  lease_processes=args.leases, injector=inject.Injector(args.inject_bug))
    t0 = time.monotonic()  # the history's clock starts with the workload
    workers = [asyncio.ensure_future(wl.register_process(p)) for p in range(args.concurrency)]
    workers += [asyncio.ensure_future(wl.lease_process(100 + p)) for p in range(args.leases)]
    watchers = [asyncio.ensure_future(wl.watcher(w)) for w in range(args.watchers)]
    nem_task = asyncio.ensure_future(nem.run(until_s=args.time - args.quiet))
    progress = asyncio.ensure_future(_progress(history, now))
    await asyncio.sleep(args.time)
    wl.stop.set()
    await asyncio.wait(workers, timeout=20)
    for w in workers:
        w.cancel()
    await nem_task
    progress.cancel()
    say(f"[{now():7.1f}s] workload stopped; healing and reading the final state")
    if cluster is not None:
        for i, m in enumerate(cluster.members):
            cluster.resume(i)
            if not m.running:
                cluster.spawn(i)
    await asyncio.to_thread(net.heal_partition)
    await asyncio.to_thread(net.heal_delay)
    if not await nem.wait_healthy(30.0):
        say("warning: cluster not healthy after healing")
    await _final_reads(wl, history)
    await _wait_watchers(wl, history.final_revision, watchers, now)
    history.full_events = await _full_history(endpoints, prefix, history.final_revision)
    await wl.close()
    await nem.close()


def _quiet_grpc_teardown(loop: asyncio.AbstractEventLoop, ctx: dict[str, object]) -> None:
    """Drop grpc.aio's known noise when a cancelled stream's request iterator is torn down
    (its task is destroyed pending); report everything else as usual."""
    msg = str(ctx.get("message", ""))
    exc = ctx.get("exception")
    if "Task was destroyed but it is pending" in msg or (
            isinstance(exc, RuntimeError) and "aclose()" in str(exc)):
        return
    loop.default_exception_handler(ctx)


async def _progress(history: History, now: object) -> None:
    while True:
        await asyncio.sleep(5.0)
        ops = history.ops
        # An op still in flight is "unknown" until it completes: count it apart.
        by = {o: sum(1 for x in ops if x.outcome == o and (x.complete_s or x.error))
              for o in ("ok", "fail", "unknown")}
        say(f"[{now():7.1f}s] ops={len(ops)} ok={by['ok']} fail={by['fail']} "  # type: ignore[operator]
            f"unknown={by['unknown']} faults={len(history.faults)}")


async def _final_reads(wl: Workload, history: History) -> None:
    c = wl.client(9999)
    keys = sorted({wl.key(i) for i in range(wl.keys)})
    lease_keys = sorted({o.key for o in history.ops if o.f == "lease_put"})
    for key in keys + lease_keys:
        for _ in range(10):
            n = len(history.ops)
            await wl.do_get(c, 9999, key, {}, lease_key=key in lease_keys)
            if history.ops[n].outcome == OK:
                break
            await asyncio.sleep(0.5)
    for _ in range(20):
        try:
            history.final_revision = (await c.get(b"\0", timeout_s=2.0)).header.revision
            return
        except Exception:  # noqa: BLE001
            await asyncio.sleep(0.5)


async def _wait_watchers(wl: Workload, final_rev: int, tasks: list[asyncio.Future[None]],
                         now: object) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(wl.watch_last.get(w, 0) >= final_rev for w in range(len(tasks))):
            break
        await asyncio.sleep(0.2)
    else:
        say(f"note: watchers reached {dict(wl.watch_last)} of revision {final_rev}")
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _full_history(endpoints: list[str], prefix: str,
                        final_rev: int) -> list[tuple[int, str, str, str]]:
    """Every event under the prefix from revision 1 to the final revision (one watch)."""
    if final_rev <= 1:
        return []
    out: list[tuple[int, str, str, str]] = []
    async with Client(endpoints, timeout_s=5.0) as c:
        w = c.watch(prefix.encode(), prefix=True, start_revision=1)
        try:
            async with asyncio.timeout(60):
                async for ev in w:
                    value = ev.kv.value.decode("utf-8", "replace") if ev.type.name == "PUT" else ""
                    out.append((ev.kv.mod_revision, ev.kv.key.decode("utf-8", "replace"),
                                ev.type.name, value))
                    if ev.kv.mod_revision >= final_rev:
                        break
        except TimeoutError:
            say(f"warning: full history read timed out at {len(out)} events")
            return []
        finally:
            await w.cancel()
    # Events of the last revision may span several keys; a second read would add nothing
    # our ops wrote (the workload was stopped), so stopping at final_rev is complete.
    return out


if __name__ == "__main__":  # pragma: no cover
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    sys.exit(run(ap.parse_args()))
