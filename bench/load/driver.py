"""The driver: split a run over worker processes, start them together, merge what they saw.

`run_load(plan, endpoints, server_pids=...)` is one measured run of one workload at one
shape (conns x clients). Conns and clients are split as evenly as possible over `procs`
workers (never more workers than clients); connections are numbered over all workers and
connection k goes to endpoint k mod len(endpoints), so the members of a cluster get equal
shares (10 conns over 3 members: 4, 3, 3; the first endpoint gets the extra ones). For the
watch workload, Python worker 0 runs the putter and the watchers go to the Go receiver
(bench/load/gowatch, one process speaking the same protocol), or, with the Python client,
are split over the workers with their streams. Every worker first connects and does
its setup (so connection set-up and watch registration are outside the window), answers
"ready", and is then given the same wall-clock start instant. Server CPU and RSS are
sampled from /proc just before that instant and after the last worker has reported (for a
cluster: CPU summed over the members, RSS of the largest member).

`preload(endpoint, ...)` fills keys with Txn batches of 128 puts (etcd's --max-txn-ops
default), several in flight, so a million keys take thousands of round trips, not a million.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import IO, Any

import grpc

from api.proto import rpc_pb2, rpc_pb2_grpc
from bench.load.errors import WorkerError, invariant
from bench.load.gowatch_build import gowatch_binary
from bench.load.histogram import Histogram, Summary
from bench.load.procstat import ProcSample, busiest_thread_cpu_s, sample_procs
from bench.load.workloads import WorkerSpec, key_of
from bench.server_process import REPO

READY_TIMEOUT_S = 120.0
START_MARGIN_S = 0.3
PRELOAD_BATCH = 128
PRELOAD_INFLIGHT = 8


@dataclass(frozen=True, slots=True)
class LoadPlan:
    workload: str
    conns: int
    clients: int
    procs: int
    duration_s: float
    key_size: int
    val_size: int
    key_space: int
    watchers: int = 1000
    watch_streams: int = 10
    watch_rate: float = 100.0
    drain_s: float = 10.0
    seed: int = 1
    nodes: int = 1
    # Watch runs: "go" receives the events in bench/load/gowatch (one process; Python
    # worker 0 only puts), "python" in the Python workers.
    watch_client: str = "python"


@dataclass(frozen=True, slots=True)
class RunResult:
    target: str
    workload: str
    conns: int
    clients: int
    procs: int
    duration_s: float
    ops: int
    errors: int
    throughput: float
    latency: Summary
    sub_latency: dict[str, Summary] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    server_cpu_s: float | None = None
    cpu_ms_per_op: float | None = None
    rss_peak_bytes: int | None = None
    rss_bytes: int | None = None
    first_error: str = ""
    # Load-generator CPU over its wall time, as a fraction of one core per process: near 1.0
    # means the client, not the server, set the pace.
    client_busy: float = 0.0
    # CPU ms per op of the server's busiest thread, and the throughput that thread could
    # reach with a whole core to itself (1000 / that): the ceiling of a serial hot path,
    # independent of how many other processes share the machine.
    thread_ms_per_op: float | None = None
    thread_ceiling_ops: float | None = None
    # Cluster size, and how the connections were spread over the members' endpoints.
    nodes: int = 1
    spread: str = ""

    @property
    def shape(self) -> str:
        if self.workload == "watch":  # watchers over streams
            return f"{self.counters.get('watchers', 0)}w/{self.counters.get('watch_streams', 0)}s"
        return f"{self.conns}x{self.clients}"


def _split(total: int, parts: int, i: int) -> int:
    return total // parts + (1 if i < total % parts else 0)


def plan_workers(plan: LoadPlan, endpoints: tuple[str, ...]) -> list[WorkerSpec]:
    """One WorkerSpec per process; the shares add up to the plan's totals."""
    if plan.workload == "watch" and plan.watch_client == "go":
        return _plan_go_watch(plan, endpoints)
    if plan.workload == "watch":
        procs = max(1, min(plan.procs, plan.watch_streams, max(1, plan.watchers)))
    else:
        procs = max(1, min(plan.procs, plan.clients))
    specs = []
    offset = 0
    for i in range(procs):
        conns = max(1, _split(plan.conns, procs, i))
        specs.append(WorkerSpec(
            workload=plan.workload, endpoints=endpoints, conns=conns, conn_offset=offset,
            clients=_split(plan.clients, procs, i) if plan.workload != "watch" else 0,
            duration_s=plan.duration_s, key_size=plan.key_size, val_size=plan.val_size,
            key_space=plan.key_space, seed=plan.seed * 1000 + i,
            watchers=_split(plan.watchers, procs, i) if plan.workload == "watch" else 0,
            watch_streams=_split(plan.watch_streams, procs, i) if plan.workload == "watch" else 0,
            putter=plan.workload == "watch" and i == 0,
            watch_rate=plan.watch_rate, drain_s=plan.drain_s,
        ))
        offset += conns
    if plan.workload == "watch":
        invariant(sum(s.watchers for s in specs) == plan.watchers, "watchers split")
    else:
        invariant(sum(s.clients for s in specs) == plan.clients, "clients split")
    return specs


def _plan_go_watch(plan: LoadPlan, endpoints: tuple[str, ...]) -> list[WorkerSpec]:
    """A Python putter (no watchers) and one Go process holding every watcher and stream
    (Go spreads its goroutines over the cores itself)."""
    putter = WorkerSpec(
        workload="watch", endpoints=endpoints, conns=1, clients=0, duration_s=plan.duration_s,
        key_size=plan.key_size, val_size=plan.val_size, key_space=plan.key_space,
        seed=plan.seed * 1000, putter=True, watch_rate=plan.watch_rate, drain_s=plan.drain_s,
    )
    receiver = replace(putter, conns=max(1, plan.conns), conn_offset=1, seed=putter.seed + 1,
                       putter=False, watchers=plan.watchers, watch_streams=plan.watch_streams,
                       runner="go")
    return [putter, receiver]


class _Worker:
    def __init__(self, spec: WorkerSpec) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        if spec.runner == "go":
            command = [str(gowatch_binary())]
        else:
            command = [sys.executable, "-m", "bench.load.worker"]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env, cwd=REPO, text=True,
        )
        self.send({"spec": spec.to_json()})

    def send(self, message: dict[str, Any]) -> None:
        stdin: IO[str] | None = self.proc.stdin
        invariant(stdin is not None, "worker stdin is a pipe")
        assert stdin is not None  # for mypy; checked above
        stdin.write(json.dumps(message) + "\n")
        stdin.flush()

    def receive(self, want: str) -> dict[str, Any]:
        stdout = self.proc.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            self.proc.wait()
            raise WorkerError(f"worker exited ({self.proc.returncode}) before sending {want!r}")
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise WorkerError(f"worker failed: {message['error']}")
        if want not in message:
            raise WorkerError(f"worker sent {sorted(message)} while {want!r} was expected")
        return message

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def conns_per_endpoint(specs: list[WorkerSpec]) -> list[int]:
    """How many connections each endpoint gets: connection k (counted over all workers)
    goes to endpoint k mod len(endpoints), see worker.py."""
    endpoints = specs[0].endpoints
    counts = [0] * len(endpoints)
    for spec in specs:
        for k in range(spec.conn_offset, spec.conn_offset + spec.conns):
            counts[k % len(endpoints)] += 1
    return counts


def run_load(
    plan: LoadPlan, endpoints: tuple[str, ...], *, target: str,
    server_pid: int | None = None, server_pids: tuple[int, ...] = (),
    endpoint_names: tuple[str, ...] = (),
) -> RunResult:
    """One measured run. `server_pids` (or the single `server_pid`) are sampled from /proc:
    CPU summed over the members, RSS of the largest. `endpoint_names` label the endpoints
    in the spread note (e.g. "leader", "follower")."""
    pids = server_pids or ((server_pid,) if server_pid is not None else ())
    specs = plan_workers(plan, endpoints)
    workers: list[_Worker] = []
    try:
        for spec in specs:
            workers.append(_Worker(spec))
        for w in workers:
            w.receive("ready")
        start_at = time.time() + START_MARGIN_S
        for w in workers:
            w.send({"start_at": start_at})
        time.sleep(max(0.0, start_at - time.time()))
        before = sample_procs(pids)
        messages = [w.receive("result") for w in workers]
        after = sample_procs(pids)
        for w in workers:
            w.proc.wait(timeout=30)
    finally:
        for w in workers:
            w.kill()
    spread = ""
    if len(endpoints) > 1:
        names = endpoint_names or tuple(f"ep{i + 1}" for i in range(len(endpoints)))
        spread = " ".join(f"{n}:{c}" for n, c in zip(names, conns_per_endpoint(specs), strict=True))
    return _merge(plan, target, len(specs), messages, before, after, spread)


def _merge(
    plan: LoadPlan, target: str, procs: int, messages: list[dict[str, Any]],
    before: ProcSample | None, after: ProcSample | None, spread: str = "",
) -> RunResult:
    hist = Histogram()
    subs: dict[str, Histogram] = {}
    counters: dict[str, int] = {}
    ops = errors = 0
    first_error = ""
    busy = 0.0
    for m in messages:
        busy = max(busy, float(m.get("cpu_s", 0.0)) / max(1e-9, float(m.get("elapsed_s", 0.0))))
        r = m["result"]
        ops += int(r["ops"])
        errors += int(r["errors"])
        first_error = first_error or str(r.get("first_error", ""))
        hist.merge(Histogram.from_json(r["hist"]))
        for name, h in r["sub"].items():
            subs.setdefault(name, Histogram()).merge(Histogram.from_json(h))
        for name, n in r["counters"].items():
            counters[name] = counters.get(name, 0) + int(n)
    cpu_s = cpu_ms = thread_ms = ceiling = None
    if before is not None and after is not None:
        cpu_s = after.cpu_s - before.cpu_s
        cpu_ms = cpu_s * 1000.0 / ops if ops else None
        # The per-thread files are read just after the process's: the thread's share can
        # come out a tick above the whole process's, which no thread can really use.
        busiest = min(busiest_thread_cpu_s(before, after), cpu_s)
        if ops and busiest > 0:
            thread_ms = busiest * 1000.0 / ops
            ceiling = 1000.0 / thread_ms
    return RunResult(
        target=target, workload=plan.workload, conns=plan.conns,
        clients=plan.clients if plan.workload != "watch" else 0, procs=procs,
        duration_s=plan.duration_s, ops=ops, errors=errors,
        throughput=ops / plan.duration_s, latency=hist.summary(),
        sub_latency={k: h.summary() for k, h in sorted(subs.items())}, counters=counters,
        server_cpu_s=cpu_s, cpu_ms_per_op=cpu_ms,
        rss_peak_bytes=after.rss_peak_bytes if after else None,
        rss_bytes=after.rss_bytes if after else None, first_error=first_error,
        client_busy=busy, thread_ms_per_op=thread_ms, thread_ceiling_ops=ceiling,
        nodes=plan.nodes, spread=spread,
    )


def preload(
    endpoint: str, *, count: int, key_size: int, val_size: int, key_space: int,
    batch: int = PRELOAD_BATCH, inflight: int = PRELOAD_INFLIGHT,
) -> float:
    """Put keys 0..count-1 (`val_size`-byte values, `batch` puts per Txn, `inflight` Txns
    outstanding); returns the seconds it took."""
    value = os.urandom(val_size)
    started = time.monotonic()
    with grpc.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 8 << 20)]) as ch:
        stub = rpc_pb2_grpc.KVStub(ch)
        pending: list[Future[Any]] = []
        for lo in range(0, count, batch):
            ops = [
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(
                    key=key_of(i, key_size=key_size, key_space=key_space), value=value))
                for i in range(lo, min(count, lo + batch))
            ]
            pending.append(stub.Txn.future(rpc_pb2.TxnRequest(success=ops), timeout=60))
            if len(pending) >= inflight:
                pending.pop(0).result()
        for f in pending:
            f.result()
    return time.monotonic() - started
