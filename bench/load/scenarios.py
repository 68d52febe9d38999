"""The cluster scenarios of `kvbench load --scenarios`: their arguments and their run loop.

Each scenario runs once per target kind (kvstore, then etcd with --compare-etcd) on a fresh
cluster of max(3, --nodes) members with the same flags, prints its report as soon as it has
one, and returns its PASS/MISS lines for the targets section and a JSON-able record.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.load.catchup import format_catchup, run_catchup
from bench.load.failover import check_failover, format_failover, run_failover

SCENARIOS = ("failover", "catchup")
SCENARIO_NODES_MIN = 3


def add_scenario_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--rounds", type=int, default=5, help="failover: leader kills (one per round)")
    a("--catchup-mib", type=float, default=100.0, help="catchup: MiB of values to fill")
    a("--catchup-val-size", type=int, default=1024, help="catchup: value bytes per key")
    a("--catchup-batch", type=int, default=8,
      help="catchup: puts per Txn while filling (fewer: more raft entries)")
    a("--catchup-inflight", type=int, default=32, help="catchup: Txns in flight while filling")
    a("--catchup-snapshot-count", type=int, default=1000,
      help="catchup: --snapshot-count of the servers (small, so the leader compacts its log)")
    a("--catchup-rounds", type=int, default=3,
      help="catchup: new members added one after another to the same filled cluster")
    a("--catchup-voter", action="store_true",
      help="catchup: add the new member as a voter (default: as a learner)")


@dataclass
class ScenarioOutcome:
    targets: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    ratios: list[str] = field(default_factory=list)


def run_scenarios(args: argparse.Namespace, kinds: list[str]) -> ScenarioOutcome:
    nodes = max(SCENARIO_NODES_MIN, args.nodes)
    extra = tuple(args.server_arg or ())
    out = ScenarioOutcome()
    for scenario in args.scenarios:
        print(f"\n{scenario}:", flush=True)
        by_kind: dict[str, float] = {}
        for kind in kinds:
            if scenario == "failover":
                f = run_failover(kind, nodes=nodes, rounds=args.rounds,
                                 heartbeat_ms=args.heartbeat_ms, election_ms=args.election_ms,
                                 extra_args=extra)
                print("\n".join(format_failover(f)), flush=True)
                out.targets.append(check_failover(f))
                by_kind[kind] = f.failover_stats()[1]
                out.records.append({"scenario": scenario, **asdict(f)})
            else:
                c = run_catchup(kind, nodes=nodes, mib=args.catchup_mib,
                                val_size=args.catchup_val_size, batch=args.catchup_batch,
                                inflight=args.catchup_inflight,
                                snapshot_count=args.catchup_snapshot_count,
                                learner=not args.catchup_voter, rounds=args.catchup_rounds,
                                heartbeat_ms=args.heartbeat_ms,
                                election_ms=args.election_ms, extra_args=extra)
                print("\n".join(format_catchup(c)), flush=True)
                out.records.append({"scenario": scenario, **asdict(c),
                                    "data_mib": c.data_mib, "mib_per_s": c.mib_per_s})
                by_kind[kind] = c.catchup_stats()[1]
        if "kvstore" in by_kind and by_kind.get("etcd"):
            what = "failover p50 s" if scenario == "failover" else "catch-up p50 s"
            out.ratios.append(f"{scenario:<19} {'':<10} {what} "
                              f"{by_kind['kvstore'] / by_kind['etcd']:.2f}")
    return out
