"""`kvbench load`: etcd-API load (put, range, txn CAS, watch fan-out, leases), kvstore vs etcd.

This module holds the arguments and the run loop (workload x shape x target).

By default every (workload, shape) runs on a *fresh* single kvstore member started on free
loopback ports in a temp dir, and with --compare-etcd on a fresh etcd 3.4 right after it, so
each run starts empty and its CPU and peak RSS belong to it alone. --endpoints aims at
running servers instead (no CPU/RSS unless --server-pid names the server process).
--rss-keys N loads N keys into a fresh member and reports its RSS, nothing else unless
--workload is also given. The RSS depends on how the keys arrive: the server keeps recent
raft entries in memory (etcd keeps 5,000 after each snapshot, and so does kvstore), so
128-put Txn batches (--preload-batch, the default) leave far more log in RSS than single
puts would; report the batch size with the figure.

Examples:
    kvbench load --workload put --shapes 1x1,10x100 --compare-etcd --duration 10
    kvbench load --workload watch --watchers 1000 --watch-rate 100 --compare-etcd
    kvbench load --rss-keys 1000000 --val-size 256 --compare-etcd
    kvbench load --workload put --server-arg=--snapshot-count=1000   # extra server flags

Clusters (--nodes N): every run gets a fresh N-member cluster of each kind (same flags,
--heartbeat-ms/--election-ms, etcd's 100/1000 by default). The connections are spread
round-robin over all members, leader first: 1x1 talks to the leader, 10x100 puts 4
connections on the leader and 3 on each follower (the "conns" note of each run says so),
and followers forward writes and ReadIndex requests to the leader. Server CPU is summed
over the members, RSS is that of the largest member.

Scenarios (--scenarios failover,catchup; see failover.py and catchup.py), each on a fresh
cluster of max(3, --nodes) members, after the workloads:
    kvbench load --nodes 3 --workload put,range,range-serializable,txn-cas \
        --shapes 1x1,10x100 --compare-etcd
    kvbench load --scenarios failover --rounds 5 --compare-etcd
    kvbench load --scenarios catchup --catchup-mib 100 --compare-etcd
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.load.cluster import ELECTION_MS, HEARTBEAT_MS, BenchCluster
from bench.load.driver import LoadPlan, RunResult, preload, run_load
from bench.load.errors import LoadError
from bench.load.gowatch_build import missing_reason
from bench.load.procstat import sample_proc
from bench.load.report import (
    HEADER,
    RssResult,
    check_targets,
    format_ratios,
    format_rss,
    format_run,
    format_threads,
    save_json,
    to_json,
)
from bench.load.scenarios import (
    SCENARIOS,
    ScenarioOutcome,
    add_scenario_arguments,
    run_scenarios,
)
from bench.load.workloads import NEEDS_KEYS, WORKLOADS
from bench.server_process import etcd_binary


def _shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for part in text.split(","):
        conns, _, clients = part.strip().partition("x")
        try:
            shape = (int(conns), int(clients))
        except ValueError:
            raise argparse.ArgumentTypeError(f"shape {part!r} is not CONNSxCLIENTS") from None
        if shape[0] < 1 or shape[1] < 1:
            raise argparse.ArgumentTypeError(f"shape {part!r} needs at least 1x1")
        shapes.append(shape)
    return shapes


def _workloads(text: str) -> list[str]:
    names = [w.strip() for w in text.split(",") if w.strip()]
    if names == ["all"]:
        return list(WORKLOADS)
    for name in names:
        if name not in WORKLOADS:
            raise argparse.ArgumentTypeError(
                f"unknown workload {name!r} (choose from {', '.join(WORKLOADS)}, all)")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else None
    a = parser.add_argument
    a("--workload", type=_workloads, default=None,
      help="put|range|range-serializable|txn-cas|watch|lease|all, or a comma list (default put)")
    a("--conns", type=int, default=1, help="gRPC connections (TCP) in total")
    a("--clients", type=int, default=1, help="concurrent clients in total")
    a("--shapes", type=_shapes, default=None,
      help="several CONNSxCLIENTS shapes in one run, e.g. 1x1,10x100 (overrides --conns/--clients)")
    a("--procs", type=int, default=0,
      help="load-generator processes (0: one per CPU, at most one per client)")
    a("--duration", type=float, default=10.0, help="seconds measured per run")
    a("--repeat", type=int, default=1,
      help="run each workload and shape N times, kvstore and etcd back to back each time; "
           "ratios and targets are then the medians over the N pairs (all values printed)")
    a("--key-size", type=int, default=8, help="key bytes")
    a("--val-size", type=int, default=256, help="value bytes")
    a("--key-space", type=int, default=10000, help="distinct keys the load touches")
    a("--preload", type=int, default=0,
      help="put this many keys before measuring (range and txn-cas always preload --key-space)")
    a("--preload-val-size", type=int, default=None, help="value bytes of preloaded keys")
    a("--watchers", type=int, default=1000, help="watch: watchers in total")
    a("--watch-streams", type=int, default=10, help="watch: gRPC watch streams in total")
    a("--watch-rate", type=float, default=100.0, help="watch: puts per second")
    a("--watch-client", choices=("auto", "go", "python"), default="auto",
      help="watch: receive events in the Go receiver (bench/load/gowatch, etcd's clientv3) "
           "or in Python workers; auto: Go when it can be built here")
    a("--watch-drain", type=float, default=10.0,
      help="watch: seconds to wait after the last put for every event to arrive")
    a("--endpoints", default=None, help="host:port,... of running servers (no server is started)")
    a("--server-pid", type=int, action="append", default=None,
      help="with --endpoints: PID of the server process to sample CPU and RSS from")
    a("--compare-etcd", action="store_true",
      help="run the identical load against a fresh real etcd 3.4 and print kvstore/etcd ratios")
    a("--server-arg", action="append", default=None, metavar="FLAG",
      help="extra flag for the servers started here (both kinds), e.g. --server-arg=--snapshot-count=1000")
    a("--preload-batch", type=int, default=128, help="puts per Txn when preloading (etcd max 128)")
    a("--rss-keys", type=int, default=0, help="load N keys into a fresh member and report its RSS")
    a("--nodes", type=int, default=1,
      help="members per server cluster started here (connections spread over all of them)")
    a("--heartbeat-ms", type=int, default=HEARTBEAT_MS, help="--heartbeat-interval of the servers")
    a("--election-ms", type=int, default=ELECTION_MS, help="--election-timeout of the servers")
    a("--scenarios", type=_scenarios, default=[],
      help=f"cluster scenarios after the workloads: {', '.join(SCENARIOS)} (comma list)")
    add_scenario_arguments(parser)
    a("--seed", type=int, default=1)
    a("--json", dest="json_path", default=None, help="also save all results as JSON here")


def _scenarios(text: str) -> list[str]:
    names = [w.strip() for w in text.split(",") if w.strip()]
    for name in names:
        if name not in SCENARIOS:
            raise argparse.ArgumentTypeError(
                f"unknown scenario {name!r} (choose from {', '.join(SCENARIOS)})")
    return names


@dataclass(frozen=True, slots=True)
class Target:
    """Where a run goes: endpoints (leader first), their labels, and the server PIDs."""

    endpoints: tuple[str, ...]
    names: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()


@contextmanager
def _target(kind: str, args: argparse.Namespace) -> Iterator[Target]:
    """A fresh server cluster of `kind`, or the running servers given."""
    if args.endpoints:
        return_endpoints = tuple(e.strip() for e in args.endpoints.split(",") if e.strip())
        yield Target(return_endpoints, pids=tuple(args.server_pid or ()))
        return
    with BenchCluster(kind, args.nodes, extra_args=tuple(args.server_arg or ()),
                      heartbeat_ms=args.heartbeat_ms, election_ms=args.election_ms) as cluster:
        lead = cluster.leader_index()
        order = [lead] + [i for i in cluster.running if i != lead]
        yield Target(
            endpoints=tuple(cluster.members[i].endpoint for i in order),
            names=tuple("leader" if i == lead else f"follower{n}" for n, i in enumerate(order)),
            pids=cluster.pids,
        )


def _targets(args: argparse.Namespace) -> list[str]:
    if args.endpoints:
        return ["endpoints"]
    return ["kvstore", "etcd"] if args.compare_etcd else ["kvstore"]


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except LoadError as exc:
        print(f"kvbench load: {exc}", file=sys.stderr)
        return 1


def _watch_client(choice: str) -> str:
    if choice != "auto":
        return choice
    reason = missing_reason()
    if reason is None:
        return "go"
    print(f"kvbench load: watch events received in Python (the Go receiver {reason}); "
          "a Python client costs tens of microseconds per event, so fan-out latency "
          "measures the load generator", file=sys.stderr)
    return "python"


def _run(args: argparse.Namespace) -> int:
    if args.compare_etcd and not args.endpoints and etcd_binary() is None:
        print("kvbench load: --compare-etcd needs the etcd binary on PATH", file=sys.stderr)
        return 2
    if args.nodes < 1:
        print("kvbench load: --nodes must be at least 1", file=sys.stderr)
        return 2
    if args.scenarios and args.endpoints:
        print("kvbench load: --scenarios start their own clusters; not with --endpoints",
              file=sys.stderr)
        return 2
    default = [] if args.rss_keys or args.scenarios else ["put"]
    workloads = args.workload if args.workload is not None else default
    shapes = args.shapes or [(args.conns, args.clients)]
    cpus = os.cpu_count() or 1
    results: list[RunResult] = []
    rss: list[RssResult] = []
    print(HEADER, flush=True)
    for workload in workloads:
        # The watch workload's shape is watchers/streams; one run at --conns is enough.
        for conns, clients in (shapes[:1] if workload == "watch" else shapes):
            if workload == "watch" and args.shapes:
                conns = max(c for c, _ in shapes)
            procs = args.procs or (cpus if workload == "watch" else min(cpus, clients))
            plan = LoadPlan(
                workload=workload, conns=conns, clients=clients, procs=procs,
                duration_s=args.duration, key_size=args.key_size, val_size=args.val_size,
                key_space=args.key_space, watchers=args.watchers,
                watch_streams=args.watch_streams, watch_rate=args.watch_rate,
                drain_s=args.watch_drain, seed=args.seed,
                watch_client=_watch_client(args.watch_client) if workload == "watch" else "python",
                nodes=1 if args.endpoints else args.nodes,
            )
            for kind in [k for _ in range(max(1, args.repeat)) for k in _targets(args)]:
                with _target(kind, args) as target:
                    count = max(args.preload, args.key_space if workload in NEEDS_KEYS else 0)
                    if count:
                        preload(target.endpoints[0], count=count, key_size=args.key_size,
                                batch=args.preload_batch,
                                val_size=args.preload_val_size or args.val_size,
                                key_space=max(args.key_space, count))
                    result = run_load(plan, target.endpoints, target=kind,
                                      server_pids=target.pids, endpoint_names=target.names)
                results.append(result)
                print(format_run(result), flush=True)
    if args.rss_keys:
        for kind in _targets(args):
            with _target(kind, args) as target:
                load_s = preload(target.endpoints[0], count=args.rss_keys, key_size=args.key_size,
                                 batch=args.preload_batch,
                                 val_size=args.val_size, key_space=args.rss_keys)
                sample = sample_proc(target.pids[0]) if target.pids else None
            rss.append(RssResult(
                target=kind, keys=args.rss_keys, val_size=args.val_size, load_s=load_s,
                rss_bytes=sample.rss_bytes if sample else 0,
                rss_peak_bytes=sample.rss_peak_bytes if sample else 0,
                rss_anon_bytes=sample.rss_anon_bytes if sample else 0,
                rss_file_bytes=sample.rss_file_bytes if sample else 0,
                preload_batch=args.preload_batch,
            ))
            print(format_rss(rss[-1]), flush=True)
    scenarios = ScenarioOutcome()
    if args.scenarios:
        scenarios = run_scenarios(args, _targets(args))
    threads = format_threads(results)
    if threads:
        print("\nserver's busiest thread (the serial ceiling):")
        print("\n".join(threads))
    ratios = format_ratios(results) + scenarios.ratios
    if ratios:
        print("\nkvstore / etcd:")
        print("\n".join(ratios))
    targets = check_targets(results, rss) + scenarios.targets
    if targets:
        print("\ntargets:")
        print("\n".join(targets))
    if args.json_path:
        save_json(args.json_path, to_json(results, rss, {
            k: v for k, v in vars(args).items() if k not in ("func",) and _jsonable(v)},
            scenarios=scenarios.records))
    return 0


def _jsonable(v: object) -> bool:
    return v is None or isinstance(v, str | int | float | bool | list | tuple)
