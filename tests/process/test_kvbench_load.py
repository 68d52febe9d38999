"""`kvbench load` smoke test: every workload, short runs, against real etcd and kvstore.

The runs are short (0.8-1 s each) so the whole file stays within its ~40 s budget;
what is checked is that the load generator works end to end (worker processes, merge,
/proc sampling, report, JSON), not the figures themselves. The histogram is checked
against exact percentiles of sorted samples.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bench.cli import main as kvbench_main
from bench.load.cluster import BenchServer
from bench.load.driver import LoadPlan, RunResult, plan_workers, preload, run_load
from bench.load.histogram import Histogram, bucket_of
from bench.load.report import watch_delivery
from bench.load.workloads import NEEDS_KEYS, WORKLOADS

pytestmark = pytest.mark.slow

needs_etcd = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd binary not installed")
TARGETS = [pytest.param("etcd", marks=needs_etcd, id="etcd"), pytest.param("kvstore", id="kvstore")]
KEY_SPACE = 200


@pytest.fixture(scope="module", params=TARGETS)
def server(request: pytest.FixtureRequest) -> Iterator[BenchServer]:
    with BenchServer(request.param) as s:
        preload(s.endpoint, count=KEY_SPACE, key_size=8, val_size=64, key_space=KEY_SPACE)
        yield s


def _plan(workload: str) -> LoadPlan:
    return LoadPlan(
        workload=workload, conns=2, clients=4, procs=2, duration_s=0.8, key_size=8,
        val_size=64, key_space=KEY_SPACE, watchers=20, watch_streams=2, watch_rate=50.0,
        drain_s=5.0,
    )


@pytest.mark.parametrize("workload", WORKLOADS)
def test_workload_reports_throughput_latency_cpu_and_rss(server: BenchServer, workload: str) -> None:
    result = run_load(_plan(workload), (server.endpoint,), target=server.kind, server_pid=server.pid)
    assert isinstance(result, RunResult)
    assert result.errors == 0, result.first_error
    assert result.procs == 2
    assert result.ops > 0 and result.throughput > 0
    assert 0 < result.latency.p50_ms <= result.latency.p90_ms <= result.latency.p99_ms
    assert result.latency.p99_ms <= result.latency.max_ms * 1.0001
    assert result.server_cpu_s is not None and result.server_cpu_s >= 0
    assert result.cpu_ms_per_op is not None
    assert result.rss_peak_bytes is not None and result.rss_peak_bytes > 1 << 20
    if result.thread_ms_per_op is not None:  # None only if no thread got a CPU tick
        assert result.thread_ceiling_ops is not None and result.thread_ceiling_ops > 0
        assert result.thread_ms_per_op <= result.cpu_ms_per_op + 1e-9
    if workload == "watch":
        delivered, expected, full = watch_delivery(result)
        assert result.counters["puts"] >= 30  # 50 puts/s for 0.8 s, give or take the pacing
        assert full, (delivered, expected, result.counters)
    if workload == "txn-cas":
        assert result.counters["succeeded"] > 0
    if workload == "lease":
        assert set(result.sub_latency) == {"grant", "keepalive", "revoke"}
        assert result.ops == 3 * result.counters["cycles"]
        assert result.counters.get("keepalive_failed", 0) == 0


def test_watch_with_go_receiver_delivers_in_full(server: BenchServer) -> None:
    """The Go receiver (etcd's clientv3) holds every watcher; Python worker 0 only puts."""
    plan = replace(_plan("watch"), watch_client="go", watchers=40, watch_streams=4)
    result = run_load(plan, (server.endpoint,), target=server.kind, server_pid=server.pid)
    assert result.errors == 0, result.first_error
    assert result.procs == 2
    delivered, expected, full = watch_delivery(result)
    assert full and delivered == expected == result.counters["puts"] * 40, result.counters
    assert result.counters["watch_streams"] == 4
    assert 0 < result.latency.p50_ms <= result.latency.max_ms < 5000


@needs_etcd
def test_cli_compare_etcd_prints_both_targets_ratios_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "load.json"
    code = kvbench_main([
        "load", "--workload", "put", "--duration", "1", "--shapes", "1x1",
        "--compare-etcd", "--json", str(out_path),
    ])
    assert code == 0
    text = capsys.readouterr().out
    assert "kvstore / etcd:" in text and "targets:" in text
    saved = json.loads(out_path.read_text())
    runs = {(r["target"], r["shape"]): r for r in saved["runs"]}
    assert set(runs) == {("kvstore", "1x1"), ("etcd", "1x1")}
    for run in runs.values():
        assert run["throughput"] > 0 and run["errors"] == 0
        assert run["latency"]["p50_ms"] > 0 and run["rss_peak_bytes"] > 0
        assert run["cpu_ms_per_op"] is not None
    assert any(line.startswith(("PASS put 1x1", "MISS put 1x1")) for line in saved["targets"])


def test_needs_keys_are_read_workloads() -> None:
    assert set(NEEDS_KEYS) <= set(WORKLOADS)


def test_plan_splits_clients_and_watchers_over_processes() -> None:
    specs = plan_workers(LoadPlan(
        workload="put", conns=10, clients=100, procs=3, duration_s=1, key_size=8, val_size=8,
        key_space=10), ("a:1",))
    assert [s.clients for s in specs] == [34, 33, 33] and [s.conns for s in specs] == [4, 3, 3]
    assert len({s.seed for s in specs}) == 3
    specs = plan_workers(LoadPlan(
        workload="put", conns=1, clients=1, procs=8, duration_s=1, key_size=8, val_size=8,
        key_space=10), ("a:1",))
    assert len(specs) == 1
    specs = plan_workers(LoadPlan(
        workload="watch", conns=2, clients=0, procs=2, duration_s=1, key_size=8, val_size=8,
        key_space=10, watchers=1001, watch_streams=10), ("a:1",))
    assert [s.watchers for s in specs] == [501, 500] and [s.putter for s in specs] == [True, False]


def test_go_watch_plan_is_a_putter_and_one_receiver() -> None:
    specs = plan_workers(LoadPlan(
        workload="watch", conns=3, clients=0, procs=2, duration_s=1, key_size=8, val_size=8,
        key_space=10, watchers=1000, watch_streams=10, watch_client="go"), ("a:1",))
    assert [(s.runner, s.putter, s.watchers, s.watch_streams, s.conns) for s in specs] == [
        ("python", True, 0, 0, 1), ("go", False, 1000, 10, 3)]


def test_histogram_percentiles_within_bucket_precision() -> None:
    rng = random.Random(7)
    samples = [int(rng.lognormvariate(7, 1.5)) for _ in range(20000)]
    h = Histogram()
    for v in samples:
        h.record(v)
    samples.sort()
    for q in (0.5, 0.9, 0.99, 0.999):
        exact = samples[max(0, int(q * len(samples) + 0.999999) - 1)]
        got = h.percentile_us(q)
        assert got == bucket_of(exact), (q, exact, got)
        assert exact - got <= exact / 64
    assert h.max_us == samples[-1] and h.total == len(samples)


def test_histogram_merge_and_json_round_trip() -> None:
    a, b, both = Histogram(), Histogram(), Histogram()
    for i in range(1, 5000, 7):
        (a if i % 2 else b).record(i * 13)
        both.record(i * 13)
    merged = Histogram.merged([Histogram.from_json(json.loads(json.dumps(a.to_json()))), b])
    assert merged.counts == both.counts and merged.total == both.total
    assert merged.summary() == both.summary()
    assert Histogram().summary().count == 0 and Histogram().percentile_us(0.5) == 0
