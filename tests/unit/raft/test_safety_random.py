"""Random schedules on a small cluster of cores, checked against Raft's safety properties
after every step (Raft §5.4, Figure 3): election safety (one leader per term), log matching
on committed prefixes, committed entries never change, commit indexes never go back.

Messages wait in a pool and are delivered one at a time in random order, so candidates,
leaders and stale messages interleave; the pool also loses and duplicates messages, and
pairs of nodes get partitioned. Everything comes from one seed. This is a fast, core-only
complement of the simulator in tests/sim (which adds crashes, persistence and membership).
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from raft.core import Raft
from raft.errors import ProposalDroppedError
from raft.roles import leader
from raft.types import Entry, Message, MessageType, StateType

from .helpers import new_raft, read_messages

Committed = dict[int, list[tuple[int, bytes]]]


def _check(peers: dict[int, Raft], leaders: dict[int, int], committed: Committed) -> None:
    for id, p in peers.items():
        if p.state is StateType.LEADER:
            assert leaders.setdefault(p.term, id) == id, f"two leaders in term {p.term}"
        log = p.raft_log
        mine = [(e.term, e.data) for e in log.slice(log.first_index(), log.committed + 1, 1 << 62)]
        prev = committed.get(id, [])
        assert mine[: len(prev)] == prev, f"node {id} changed a committed entry"
        committed[id] = mine
    views = list(committed.values())
    for a in views:
        for b in views:
            n = min(len(a), len(b))
            assert a[:n] == b[:n], "committed prefixes differ"


class Cluster:
    def __init__(self, rng: random.Random, size: int, **cfg: object) -> None:
        ids = list(range(1, size + 1))
        self.rng = rng
        self.peers = {i: new_raft(i, ids, election_ticks=5, seed=rng.randrange(1 << 30), **cfg) for i in ids}
        self.pool: list[Message] = []
        self.cut: set[tuple[int, int]] = set()

    def collect(self, p: Raft) -> None:
        leader.flush(p)
        self.pool.extend(read_messages(p))

    def deliver(self, i: int) -> None:
        m = self.pool.pop(i)
        if (m.from_, m.to) in self.cut:
            return
        p = self.peers[m.to]
        try:
            p.step(m)
        except ProposalDroppedError:
            pass
        self.collect(p)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.sampled_from([3, 5]),
    pre_vote=st.booleans(),
    check_quorum=st.booleans(),
)
def test_random_schedules_are_safe(seed: int, size: int, pre_vote: bool, check_quorum: bool) -> None:
    rng = random.Random(seed)
    c = Cluster(rng, size, pre_vote=pre_vote, check_quorum=check_quorum)
    ids = list(c.peers)
    leaders: dict[int, int] = {}
    committed: Committed = {}
    for step in range(600):
        op = rng.random()
        p = c.peers[rng.choice(ids)]
        if op < 0.25:
            p.tick()
            c.collect(p)
        elif op < 0.35:
            try:
                p.step(Message(MessageType.PROP, from_=p.id, entries=[Entry(0, 0, data=b"%d" % step)]))
            except ProposalDroppedError:
                pass
            c.collect(p)
        elif op < 0.9 and c.pool:
            c.deliver(rng.randrange(len(c.pool)))
        elif op < 0.93 and c.pool:
            c.pool.pop(rng.randrange(len(c.pool)))  # lost
        elif op < 0.95 and c.pool:
            c.pool.append(rng.choice(c.pool))  # duplicated
        elif op < 0.98:
            a, b = rng.sample(ids, 2)
            c.cut |= {(a, b), (b, a)}
        else:
            c.cut.clear()
        _check(c.peers, leaders, committed)

    # Liveness once healed: deliver everything, tick until one leader is followed by all.
    c.cut.clear()

    def converged() -> bool:
        leads = [p for p in c.peers.values() if p.state is StateType.LEADER]
        return len(leads) == 1 and all(
            p.term == leads[0].term and p.lead == leads[0].id for p in c.peers.values()
        )

    for _ in range(300):
        while c.pool:
            c.deliver(0)
        if converged():
            break
        for p in c.peers.values():
            p.tick()
            c.collect(p)
    assert converged()
    lead = next(p for p in c.peers.values() if p.state is StateType.LEADER)
    lead.step(Message(MessageType.PROP, from_=lead.id, entries=[Entry(0, 0, data=b"final")]))
    c.collect(lead)
    for _ in range(5):  # heartbeats un-pause probes so that lagging followers catch up
        while c.pool:
            c.deliver(0)
        lead.step(Message(MessageType.BEAT, from_=lead.id))
        c.collect(lead)
    while c.pool:
        c.deliver(0)
    _check(c.peers, leaders, committed)
    assert all(v and v[-1] == (lead.term, b"final") for v in committed.values())
