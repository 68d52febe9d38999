"""`kvbench raft`: throughput of the Raft core alone, 3 in-process RawNodes, no I/O.

The "network" hands every message to its receiver at once and the "disk" is the node's
MemoryStorage, so what is measured is the core's own cost per committed entry: proposing,
building Ready values, appending to the log, MsgApp/MsgAppResp round trips, commit
computation and handing out committed entries. Each Ready is handled in the contract's order
(raft/ready.py): persist, send, apply, advance.

Three cases, each run for `--seconds`:
- *batched*: `--batch` proposals (one `propose()` call each) go in before the nodes handle
  their Readies, so one Ready carries many entries (as the server does under load);
- *propose-batch*: the same, but the batch goes in with ONE `RawNode.propose_batch()` call,
  which pays the per-proposal path once per batch;
- *single*: one proposal per cycle, driven until it is committed on the leader (the
  latency-bound worst case).

`--profile` runs each case once more under cProfile and prints the hottest functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import time
from collections import deque
from dataclasses import dataclass

from raft.raw_node import RawNode
from raft.storage import MemoryStorage
from raft.types import (
    Config,
    ConfState,
    HardState,
    Message,
    Snapshot,
    SnapshotMetadata,
    StateType,
)

CASES = ["batched", "propose-batch", "single"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each case")
    parser.add_argument("--payload-bytes", type=int, default=128, help="bytes per proposal")
    parser.add_argument("--batch", type=int, default=1000, help="proposals per cycle (batched)")
    parser.add_argument("--only", choices=CASES, help="run one case")
    parser.add_argument("--profile", action="store_true",
                        help="also run each case under cProfile and print the hot spots")


class Cluster:
    """Three RawNodes wired by an instant, lossless network."""

    def __init__(self, size: int = 3) -> None:
        voters = tuple(range(1, size + 1))
        self.storages: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, RawNode] = {}
        for i in voters:
            disk = self.storages[i] = MemoryStorage()
            disk.apply_snapshot(Snapshot(SnapshotMetadata(1, 1, ConfState(voters=voters))))
            disk.set_hard_state(HardState(term=1, commit=1))
            config = Config(id=i, rng=random.Random(i), max_inflight_msgs=4096,
                            max_size_per_msg_bytes=16 * 1024 * 1024)
            self.nodes[i] = RawNode(config, disk)
        self.inbox: deque[Message] = deque()
        self.applied = 0  # entries applied on the leader

    def handle_readies(self) -> bool:
        """One Ready per node with work; returns whether any node had one."""
        busy = False
        for i, raw in self.nodes.items():
            if not raw.has_ready():
                continue
            busy = True
            rd = raw.ready()
            disk = self.storages[i]
            if rd.snapshot is not None:
                disk.apply_snapshot(rd.snapshot)
            if rd.entries:
                disk.append(rd.entries)
            if rd.hard_state is not None:
                disk.set_hard_state(rd.hard_state)
            self.inbox.extend(rd.messages)
            if i == 1:
                self.applied += len(rd.committed_entries)
            raw.advance(rd)
        return busy

    def stabilize(self) -> None:
        while True:
            busy = self.handle_readies()
            if not self.inbox and not busy:
                return
            while self.inbox:
                m = self.inbox.popleft()
                self.nodes[m.to].step(m)

    def elect(self) -> None:
        self.nodes[1].campaign()
        self.stabilize()
        if self.nodes[1].status().soft_state.raft_state is not StateType.LEADER:
            raise RuntimeError("node 1 did not become leader")
        self.applied = 0


@dataclass(frozen=True, slots=True)
class Row:
    case: str
    per_cycle: int
    entries: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.entries / self.seconds if self.seconds else 0.0


def bench_case(case: str, *, seconds: float, payload_bytes: int, batch: int) -> Row:
    cluster = Cluster()
    cluster.elect()
    leader = cluster.nodes[1]
    payload = b"x" * payload_bytes
    per_cycle = 1 if case == "single" else batch
    datas = [payload] * per_cycle
    proposed = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        if case == "propose-batch":
            leader.propose_batch(datas)
        else:
            for _ in range(per_cycle):
                leader.propose(payload)
        proposed += per_cycle
        cluster.stabilize()
    elapsed = time.perf_counter() - started
    if cluster.applied != proposed:
        raise RuntimeError(f"{case}: applied {cluster.applied} of {proposed} proposals")
    return Row(case, per_cycle, cluster.applied, elapsed)


def format_rows(rows: list[Row], payload_bytes: int) -> str:
    lines = [f"kvbench raft: 3 in-process RawNodes, instant network, MemoryStorage, "
             f"payload {payload_bytes} B",
             f"{'case':<12} {'props/cycle':>11} {'entries':>10} {'seconds':>8} "
             f"{'entries/s':>11} {'us/entry':>9}"]
    for r in rows:
        us = 1e6 * r.seconds / r.entries if r.entries else 0.0
        lines.append(f"{r.case:<12} {r.per_cycle:>11} {r.entries:>10} {r.seconds:>8.2f} "
                     f"{r.per_second:>11,.0f} {us:>9.2f}")
    return "\n".join(lines)


def profile_case(case: str, *, payload_bytes: int, batch: int, top: int = 25) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    bench_case(case, seconds=1.0, payload_bytes=payload_bytes, batch=batch)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def run(args: argparse.Namespace) -> int:
    cases = [args.only] if args.only else CASES
    rows = [bench_case(c, seconds=args.seconds, payload_bytes=args.payload_bytes,
                       batch=args.batch) for c in cases]
    print(format_rows(rows, args.payload_bytes))
    if args.profile:
        for c in cases:
            print(f"\n--- cProfile, case {c} (sorted by own time) ---")
            print(profile_case(c, payload_bytes=args.payload_bytes, batch=args.batch))
    return 0
