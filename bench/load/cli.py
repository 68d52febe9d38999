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
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bench.load.cluster import BenchServer, etcd_binary, sample_proc
from bench.load.driver import LoadPlan, RunResult, preload, run_load
from bench.load.errors import LoadError
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
from bench.load.workloads import NEEDS_KEYS, WORKLOADS


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
    a("--key-size", type=int, default=8, help="key bytes")
    a("--val-size", type=int, default=256, help="value bytes")
    a("--key-space", type=int, default=10000, help="distinct keys the load touches")
    a("--preload", type=int, default=0,
      help="put this many keys before measuring (range and txn-cas always preload --key-space)")
    a("--preload-val-size", type=int, default=None, help="value bytes of preloaded keys")
    a("--watchers", type=int, default=1000, help="watch: watchers in total")
    a("--watch-streams", type=int, default=10, help="watch: gRPC watch streams in total")
    a("--watch-rate", type=float, default=100.0, help="watch: puts per second")
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
    a("--seed", type=int, default=1)
    a("--json", dest="json_path", default=None, help="also save all results as JSON here")


@contextmanager
def _target(kind: str, args: argparse.Namespace) -> Iterator[tuple[tuple[str, ...], int | None]]:
    """(endpoints, server pid) of a fresh server, or of the running ones given."""
    if args.endpoints:
        pids = args.server_pid or [None]
        yield tuple(e.strip() for e in args.endpoints.split(",") if e.strip()), pids[0]
        return
    with BenchServer(kind, extra_args=tuple(args.server_arg or ())) as server:
        yield (server.endpoint,), server.pid


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


def _run(args: argparse.Namespace) -> int:
    if args.compare_etcd and not args.endpoints and etcd_binary() is None:
        print("kvbench load: --compare-etcd needs the etcd binary on PATH", file=sys.stderr)
        return 2
    workloads = args.workload if args.workload is not None else ([] if args.rss_keys else ["put"])
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
            )
            for kind in _targets(args):
                with _target(kind, args) as (endpoints, pid):
                    count = max(args.preload, args.key_space if workload in NEEDS_KEYS else 0)
                    if count:
                        preload(endpoints[0], count=count, key_size=args.key_size,
                                batch=args.preload_batch,
                                val_size=args.preload_val_size or args.val_size,
                                key_space=max(args.key_space, count))
                    result = run_load(plan, endpoints, target=kind, server_pid=pid)
                results.append(result)
                print(format_run(result), flush=True)
    if args.rss_keys:
        for kind in _targets(args):
            with _target(kind, args) as (endpoints, pid):
                load_s = preload(endpoints[0], count=args.rss_keys, key_size=args.key_size,
                                 batch=args.preload_batch,
                                 val_size=args.val_size, key_space=args.rss_keys)
                sample = sample_proc(pid) if pid is not None else None
            rss.append(RssResult(
                target=kind, keys=args.rss_keys, val_size=args.val_size, load_s=load_s,
                rss_bytes=sample.rss_bytes if sample else 0,
                rss_peak_bytes=sample.rss_peak_bytes if sample else 0,
                rss_anon_bytes=sample.rss_anon_bytes if sample else 0,
                rss_file_bytes=sample.rss_file_bytes if sample else 0,
                preload_batch=args.preload_batch,
            ))
            print(format_rss(rss[-1]), flush=True)
    threads = format_threads(results)
    if threads:
        print("\nserver's busiest thread (the serial ceiling):")
        print("\n".join(threads))
    ratios = format_ratios(results)
    if ratios:
        print("\nkvstore / etcd:")
        print("\n".join(ratios))
    targets = check_targets(results, rss)
    if targets:
        print("\ntargets:")
        print("\n".join(targets))
    if args.json_path:
        save_json(args.json_path, to_json(results, rss, {
            k: v for k, v in vars(args).items() if k not in ("func",) and _jsonable(v)}))
    return 0


def _jsonable(v: object) -> bool:
    return v is None or isinstance(v, str | int | float | bool | list | tuple)
