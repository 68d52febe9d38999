"""`kvbench load` against clusters (issue 5): short smoke runs of --nodes 3, failover, catchup.

What is checked is that each piece works end to end and prints sane figures (positive
throughput, connections spread over every member, CPU/RSS summed and maxed over members,
a failover time between the election timeout's lower bound and the issue's 3-timeout
target, a new member holding every key), not the figures themselves: the real runs are
long and are quoted in the issue's closing note. Runs are short so the file stays within
its ~60 s budget; etcd is the oracle for the first two.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bench.cli import main as kvbench_main
from bench.load.driver import LoadPlan, conns_per_endpoint, plan_workers

pytestmark = pytest.mark.slow

needs_etcd = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd binary not installed")


def _run(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, dict]:  # type: ignore[type-arg]
    out_path = tmp_path / "out.json"
    assert kvbench_main(["load", *args, "--json", str(out_path)]) == 0
    return capsys.readouterr().out, json.loads(out_path.read_text())


def test_conns_spread_round_robin_over_endpoints_across_workers() -> None:
    endpoints = ("leader:1", "f1:2", "f2:3")
    plan = LoadPlan(workload="put", conns=10, clients=100, procs=2, duration_s=1, key_size=8,
                    val_size=8, key_space=10, nodes=3)
    specs = plan_workers(plan, endpoints)
    assert [s.conn_offset for s in specs] == [0, 5]
    assert conns_per_endpoint(specs) == [4, 3, 3]
    one = plan_workers(LoadPlan(workload="put", conns=1, clients=1, procs=2, duration_s=1,
                                key_size=8, val_size=8, key_space=10), endpoints)
    assert conns_per_endpoint(one) == [1, 0, 0]  # 1x1 talks to the leader


@needs_etcd
def test_nodes_3_put_spreads_conns_over_members_with_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, saved = _run(["--nodes", "3", "--workload", "put", "--shapes", "1x1,3x6",
                        "--duration", "1", "--compare-etcd"], tmp_path, capsys)
    runs = {(r["target"], r["shape"]): r for r in saved["runs"]}
    assert set(runs) == {(t, s) for t in ("kvstore", "etcd") for s in ("1x1", "3x6")}
    for (_, shape), r in runs.items():
        assert r["nodes"] == 3 and r["errors"] == 0, r["first_error"]
        assert r["throughput"] > 10 and 0 < r["latency"]["p50_ms"] <= r["latency"]["p99_ms"]
        # CPU summed over three members, RSS of the largest: a member is at least a few MiB.
        assert r["cpu_ms_per_op"] is not None and r["cpu_ms_per_op"] > 0
        assert r["rss_peak_bytes"] > 4 << 20
        want = "leader:1 follower1:0 follower2:0" if shape == "1x1" else \
            "leader:1 follower1:1 follower2:1"
        assert r["spread"] == want
    assert re.search(r"^kvstore\s+3 put\s+3x6 .*conns leader:1 follower1:1 follower2:1", text, re.M)
    assert "kvstore / etcd:" in text
    assert re.search(r"^put\s+1x1\s+ops/s \d+\.\d\d", text, re.M)
    assert re.search(r"^(PASS|MISS) put 1x1 \(3 members\) kvstore/etcd = \d", text, re.M)


@needs_etcd
def test_failover_one_round_within_three_election_timeouts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    election_ms = 500
    text, saved = _run(["--scenarios", "failover", "--rounds", "1", "--compare-etcd",
                        "--election-ms", str(election_ms), "--heartbeat-ms", "50"],
                       tmp_path, capsys)
    assert saved["runs"] == []
    records = {r["target"]: r for r in saved["scenarios"]}
    assert set(records) == {"kvstore", "etcd"}
    for r in records.values():
        assert r["scenario"] == "failover" and r["election_ms"] == election_ms
        (rnd,) = r["rounds"]
        # No leader can be elected before one election timeout has passed without
        # heartbeats; 3 timeouts is the target, plus slack for a loaded machine.
        assert 0.8 * election_ms / 1000 <= rnd["failover_s"] <= 3 * election_ms / 1000 + 1.0
        assert rnd["election_s"] is not None and rnd["election_s"] <= rnd["failover_s"] + 0.1
    assert re.search(r"kill -> next acked write: min \d+\.\d{3}s .* election timeouts", text)
    assert re.search(r"^(PASS|MISS) kvstore failover max \d+\.\d{3}s over 1 rounds", text, re.M)
    assert re.search(r"^failover\s+failover p50 s \d+\.\d\d", text, re.M)


def test_catchup_new_member_gets_every_key_through_a_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 6144 single-put entries with --snapshot-count 1000: the leader keeps at most 5,000
    # entries after a snapshot, so the new member cannot start from index 1 of the log.
    text, saved = _run(["--scenarios", "catchup", "--catchup-mib", "1.5", "--catchup-rounds", "2",
                        "--catchup-val-size", "256", "--catchup-batch", "1"], tmp_path, capsys)
    (r,) = saved["scenarios"]
    assert r["target"] == "kvstore" and r["keys"] == 6144 and len(r["rounds"]) == 2
    assert r["target_applied"] > 6144 and r["mib_per_s"] > 0
    for x in r["rounds"]:
        assert x["keys_on_new"] == r["keys"] and 0 < x["catchup_s"] < 60
        assert x["leader_rss_peak_bytes"] >= x["leader_rss_before_bytes"] > 4 << 20
        assert x["new_rss_peak_bytes"] > 4 << 20 and x["new_anon_max_bytes"] > 0
    assert re.search(r"caught up in min \d+\.\d\ds  p50 \d+\.\d\ds  max \d+\.\d\ds over 2 rounds "
                     r"\(\d+\.\d MiB/s at p50\)", text)
    assert len(re.findall(r"round \d: \d+\.\d\ds .*, all keys; peak RSS leader \d+\.\d MiB", text)) == 2
