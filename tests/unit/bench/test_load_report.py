"""bench/load/report.py: kvstore and etcd runs are paired in order, and repeated runs give
median ratios and targets that list every value they came from."""

from __future__ import annotations

from bench.load.driver import RunResult
from bench.load.histogram import Summary
from bench.load.report import check_targets, format_ratios


def _run(target: str, throughput: float, *, conns: int = 1, clients: int = 1) -> RunResult:
    latency = Summary(count=1, mean_ms=1.0, p50_ms=1000 / throughput, p90_ms=1.0, p99_ms=1.0,
                      max_ms=1.0)
    return RunResult(target=target, workload="put", conns=conns, clients=clients, procs=1,
                     duration_s=1.0, ops=int(throughput), errors=0, throughput=throughput,
                     latency=latency)


def test_one_pair_reads_as_before() -> None:
    results = [_run("kvstore", 700), _run("etcd", 1000)]
    assert check_targets(results, []) == ["PASS put 1x1 kvstore/etcd = 0.70 (target >= 0.7)"]
    assert format_ratios(results)[0].startswith("put                 1x1        ops/s 0.70")


def test_repeats_pair_in_order_and_judge_the_median() -> None:
    # Pairs: 600/1000, 900/1000, 700/1400 -> 0.60, 0.90, 0.50: the median is 0.60, a MISS,
    # although the pooled throughputs (2200 vs 3400 = 0.65) and the best pair (0.90) differ.
    results = [_run("kvstore", 600), _run("etcd", 1000), _run("kvstore", 900),
               _run("etcd", 1000), _run("kvstore", 700), _run("etcd", 1400)]
    line = check_targets(results, [])[0]
    assert line == ("MISS put 1x1 kvstore/etcd = 0.60 (median of 3: 0.60 0.90 0.50) "
                    "(target >= 0.7)")
    ratios = format_ratios(results)[0]
    assert "ops/s 0.60" in ratios and "(medians of 3 pairs)" in ratios


def test_put_10x100_target_is_the_median_of_the_kvstore_runs() -> None:
    results = [_run("kvstore", 1900, conns=10, clients=100),
               _run("kvstore", 2100, conns=10, clients=100),
               _run("kvstore", 2500, conns=10, clients=100)]
    assert check_targets(results, []) == [
        "PASS put 10x100 kvstore = 2100 puts/s (median of 3: 1900 2100 2500) (target >= 2000)"]
