"""Tests tied to the rules of the Raft paper (Ongaro & Ousterhout, "In Search of an
Understandable Consensus Algorithm"), section by section, after etcd-io/raft's
raft_paper_test.go. They drive `core.Raft` directly and read the messages it emits.
"""

from __future__ import annotations

import pytest

from raft.core import Raft
from raft.types import NONE, Entry, HardState, Message, MessageType, StateType

from .helpers import Network, ents, new_raft, new_storage, read_messages


def _app(frm: int, to: int, term: int, **kw: object) -> Message:
    return Message(MessageType.APP, to=to, from_=frm, term=term, **kw)  # type: ignore[arg-type]


def _leader(r: Raft, *, commit_noop: bool = False) -> Raft:
    r.become_candidate()
    r.become_leader()
    if commit_noop:
        li = r.raft_log.last_index()
        for id in r.trk.ids():
            if id != r.id:
                r.step(Message(MessageType.APP_RESP, to=1, from_=id, term=r.term, index=li))
        assert r.raft_log.committed == li
    read_messages(r)
    return r


# ---------------------------------------------------------------- §5.1 terms


@pytest.mark.parametrize("state", [StateType.FOLLOWER, StateType.CANDIDATE, StateType.LEADER])
def test_higher_term_converts_to_follower(state: StateType) -> None:
    r = new_raft(1)
    if state is StateType.CANDIDATE:
        r.become_candidate()
    elif state is StateType.LEADER:
        _leader(r)
    r.step(_app(2, 1, term=r.term + 1))
    assert r.state is StateType.FOLLOWER
    assert r.lead == 2
    assert r.vote == NONE


def test_start_as_follower() -> None:
    r = new_raft(1)
    assert r.state is StateType.FOLLOWER
    assert r.term == 0


def test_stale_term_message_is_ignored() -> None:
    r = new_raft(1)
    r.become_follower(2, 2)
    r.step(_app(3, 1, term=1, entries=ents(1)))
    assert read_messages(r) == []
    assert r.raft_log.last_index() == 0


def test_stale_leader_is_told_the_new_term_with_check_quorum() -> None:
    r = new_raft(1, check_quorum=True)
    r.become_follower(2, 2)
    r.step(Message(MessageType.HEARTBEAT, to=1, from_=3, term=1))
    (m,) = read_messages(r)
    assert (m.type, m.to, m.term) == (MessageType.APP_RESP, 3, 2)


# ------------------------------------------------------------- §5.2 election


def test_leader_broadcasts_heartbeats() -> None:
    r = _leader(new_raft(1, heartbeat_ticks=1))
    r.tick()
    msgs = read_messages(r)
    assert sorted((m.to, m.type) for m in msgs) == [
        (2, MessageType.HEARTBEAT),
        (3, MessageType.HEARTBEAT),
    ]
    assert all(m.term == r.term for m in msgs)


@pytest.mark.parametrize("start", [StateType.FOLLOWER, StateType.CANDIDATE])
def test_election_timeout_starts_election(start: StateType) -> None:
    r = new_raft(1)
    if start is StateType.CANDIDATE:
        r.become_candidate()
    term = r.term
    for _ in range(2 * r.election_timeout):
        r.tick()
    assert r.state is StateType.CANDIDATE
    assert r.term == term + 1
    assert r.vote == 1
    msgs = read_messages(r)
    assert sorted((m.to, m.type, m.term) for m in msgs)[-2:] == [
        (2, MessageType.VOTE, term + 1),
        (3, MessageType.VOTE, term + 1),
    ]


@pytest.mark.parametrize(
    ("size", "votes", "want"),
    [
        (1, {}, StateType.LEADER),
        (3, {2: True, 3: True}, StateType.LEADER),
        (3, {2: True}, StateType.LEADER),
        (5, {2: True, 3: True}, StateType.LEADER),
        (3, {}, StateType.CANDIDATE),
        (5, {2: True}, StateType.CANDIDATE),
        (5, {2: False, 3: False}, StateType.CANDIDATE),
        (3, {2: False, 3: False}, StateType.FOLLOWER),
        (5, {2: False, 3: False, 4: False}, StateType.FOLLOWER),
    ],
)
def test_election_in_one_round(size: int, votes: dict[int, bool], want: StateType) -> None:
    r = new_raft(1, list(range(1, size + 1)))
    r.step(Message(MessageType.HUP, from_=1))
    for id, granted in votes.items():
        r.step(Message(MessageType.VOTE_RESP, to=1, from_=id, term=r.term, reject=not granted))
    assert r.state is want
    assert r.term == 1


@pytest.mark.parametrize(
    ("vote", "candidate", "reject"),
    [(NONE, 2, False), (NONE, 3, False), (2, 2, False), (3, 3, False), (2, 3, True), (3, 2, True)],
)
def test_follower_votes_once_per_term(vote: int, candidate: int, reject: bool) -> None:
    r = new_raft(1)
    r.term, r.vote = 1, vote
    r.step(Message(MessageType.VOTE, to=1, from_=candidate, term=1))
    (m,) = read_messages(r)
    assert (m.type, m.to, m.reject) == (MessageType.VOTE_RESP, candidate, reject)
    assert r.vote == (candidate if not reject else vote)


@pytest.mark.parametrize("term_delta", [0, 1])
def test_candidate_falls_back_on_leader_append(term_delta: int) -> None:
    r = new_raft(1)
    r.step(Message(MessageType.HUP, from_=1))
    assert r.state is StateType.CANDIDATE
    r.step(_app(2, 1, term=r.term + term_delta))
    assert r.state is StateType.FOLLOWER
    assert r.lead == 2


def test_randomized_election_timeouts_are_in_range_and_differ() -> None:
    seen = set()
    for seed in range(50):
        r = new_raft(1, seed=seed)
        r.reset_randomized_election_timeout()
        assert r.election_timeout <= r.randomized_election_timeout < 2 * r.election_timeout
        seen.add(r.randomized_election_timeout)
    assert len(seen) > 5


def test_follower_times_out_within_randomized_range() -> None:
    r = new_raft(1, seed=7)
    ticks = 0
    while r.state is StateType.FOLLOWER:
        r.tick()
        ticks += 1
    assert r.election_timeout <= ticks < 2 * r.election_timeout


# --------------------------------------------------- §5.3 log replication


def test_leader_starts_replication() -> None:
    r = _leader(new_raft(1), commit_noop=True)
    li = r.raft_log.last_index()
    r.step(Message(MessageType.PROP, from_=1, entries=[Entry(0, 0, data=b"some data")]))
    from raft.roles import leader

    leader.flush(r)
    assert r.raft_log.last_index() == li + 1
    msgs = sorted(read_messages(r), key=lambda m: m.to)
    assert [(m.to, m.type, m.index, m.log_term) for m in msgs] == [
        (2, MessageType.APP, li, 1),
        (3, MessageType.APP, li, 1),
    ]
    assert [e.data for e in msgs[0].entries] == [b"some data"]
    assert msgs[0].entries[0] == Entry(1, li + 1, data=b"some data")


@pytest.mark.parametrize(
    ("size", "acks", "committed"),
    [
        (1, [], True),
        (3, [], False),
        (3, [2], True),
        (3, [2, 3], True),
        (5, [2], False),
        (5, [2, 3], True),
        (5, [2, 3, 4, 5], True),
    ],
)
def test_leader_commits_on_majority(size: int, acks: list[int], committed: bool) -> None:
    r = _leader(new_raft(1, list(range(1, size + 1))))
    li = r.raft_log.last_index()
    for id in acks:
        r.step(Message(MessageType.APP_RESP, to=1, from_=id, term=r.term, index=li))
    assert (r.raft_log.committed == li) is committed


def test_leader_commit_includes_preceding_entries() -> None:
    storage = new_storage((1, 2, 3), entries=ents(1, 2), hard_state=HardState(term=2))
    r = _leader(new_raft(1, storage=storage))
    li = r.raft_log.last_index()
    for id in (2, 3):
        r.step(Message(MessageType.APP_RESP, to=1, from_=id, term=r.term, index=li))
    assert r.raft_log.committed == li == 3
    assert [e.term for e in r.raft_log.next_committed_ents()] == [1, 2, 3]


def test_follower_commits_up_to_leader_commit() -> None:
    r = new_raft(1)
    r.become_follower(1, 2)
    r.step(_app(2, 1, term=1, index=0, log_term=0, commit=1, entries=ents(1, 1)))
    assert r.raft_log.committed == 1
    r.step(_app(2, 1, term=1, index=2, log_term=1, commit=5))
    # Never beyond what this message vouches for (the last new entry is 2).
    assert r.raft_log.committed == 2


@pytest.mark.parametrize(
    ("log_term", "index", "reject", "hint"),
    [
        (0, 0, False, 0),  # matches the empty prefix
        (1, 1, False, 0),  # matches 1/1
        (2, 2, False, 0),  # matches 2/2
        (1, 2, True, 1),  # term mismatch at 2: our last index with term <= 1 is 1
        (3, 3, True, 2),  # index 3 beyond our log: hint our last index, term 2
    ],
)
def test_follower_consistency_check(log_term: int, index: int, reject: bool, hint: int) -> None:
    r = new_raft(1, storage=new_storage((1, 2, 3), entries=ents(1, 2)))
    r.become_follower(2, 2)
    r.step(_app(2, 1, term=2, log_term=log_term, index=index))
    (m,) = read_messages(r)
    assert (m.type, m.reject) == (MessageType.APP_RESP, reject)
    if reject:
        assert m.reject_hint == hint


@pytest.mark.parametrize(
    ("index", "log_term", "new", "want_terms"),
    [
        (2, 2, [Entry(3, 3)], [1, 2, 3]),
        (1, 1, [Entry(3, 2), Entry(4, 3)], [1, 3, 4]),
        (0, 0, [Entry(1, 1)], [1, 2]),
        (0, 0, [Entry(3, 1)], [3]),
    ],
)
def test_follower_appends_and_truncates_conflicts(
    index: int, log_term: int, new: list[Entry], want_terms: list[int]
) -> None:
    r = new_raft(1, storage=new_storage((1, 2, 3), entries=ents(1, 2)))
    r.become_follower(2, 2)
    r.step(_app(2, 1, term=2, log_term=log_term, index=index, entries=new))
    assert [e.term for e in r.raft_log.all_entries()] == want_terms


FIGURE7_LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIGURE7_FOLLOWERS = {
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


@pytest.mark.parametrize("case", sorted(FIGURE7_FOLLOWERS))
def test_leader_brings_figure7_follower_in_sync(case: str) -> None:
    lead_storage = new_storage((1, 2, 3), entries=ents(*FIGURE7_LEADER), hard_state=HardState(8))
    lead = new_raft(1, storage=lead_storage)
    lead.raft_log.commit_to(len(FIGURE7_LEADER))
    foll_storage = new_storage(
        (1, 2, 3), entries=ents(*FIGURE7_FOLLOWERS[case]), hard_state=HardState(8)
    )
    foll = new_raft(2, storage=foll_storage)
    # Node 3 votes for the leader but never answers appends, so node 2 decides the commit.
    third = new_raft(3, storage=new_storage((1, 2, 3), hard_state=HardState(8)))
    net = Network({1: lead, 2: foll, 3: third})
    net.campaign(1)
    assert lead.state is StateType.LEADER
    net.cut(1, 3)
    net.propose(1, b"new")
    assert [(e.term, e.index) for e in foll.raft_log.all_entries()] == [
        (e.term, e.index) for e in lead.raft_log.all_entries()
    ]


# ------------------------------------------------------- §5.4.1 election restriction


@pytest.mark.parametrize(
    ("log_terms", "cand_index", "cand_term", "reject"),
    [
        ([1, 1], 2, 1, False),  # same last term, same length
        ([1, 1], 3, 1, False),  # same term, longer
        ([1, 1], 1, 1, True),  # same term, shorter
        ([1, 1], 1, 2, False),  # higher last term wins even if shorter
        ([1, 2], 5, 1, True),  # lower last term loses even if longer
        ([1, 2], 2, 2, False),
        ([1, 2], 1, 2, True),
    ],
)
def test_vote_only_for_up_to_date_log(
    log_terms: list[int], cand_index: int, cand_term: int, reject: bool
) -> None:
    r = new_raft(1, storage=new_storage((1, 2, 3), entries=ents(*log_terms)))
    r.step(Message(MessageType.VOTE, to=1, from_=2, term=3, index=cand_index, log_term=cand_term))
    (m,) = read_messages(r)
    assert m.reject is reject


def test_vote_request_carries_last_log_position() -> None:
    r = new_raft(1, storage=new_storage((1, 2, 3), entries=ents(1, 2, 2)))
    r.step(Message(MessageType.HUP, from_=1))
    msgs = read_messages(r)
    assert {(m.index, m.log_term) for m in msgs} == {(3, 2)}


# -------------------------------------------------- §5.4.2 committing from earlier terms


@pytest.mark.parametrize(("ack_index", "want_commit"), [(1, 0), (2, 0), (3, 3)])
def test_leader_only_commits_by_counting_current_term(ack_index: int, want_commit: int) -> None:
    storage = new_storage((1, 2), entries=ents(1, 2), hard_state=HardState(term=2))
    r = _leader(new_raft(1, (1, 2), storage=storage))
    assert r.term == 3 and r.raft_log.last_index() == 3
    r.step(Message(MessageType.APP_RESP, to=1, from_=2, term=3, index=ack_index))
    assert r.raft_log.committed == want_commit


def test_figure8_entry_from_previous_term_is_not_committed_by_replica_count() -> None:
    """Figure 8: S1 (leader of term 4) has replicated its term-2 entry at index 2 to a
    majority {S1, S2, S3}, yet must not commit it: S5, holding a term-3 entry at index 2,
    could still win an election with S2..S4's votes and overwrite it. Once S1 replicates an
    entry of its own term 4 on a majority, index 2 commits with it and S5 can no longer win."""
    voters = (1, 2, 3, 4, 5)
    s1 = new_raft(1, voters, storage=new_storage(voters, entries=ents(1, 2), hard_state=HardState(3)))
    s1.raft_log.commit_to(1)
    _leader(s1)
    assert (s1.term, s1.raft_log.last_index()) == (4, 3)

    # S2 and S3 acknowledge index 2 (the term-2 entry): a majority holds it.
    for id in (2, 3):
        s1.step(Message(MessageType.APP_RESP, to=1, from_=id, term=4, index=2))
    assert s1.raft_log.committed == 1

    # Why it must not commit: a voter with S3's log would still elect S5 in term 5.
    s3 = new_raft(3, voters, storage=new_storage(voters, entries=ents(1, 2), hard_state=HardState(4)))
    s3.step(Message(MessageType.VOTE, to=3, from_=5, term=5, index=2, log_term=3))
    (resp,) = read_messages(s3)
    assert not resp.reject

    # S2 and S3 acknowledge the term-4 entry: indexes 2 and 3 commit together.
    for id in (2, 3):
        s1.step(Message(MessageType.APP_RESP, to=1, from_=id, term=4, index=3))
    assert s1.raft_log.committed == 3

    # Now a voter holding 4/3 refuses S5, so S5 can never overwrite the committed entries.
    s3b = new_raft(
        3, voters, storage=new_storage(voters, entries=ents(1, 2, 4), hard_state=HardState(4))
    )
    s3b.step(Message(MessageType.VOTE, to=3, from_=5, term=5, index=2, log_term=3))
    (resp,) = read_messages(s3b)
    assert resp.reject


def test_figure8_network_run_keeps_committed_entries() -> None:
    """A full run of the figure-8 schedule on five nodes: the entry committed in the
    leader's own term survives every later election."""
    net = Network.of(5)
    net.campaign(1)
    net.propose(1, b"committed")
    committed = net.peers[1].raft_log.committed
    assert committed == 2
    # S1 appends an entry only S2 receives, then goes away.
    for other in (3, 4, 5):
        net.cut(1, other)
    net.propose(1, b"maybe")
    net.isolate(1)
    net.campaign(5)
    assert net.peers[5].state is StateType.LEADER
    net.propose(5, b"overwrite")
    net.recover()
    net.propose(5, b"more")
    # A heartbeat round un-pauses the probe to S1, which then gets S5's log.
    net.send([Message(MessageType.BEAT, to=5, from_=5)])
    for p in net.peers.values():
        entries = p.raft_log.all_entries()
        assert entries[1].data == b"committed"
        assert b"maybe" not in [e.data for e in entries]
        assert p.raft_log.committed >= committed


def test_follower_that_knows_the_leader_refuses_same_term_votes() -> None:
    """Raft §5.2 with etcd's refinement: a follower that has a leader for this term does not
    grant its (unused) vote to another candidate of the same term."""
    r = new_raft(1)
    r.become_follower(2, 3)  # term 2, leader 3, no vote cast
    r.step(Message(MessageType.VOTE, to=1, from_=2, term=2))
    (m,) = read_messages(r)
    assert m.reject and r.vote == NONE
