"""`kvbench sim`: the deterministic Raft simulator (raft/testing/sim.py) over many seeds.

Each seed runs a safety phase under faults, then a liveness phase (see the simulator's
docstring). Seeds are independent, so `--jobs N` spreads them over N worker processes; the
result of a seed does not depend on which worker ran it. The last line is always
`sim: N seeds, V violations`, and the exit status is non-zero when V > 0. Every failing
seed is printed as `SEED=<n> ...`; replay one with `kvbench sim --start-seed n --seeds 1
--verbose`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator

from raft.testing.sim import FAULT_MIXES, MUTATIONS, SimConfig, SimResult, run_seed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=100, help="number of seeds to run")
    parser.add_argument("--nodes", type=int, choices=(3, 5), default=3, help="cluster size")
    parser.add_argument("--start-seed", type=int, default=0, help="first seed")
    parser.add_argument("--steps", type=int, default=SimConfig().steps,
                        help="steps of the safety phase per seed")
    parser.add_argument("--liveness-ticks", type=int, default=SimConfig().liveness_ticks,
                        help="ticks allowed for the liveness phase to converge")
    parser.add_argument("--mix", choices=sorted(FAULT_MIXES), default=None,
                        help="fault mix for every seed (default: drawn from each seed)")
    parser.add_argument("--mutation", choices=sorted(MUTATIONS), default=None,
                        help="break the simulated node on purpose; the run must then fail")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes (default: 2, or 1 on a single core)")
    parser.add_argument("--verbose", action="store_true",
                        help="print every seed with its stats and trace hash")


def _run_one(job: tuple[int, SimConfig]) -> SimResult:
    seed, config = job
    return run_seed(seed, config)


def _results(jobs: list[tuple[int, SimConfig]], workers: int) -> Iterator[SimResult]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_run_one, jobs)
        return
    # fork keeps start-up cheap; seeds are independent so the order of completion is
    # irrelevant to the results (imap keeps the seed order for the printout anyway).
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        yield from pool.imap(_run_one, jobs, chunksize=4)


def run(args: argparse.Namespace) -> int:
    config = SimConfig(nodes=args.nodes, steps=args.steps, liveness_ticks=args.liveness_ticks,
                       mix=args.mix, mutation=args.mutation)
    seeds = range(args.start_seed, args.start_seed + args.seeds)
    jobs = [(seed, config) for seed in seeds]
    started = time.monotonic()
    failures: list[SimResult] = []
    totals: Counter[str] = Counter()
    mixes: Counter[str] = Counter()
    done = 0
    progress_every = max(1, args.seeds // 10)
    for result in _results(jobs, args.jobs):
        done += 1
        totals.update(result.stats)
        mixes[result.mix] += 1
        if not result.ok:
            failures.append(result)
            print(result.describe(), flush=True)
        elif args.verbose:
            print(f"{result.describe()} trace={result.trace_hash} {result.stats}", flush=True)
        if done % progress_every == 0 and not args.verbose:
            print(f"  {done}/{args.seeds} seeds, {len(failures)} violations, "
                  f"{time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - started
    mutation = f" mutation={args.mutation}" if args.mutation else ""
    print(f"nodes={args.nodes} steps={args.steps}{mutation} jobs={args.jobs} {elapsed:.1f}s; mixes: "
          + ", ".join(f"{k}={v}" for k, v in sorted(mixes.items())))
    print("totals: " + ", ".join(f"{k}={v}" for k, v in sorted(totals.items())))
    if failures:
        print("failing seeds: " + " ".join(str(r.seed) for r in failures))
        kinds = Counter((r.violation or "").split(":", 1)[0] for r in failures)
        print("by kind: " + ", ".join(f"{k}={v}" for k, v in kinds.most_common()))
    print(f"sim: {done} seeds, {len(failures)} violations")
    return 1 if failures else 0
