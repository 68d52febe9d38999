"""`sends_before_persist`: which Readies may send their messages before they are persisted
(Raft thesis 10.2.1), walked through real RawNodes rather than hand-built Readies."""

from __future__ import annotations

from raft import (
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    SoftState,
    StateType,
    sends_before_persist,
)
from raft.ready import Ready

from .helpers import new_raw_node, new_storage

FOLLOWER = SoftState(0, StateType.FOLLOWER)


def _handle(node: RawNode, s: MemoryStorage, soft: SoftState) -> tuple[Ready, bool, SoftState]:
    """One Ready: whether it may send early (judged before persisting), then persist it."""
    rd = node.ready()
    early = sends_before_persist(rd, soft, s.hard_state())
    if rd.hard_state is not None:
        s.set_hard_state(rd.hard_state)
    s.append(rd.entries)
    node.advance(rd)
    return rd, early, rd.soft_state or soft


def _elect_three() -> tuple[RawNode, MemoryStorage, SoftState, list[bool], Ready]:
    node, s = new_raw_node(1, (1, 2, 3))
    soft, verdicts = FOLLOWER, []
    node.campaign()
    rd, early, soft = _handle(node, s, soft)
    verdicts.append(early)
    assert any(m.type is MessageType.PRE_VOTE or m.type is MessageType.VOTE for m in rd.messages)
    for _ in range(2):  # pre-vote (if on), then the vote
        for m in rd.messages:
            if m.to == 2:
                resp = MessageType.PRE_VOTE_RESP if m.type is MessageType.PRE_VOTE else MessageType.VOTE_RESP
                node.step(Message(resp, from_=2, to=1, term=m.term))
        if not node.has_ready():
            break
        rd, early, soft = _handle(node, s, soft)
        verdicts.append(early)
        if soft.raft_state is StateType.LEADER:
            break
    return node, s, soft, verdicts, rd


def test_a_candidate_never_sends_early_and_a_new_leader_does() -> None:
    node, s, soft, verdicts, _ = _elect_three()
    assert soft.raft_state is StateType.LEADER
    # Every Ready up to the winning one asked for votes under a fresh term: none early.
    assert verdicts[:-1] == [False] * (len(verdicts) - 1)
    # The winning Ready: leader, its empty entry and MsgApps, term already durable.
    assert verdicts[-1] is True


def test_a_leaders_proposal_ready_sends_early() -> None:
    node, s, soft, _, rd = _elect_three()
    while True:  # the followers accept the new term's first entries
        for m in rd.messages:
            if m.type is MessageType.APP:
                node.step(Message(MessageType.APP_RESP, from_=m.to, to=1, term=m.term,
                                  index=m.index + len(m.entries)))
        if not node.has_ready():
            break
        rd, _, soft = _handle(node, s, soft)
    node.propose(b"x")
    rd, early, _ = _handle(node, s, soft)
    assert rd.entries and any(m.type is MessageType.APP for m in rd.messages)
    assert early


def test_a_follower_accepting_entries_waits_for_its_fsync() -> None:
    node, s = new_raw_node(2, (1, 2, 3))
    node.step(Message(MessageType.APP, from_=1, to=2, term=1, index=0, log_term=0,
                      entries=(), commit=0))
    rd, early, _ = _handle(node, s, FOLLOWER)
    assert any(m.type is MessageType.APP_RESP for m in rd.messages)
    assert not early


def test_a_leader_ready_that_changes_the_term_waits() -> None:
    # A single voter elects itself in one step; with a proposal before the next ready(),
    # the new term and the first MsgApp to a learner share one Ready, and the term must be
    # durable before the learner hears of it.
    node, s = new_raw_node(1, storage=new_storage((1,), (2,), index=1, term=1))
    node.campaign()
    node.propose(b"x")
    rd = node.ready()
    assert rd.soft_state is not None and rd.soft_state.raft_state is StateType.LEADER
    assert rd.hard_state is not None and rd.hard_state.term > s.hard_state().term
    assert rd.messages
    assert not sends_before_persist(rd, FOLLOWER, s.hard_state())
    assert sends_before_persist(rd, FOLLOWER, HardState(rd.hard_state.term, rd.hard_state.vote, 0))
