"""Formatting of results: the per-run table, kvstore/etcd ratios, the issue's targets, JSON.

Ratios are kvstore / etcd for the same workload and shape, for every metric: above 1 is
better for throughput and worse for latency, CPU per op and RSS. The targets are those of
issues 4 (one member) and 5 (a cluster: put 10x100 >= 800 puts/s) and are checked only when
the run contains the data they need. A cluster run's "conns" note says how many connections
went to the leader and to each follower.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.load.driver import RunResult

MIB = 1024 * 1024
PUT_1X1_RATIO_MIN = 0.7
PUT_10X100_MIN = 2000.0
PUT_10X100_CLUSTER_MIN = 800.0
WATCH_P50_MAX_MS = 50.0
RSS_MAX_MIB = 300.0
CLIENT_BUSY_WARN = 0.85
CLIENT_BUSY_NOTE = 0.5


@dataclass(frozen=True, slots=True)
class RssResult:
    target: str
    keys: int
    val_size: int
    load_s: float
    rss_bytes: int
    rss_peak_bytes: int
    rss_anon_bytes: int = 0
    rss_file_bytes: int = 0
    preload_batch: int = 0


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / MIB:.1f}"


def _f(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def watch_delivery(r: RunResult) -> tuple[int, int, bool]:
    """(delivered, expected, full) for a watch run."""
    expected = r.counters.get("puts", 0) * r.counters.get("watchers", 0)
    full = (r.ops == expected and expected > 0
            and r.counters.get("complete_watchers", 0) == r.counters.get("watchers", -1))
    return r.ops, expected, full


def notes(r: RunResult) -> str:
    c = r.counters
    parts = []
    if r.workload == "watch":
        delivered, expected, full = watch_delivery(r)
        parts.append(f"delivered {delivered}/{expected} ({'full' if full else 'NOT full'}), "
                     f"{c.get('puts', 0) / r.duration_s:.0f} puts/s, "
                     f"{c.get('complete_watchers', 0)}/{c.get('watchers', 0)} watchers complete")
    if r.workload == "txn-cas":
        parts.append(f"cas ok {c.get('succeeded', 0)} failed {c.get('failed', 0)}, "
                     f"{c.get('initial_reads', 0)} ops also read the key first")
    if r.workload == "lease":
        parts.append(f"cycles {c.get('cycles', 0)}; " + " ".join(
            f"{k} p50 {s.p50_ms:.2f}ms" for k, s in r.sub_latency.items()))
    if r.client_busy >= CLIENT_BUSY_WARN:
        parts.append(f"CLIENT-BOUND: a load process used {r.client_busy:.0%} of a core")
    elif r.client_busy >= CLIENT_BUSY_NOTE:
        parts.append(f"busiest load process {r.client_busy:.0%} of a core")
    if r.spread:
        parts.append(f"conns {r.spread}")
    if r.errors:
        parts.append(f"first error: {r.first_error}")
    return "; ".join(parts)


HEADER = (f"{'target':<9} {'nodes':>5} {'workload':<19} {'shape':<10} {'procs':>5} {'ops/s':>10} "
          f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6} "
          f"{'cpu ms/op':>9} {'peak MiB':>8}  notes")


def format_run(r: RunResult) -> str:
    s = r.latency
    return (f"{r.target:<9} {r.nodes:>5} {r.workload:<19} {r.shape:<10} {r.procs:>5} "
            f"{r.throughput:>10.1f} "
            f"{s.p50_ms:>8.2f} {s.p90_ms:>8.2f} {s.p99_ms:>8.2f} {s.max_ms:>8.1f} {r.errors:>6} "
            f"{_f(r.cpu_ms_per_op, '.3f'):>9} {_mib(r.rss_peak_bytes):>8}  {notes(r)}")


def format_threads(results: list[RunResult]) -> list[str]:
    """Per run: the server's busiest thread, CPU ms per op and the ceiling it implies."""
    return [
        f"{r.target:<9} {r.nodes}n {r.workload:<19} {r.shape:<10} busiest thread {r.thread_ms_per_op:.3f} "
        f"ms/op -> <= {r.thread_ceiling_ops:.0f} ops/s with a free core"
        for r in results if r.thread_ms_per_op is not None and r.thread_ceiling_ops is not None
    ]


def _pairs(results: list[RunResult], key: Callable[[RunResult], tuple[Any, ...]]
           ) -> dict[tuple[Any, ...], list[tuple[RunResult, RunResult]]]:
    """kvstore and etcd runs of the same load, paired in run order (with --repeat N, pair i
    is the i-th run of each, taken back to back)."""
    runs: dict[tuple[str, tuple[Any, ...]], list[RunResult]] = {}
    for r in results:
        runs.setdefault((r.target, key(r)), []).append(r)
    return {
        k: list(zip(ks, runs[("etcd", k)], strict=False))
        for (target, k), ks in runs.items()
        if target == "kvstore" and ("etcd", k) in runs
    }


def _median_ratio(pairs: list[tuple[RunResult, RunResult]],
                  metric: Callable[[RunResult], float | None]) -> str:
    ratios = [a / b for a, b in ((metric(k), metric(e)) for k, e in pairs)
              if a is not None and b is not None and b != 0]
    return f"{statistics.median(ratios):.2f}" if ratios else "-"


def format_ratios(results: list[RunResult]) -> list[str]:
    lines = []
    for (_nodes, workload, shape), pairs in _pairs(
            results, lambda r: (r.nodes, r.workload, r.shape)).items():
        line = (
            f"{workload:<19} {shape:<10} "
            f"ops/s {_median_ratio(pairs, lambda r: r.throughput)}  "
            f"p50 {_median_ratio(pairs, lambda r: r.latency.p50_ms)}  "
            f"p90 {_median_ratio(pairs, lambda r: r.latency.p90_ms)}  "
            f"p99 {_median_ratio(pairs, lambda r: r.latency.p99_ms)}  "
            f"cpu/op {_median_ratio(pairs, lambda r: r.cpu_ms_per_op)}  "
            f"peak RSS {_median_ratio(pairs, lambda r: r.rss_peak_bytes)}"
        )
        if len(pairs) > 1:
            line += f"  (medians of {len(pairs)} pairs)"
        lines.append(line)
    return lines


def format_rss(r: RssResult) -> str:
    return (f"{r.target:<9} {r.keys} keys x {r.val_size} B loaded in {r.load_s:.1f}s "
            f"({r.preload_batch} puts/txn): "
            f"RSS {_mib(r.rss_bytes)} MiB (anon {_mib(r.rss_anon_bytes)}, "
            f"file-backed {_mib(r.rss_file_bytes)}), peak {_mib(r.rss_peak_bytes)} MiB")


def _of_runs(values: list[float], fmt: str = ".2f") -> str:
    """For repeated runs: which median this is, and every value it was taken from."""
    if len(values) < 2:
        return ""
    return f" (median of {len(values)}: {' '.join(format(v, fmt) for v in values)})"


def check_targets(results: list[RunResult], rss: list[RssResult]) -> list[str]:
    """The issue's targets that this run has the data for, each PASS or MISS."""
    lines = []
    pairs = _pairs(results, lambda r: (r.nodes, r.workload, r.conns, r.clients))
    for nodes in sorted({r.nodes for r in results}):
        where = "" if nodes == 1 else f" ({nodes} members)"
        ratios = [k.throughput / e.throughput
                  for k, e in pairs.get((nodes, "put", 1, 1), []) if e.throughput > 0]
        if ratios:
            ratio = statistics.median(ratios)
            ok = ratio >= PUT_1X1_RATIO_MIN
            lines.append(f"{'PASS' if ok else 'MISS'} put 1x1{where} kvstore/etcd = {ratio:.2f}"
                         f"{_of_runs(ratios)} (target >= {PUT_1X1_RATIO_MIN})")
        k10 = [r.throughput for r in results
               if (r.target, r.nodes, r.workload, r.conns, r.clients)
               == ("kvstore", nodes, "put", 10, 100)]
        if k10:
            floor = PUT_10X100_MIN if nodes == 1 else PUT_10X100_CLUSTER_MIN
            rate = statistics.median(k10)
            ok = rate >= floor
            lines.append(f"{'PASS' if ok else 'MISS'} put 10x100{where} kvstore = "
                         f"{rate:.0f} puts/s{_of_runs(k10, '.0f')} (target >= {floor:.0f})")
    for r in results:
        if r.target == "kvstore" and r.workload == "watch":
            _, _, full = watch_delivery(r)
            ok = full and r.latency.p50_ms <= WATCH_P50_MAX_MS
            lines.append(
                f"{'PASS' if ok else 'MISS'} watch {r.counters.get('watchers', 0)} watchers x "
                f"{r.counters.get('puts', 0) / r.duration_s:.0f} puts/s: "
                f"{'full' if full else 'NOT full'}, p50 {r.latency.p50_ms:.1f} ms "
                f"(target: full, p50 <= {WATCH_P50_MAX_MS:.0f} ms)")
    for x in rss:
        if x.target == "kvstore":
            mib = x.rss_peak_bytes / MIB
            ok = mib <= RSS_MAX_MIB
            lines.append(f"{'PASS' if ok else 'MISS'} RSS with {x.keys} keys x {x.val_size} B = "
                         f"{mib:.0f} MiB peak (target <= {RSS_MAX_MIB:.0f} MiB)")
    return lines


def to_json(
    results: list[RunResult], rss: list[RssResult], args: dict[str, Any],
    scenarios: list[dict[str, Any]] | None = None,
) -> str:
    return json.dumps({
        "args": args,
        "runs": [asdict(r) | {"shape": r.shape} for r in results],
        "rss": [asdict(x) for x in rss],
        "scenarios": scenarios or [],
        "targets": check_targets(results, rss),
    }, indent=2)


def save_json(path: str, text: str) -> None:
    Path(path).write_text(text + "\n")
