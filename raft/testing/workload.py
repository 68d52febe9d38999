"""The simulator's workload and fault injection: what happens to the cluster at each step.

Theory of operation
-------------------
A `FaultMix` gives, per simulated step, the probability of each client action (a proposal
to a random running node, which forwards it to the leader; a ReadIndex read) and of each
fault (crash, restart, partition, heal, membership change, leadership transfer), plus the
network's fault model. `inject(sim)` draws all of them from the simulation's one
`random.Random`, in a fixed order, so a seed replays exactly.

Membership changes are single-step and proposed to the current leader, chosen among the
moves that keep at least two voters: add a non-member as learner (a spare id, or a removed
node coming back: "re-add"), promote a learner, remove a learner or a voter. The leader
itself may be removed or told to transfer leadership.

`MUTATIONS` are deliberate faults in the simulated node or disk (see `SimConfig.mutation`):
tests switch one on and expect the checkers to catch it, which proves they can fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from raft.errors import RaftError
from raft.testing.network import NetworkFaults
from raft.testing.sim_node import CrashPoint, PendingRead, SimNode, encode_put
from raft.types import ConfChange, ConfChangeType

if TYPE_CHECKING:
    from raft.testing.sim import Simulation

KEYS = ("a", "b", "c", "d", "e")


@dataclass(frozen=True, slots=True)
class FaultMix:
    """Per-step probabilities of each fault and client action, plus the network model."""

    name: str
    network: NetworkFaults
    tick_rate: float = 0.5
    propose_rate: float = 0.3
    read_rate: float = 0.1
    crash_rate: float = 0.0
    restart_rate: float = 0.1
    partition_rate: float = 0.0
    heal_rate: float = 0.05
    conf_change_rate: float = 0.0
    transfer_rate: float = 0.0


_LOSSY = NetworkFaults(drop_rate=0.1, duplicate_rate=0.05, reorder_rate=0.1, delay_max=2,
                       reorder_extra_max=6)
FAULT_MIXES: dict[str, FaultMix] = {
    m.name: m
    for m in (
        FaultMix("calm", NetworkFaults(delay_max=1)),
        FaultMix("lossy", _LOSSY, transfer_rate=0.01),
        FaultMix("partitions", NetworkFaults(delay_max=2, reorder_rate=0.05, reorder_extra_max=4),
                 partition_rate=0.03, heal_rate=0.04),
        FaultMix("crashes", NetworkFaults(delay_max=2, drop_rate=0.02), crash_rate=0.02,
                 restart_rate=0.08),
        FaultMix("membership", NetworkFaults(delay_max=2, drop_rate=0.02), conf_change_rate=0.03,
                 transfer_rate=0.01, crash_rate=0.005),
        FaultMix("chaos", _LOSSY, crash_rate=0.015, partition_rate=0.02, conf_change_rate=0.02,
                 transfer_rate=0.01, restart_rate=0.08),
    )
}


MUTATIONS = {
    "send-before-persist": "send a Ready's messages before persisting its hard state and entries",
    "forget-vote": "a crash loses the persisted vote (a disk that ignores fsync of the hard state)",
    "local-read": "serve reads at once from the local state machine, skipping ReadIndex",
    "lose-tail": "a crash loses the log entries past the persisted commit (acknowledged, not synced)",
}


def propose(sim: Simulation, node: SimNode, key: str, *, batch: int = 1) -> None:
    """Propose `batch` puts to `key` on `node` (one propose() call, or one propose_batch())."""
    if node.raw is None:
        return
    datas = [encode_put(key, f"p{sim.fresh_id()}") for _ in range(batch)]
    try:
        if batch == 1:
            node.raw.propose(datas[0])
        else:
            node.raw.propose_batch(datas)
        sim.count("proposed", batch)
    except RaftError:
        sim.count("proposals_dropped", batch)


def read(sim: Simulation, node: SimNode) -> None:
    if node.raw is None:
        return
    ctx = f"r{sim.fresh_id()}".encode()
    node.reads[ctx] = PendingRead(sim.rng.choice(KEYS), sim.clock.now, sim.max_commit)
    if sim.mutation == "local-read":
        node.reads[ctx].read_index = node.sm.applied
        sim.serve_reads(node)
        return
    try:
        node.raw.read_index(ctx)
        sim.count("reads_invoked")
    except RaftError:
        del node.reads[ctx]


def conf_change(sim: Simulation, leader: SimNode) -> None:
    if leader.raw is None:
        return
    cs = leader.sm.conf_state
    members = set(cs.voters) | set(cs.learners)
    choices: list[ConfChange] = []
    for n in sim.nodes:
        if n not in members:
            choices.append(ConfChange(ConfChangeType.ADD_LEARNER_NODE, n))
    for n in cs.learners:
        choices.append(ConfChange(ConfChangeType.ADD_NODE, n))
        choices.append(ConfChange(ConfChangeType.REMOVE_NODE, n))
    if len(cs.voters) > 2:
        for n in cs.voters:
            choices.append(ConfChange(ConfChangeType.REMOVE_NODE, n))
    if not choices:
        return
    cc = sim.rng.choice(choices)
    sim.event("conf-change", cc.type.value, cc.node_id)
    try:
        leader.raw.propose_conf_change(cc)
        sim.count("conf_changes_proposed")
    except RaftError:
        sim.count("proposals_dropped")


def partition(sim: Simulation) -> None:
    ids = sorted(sim.nodes)
    kind = sim.rng.randrange(3)
    if kind == 0:
        victim = sim.rng.choice(ids)
        sim.network.isolate(victim, ids)
        sim.event("isolate", victim)
    elif kind == 1:
        shuffled = ids[:]
        sim.rng.shuffle(shuffled)
        cut = sim.rng.randrange(1, len(ids))
        sim.network.partition([shuffled[:cut], shuffled[cut:]])
        sim.event("partition", shuffled[:cut])
    else:
        a, b = sim.rng.sample(ids, 2)
        sim.network.block(a, b)
        sim.event("block", a, b)
    sim.count("partitions")


def inject(sim: Simulation) -> None:
    mix, rng = sim.mix, sim.rng
    alive = sim.alive()
    if alive and rng.random() < mix.propose_rate:
        # One proposal in five is a batch, as the server sends under load.
        batch = rng.randint(2, 4) if rng.random() < 0.2 else 1
        propose(sim, rng.choice(alive), rng.choice(KEYS), batch=batch)
    if alive and rng.random() < mix.read_rate:
        read(sim, rng.choice(alive))
    leader = sim.leader()
    if leader is not None and rng.random() < mix.conf_change_rate:
        conf_change(sim, leader)
    if leader is not None and leader.raw is not None and rng.random() < mix.transfer_rate:
        target = rng.choice([n for n in sim.nodes if n != leader.id])
        sim.event("transfer", leader.id, target)
        leader.raw.transfer_leader(target)
        sim.count("transfers")
    if alive and rng.random() < mix.crash_rate:
        victim = rng.choice(alive)
        point = rng.choice([None, *CrashPoint])
        if point is None:
            sim.crash(victim)
        else:
            victim.crash_point = point
    dead = [n for n in sim.nodes.values() if n.raw is None and not n.stopped]
    if dead and rng.random() < mix.restart_rate:
        sim.start(rng.choice(dead))
    if rng.random() < mix.partition_rate:
        partition(sim)
    if sim.network.blocked_links and rng.random() < mix.heal_rate:
        sim.network.heal()
        sim.event("heal")
