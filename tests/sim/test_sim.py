"""The simulator end to end: seeds of every fault mix pass, a seed replays exactly, and a
deliberately broken node or disk (a mutation) is caught by the checkers."""

from __future__ import annotations

import pytest

from raft.testing.sim import FAULT_MIXES, MUTATIONS, SimConfig, Simulation, run_seed

MIXES = sorted(FAULT_MIXES)


@pytest.mark.parametrize("mix", MIXES)
def test_three_nodes(mix: str) -> None:
    config = SimConfig(nodes=3, mix=mix, steps=800)
    failures = [r.describe() for r in (run_seed(seed, config) for seed in range(5))]
    assert [f for f in failures if "VIOLATION" in f] == []


@pytest.mark.parametrize("mix", ["chaos", "membership"])
def test_five_nodes(mix: str) -> None:
    config = SimConfig(nodes=5, mix=mix, steps=800)
    failures = [r.describe() for r in (run_seed(seed, config) for seed in range(100, 105))]
    assert [f for f in failures if "VIOLATION" in f] == []


def test_seeds_drawing_their_own_mix() -> None:
    results = [run_seed(seed, SimConfig(steps=400)) for seed in range(1000, 1010)]
    assert all(r.ok for r in results), [r.describe() for r in results if not r.ok]
    assert len({r.mix for r in results}) > 1


def test_the_workload_exercises_the_protocol() -> None:
    """A run that never elects, snapshots, reconfigures or reads would pass vacuously."""
    totals: dict[str, int] = {}
    for seed in range(3):
        r = run_seed(seed, SimConfig(nodes=3, mix="chaos", steps=800))
        assert r.ok, r.describe()
        for k, v in r.stats.items():
            totals[k] = totals.get(k, 0) + v
    for stat in ("leaders_elected", "applied", "reads_served", "conf_changes_applied",
                 "snapshots_installed", "crashes", "partitions", "transfers"):
        assert totals.get(stat, 0) > 0, (stat, totals)


def test_a_seed_replays_exactly() -> None:
    config = SimConfig(nodes=3, mix="chaos", steps=600)
    a, b = run_seed(7, config), run_seed(7, config)
    assert a.ok and b.ok
    assert a.trace_hash == b.trace_hash and a.stats == b.stats and a.steps == b.steps
    assert run_seed(8, config).trace_hash != a.trace_hash


# What each mutation must be caught as. A disk that loses acknowledged entries is mostly
# caught by the core's own invariants (a leader's commit beyond the follower's log), which
# the simulator reports as findings too.
CAUGHT_AS = {
    "send-before-persist": ("vote-durability",),
    "forget-vote": ("double-vote", "election-safety"),
    "local-read": ("read-linearizable",),
    "lose-tail": ("exception", "leader-completeness", "state-machine-safety", "log-matching",
                  "apply-durability"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_broken_node_is_caught(mutation: str) -> None:
    config = SimConfig(nodes=3, mix="crashes", steps=800, mutation=mutation)
    for seed in range(20):
        result = run_seed(seed, config)
        if not result.ok:
            assert f"SEED={seed}" in result.describe()
            assert (result.violation or "").startswith(CAUGHT_AS[mutation]), result.violation
            return
    pytest.fail(f"mutation {mutation} went unnoticed over 20 seeds")


def test_unknown_mutation_is_refused() -> None:
    with pytest.raises(ValueError):
        Simulation(0, SimConfig(mutation="nope"))
