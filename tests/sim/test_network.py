"""FakeNetwork: faults are seeded, partitions cut links in both send and delivery."""

from __future__ import annotations

import random

import pytest

from raft.testing.network import FakeClock, FakeNetwork, NetworkFaults


def drain(net: FakeNetwork[str], until: int) -> list[tuple[int, int, int, str]]:
    out = []
    for now in range(until + 1):
        out += [(now, e.frm, e.to, e.msg) for e in net.deliver_due(now)]
    return out


def test_perfect_network_delivers_next_step_in_order() -> None:
    net: FakeNetwork[str] = FakeNetwork(random.Random(1))
    for i in range(5):
        net.send(1, 2, f"m{i}", now=0)
    assert net.deliver_due(0) == []
    got = net.deliver_due(1)
    assert [e.msg for e in got] == [f"m{i}" for i in range(5)]
    assert net.in_flight() == 0 and net.stats.delivered == 5


def test_faults_are_deterministic_per_seed() -> None:
    faults = NetworkFaults(drop_rate=0.2, duplicate_rate=0.2, reorder_rate=0.3,
                           delay_min=0, delay_max=3, reorder_extra_max=5)

    def run(seed: int) -> list[tuple[int, int, int, str]]:
        net: FakeNetwork[str] = FakeNetwork(random.Random(seed), faults)
        for i in range(200):
            net.send(i % 3, (i + 1) % 3, f"m{i}", now=i // 10)
        return drain(net, 40)

    a, b, c = run(7), run(7), run(8)
    assert a == b
    assert a != c
    msgs = [m for *_, m in a]
    assert len(msgs) != 200  # some dropped or duplicated
    assert len(set(msgs)) < 200  # some dropped
    assert len(msgs) > len(set(msgs))  # some duplicated
    order = [int(m[1:]) for m in msgs]
    assert order != sorted(order)  # some reordered


def test_partitions_symmetric_asymmetric_and_heal() -> None:
    net: FakeNetwork[str] = FakeNetwork(random.Random(0))
    net.partition([[1], [2, 3]])
    assert net.is_blocked(1, 2) and net.is_blocked(3, 1) and not net.is_blocked(2, 3)
    net.heal()
    net.block(1, 2)  # one-way
    net.block(3, 3)  # a node always reaches itself
    assert net.blocked_links == frozenset({(1, 2)})
    net.send(1, 2, "lost", now=0)
    net.send(2, 1, "kept", now=0)
    assert [e.msg for e in net.deliver_due(1)] == ["kept"]
    # A message in flight when a cut starts is lost at delivery.
    net.send(2, 1, "in-flight", now=1)
    net.block(2, 1)
    assert net.deliver_due(2) == []
    net.unblock(2, 1)
    net.isolate(3, [1, 2, 3])
    assert net.is_blocked(3, 1) and net.is_blocked(2, 3) and not net.is_blocked(2, 1)
    assert net.stats.blocked == 2


def test_crash_drops_in_flight_messages_to_that_node() -> None:
    net: FakeNetwork[str] = FakeNetwork(random.Random(0), NetworkFaults(delay_max=3))
    for i in range(10):
        net.send(1, 2 + i % 2, f"m{i}", now=0)
    assert net.drop_to(2) == 5
    assert net.drop_to(2) == 0
    assert {to for _, _, to, _ in drain(net, 10)} == {3}
    net.send(1, 3, "x", now=20)
    net.drop_all()
    assert net.in_flight() == 0


def test_clock() -> None:
    clock = FakeClock()
    assert clock.advance() == 1 and clock.advance(3) == 4
    with pytest.raises(ValueError):
        clock.advance(-1)
