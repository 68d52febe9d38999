"""Bugs the simulator found, each pinned twice: by its seed, and by a minimal hand-driven case.

The seed tests name the seed that first showed the bug (`SEED=<n>` in `kvbench sim`); they
are kept even after the fix because a seed that once failed exercises a rare path. A seed
replays the same trace only for the same core and simulator code, so once either changes
the hand-driven case is the one that still pins the bug.
"""

from __future__ import annotations

import random

from raft.raw_node import RawNode
from raft.storage import MemoryStorage
from raft.testing.sim import SimConfig, run_seed
from raft.types import (
    Config,
    ConfState,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)


def _cluster(n: int, **cfg: object) -> tuple[dict[int, RawNode], dict[int, MemoryStorage]]:
    voters = tuple(range(1, n + 1))
    nodes, storages = {}, {}
    for i in voters:
        disk = storages[i] = MemoryStorage()
        disk.apply_snapshot(Snapshot(SnapshotMetadata(1, 1, ConfState(voters=voters))))
        disk.set_hard_state(HardState(term=1, commit=1))
        config = Config(id=i, rng=random.Random(i), **cfg)  # type: ignore[arg-type]
        nodes[i] = RawNode(config, disk)
    return nodes, storages


def _round(nodes: dict[int, RawNode], storages: dict[int, MemoryStorage],
           drop: set[tuple[int, int, MessageType]] | None = None) -> list[Message]:
    """Handle one Ready per node (persist, apply, advance) and deliver every message once."""
    out: list[Message] = []
    for i, raw in nodes.items():
        if not raw.has_ready():
            continue
        rd = raw.ready()
        if rd.snapshot is not None:
            storages[i].apply_snapshot(rd.snapshot)
        storages[i].append(rd.entries)
        if rd.hard_state is not None:
            storages[i].set_hard_state(rd.hard_state)
        out += rd.messages
        raw.advance(rd)
    for m in out:
        if drop and (m.from_, m.to, m.type) in drop:
            drop.discard((m.from_, m.to, m.type))
            continue
        nodes[m.to].step(m)
    return out


def test_lost_msgapp_with_full_inflights_recovers_on_heartbeat() -> None:
    """With max_inflight_msgs=1, one lost MsgApp filled the follower's inflight window for
    good: the heartbeat response did not free it, so the follower never caught up and, with
    the other follower also behind, commit stopped forever (kvbench sim SEED=1, 3 nodes)."""
    nodes, storages = _cluster(3, max_inflight_msgs=1)
    nodes[1].campaign()
    for _ in range(10):
        _round(nodes, storages)
    assert nodes[1].status().soft_state.lead == 1
    nodes[1].propose(b"x")
    _round(nodes, storages, drop={(1, 2, MessageType.APP)})
    for _ in range(30):  # a perfect network from now on, heartbeats every tick
        nodes[1].tick()
        _round(nodes, storages)
    last = storages[1].last_index()
    assert nodes[1].status().progress[2].match == last, nodes[1].status().progress[2]


def test_seed_1_three_nodes_converges() -> None:
    result = run_seed(1, SimConfig(nodes=3))
    assert result.ok, result.describe()


def test_restart_after_crash_between_snapshot_and_hard_state() -> None:
    """Ready step 1 persisted a snapshot at index 13, the node crashed before step 2 wrote
    the HardState that goes with it: the disk holds the snapshot and the older HardState
    (commit 0). Restarting from that disk must work, with commit >= the snapshot index
    (kvbench sim SEED=3, 3 nodes: InvariantError 'hard state commit 0 is out of range')."""
    disk = MemoryStorage()
    disk.apply_snapshot(Snapshot(SnapshotMetadata(13, 2, ConfState(voters=(1, 2, 3, 4)))))
    disk.set_hard_state(HardState(term=2, vote=0, commit=0))
    raw = RawNode(Config(id=4, rng=random.Random(4), applied=13), disk)
    assert raw.status().hard_state.commit >= 13


def test_seed_3_three_nodes() -> None:
    result = run_seed(3, SimConfig(nodes=3))
    assert result.ok, result.describe()
