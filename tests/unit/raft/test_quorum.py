"""quorum.py against brute-force references (STYLE.md §7)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from raft import quorum
from raft.quorum import VoteResult

ids = st.sets(st.integers(1, 9), max_size=7)


def _ref_committed(voters: set[int], match: dict[int, int]) -> int:
    """The largest index i such that a majority of voters have match >= i."""
    if not voters:
        return quorum.NO_CONSTRAINT
    best = 0
    for i in sorted(set(match.values()) | {0}):
        if sum(1 for v in voters if match[v] >= i) > len(voters) // 2:
            best = max(best, i)
    return best


def _ref_vote(voters: set[int], votes: dict[int, bool]) -> VoteResult:
    if not voters:
        return VoteResult.WON
    # Won if granted votes alone form a majority; lost if no completion of the missing votes
    # can reach one; pending otherwise.
    missing = [v for v in voters if v not in votes]
    outcomes = set()
    for fill in itertools.product([True, False], repeat=len(missing)):
        full = {v: votes[v] for v in voters if v in votes}
        full.update(zip(missing, fill, strict=True))
        outcomes.add(sum(full.values()) > len(voters) // 2)
    if outcomes == {True}:
        return VoteResult.WON
    if outcomes == {False}:
        return VoteResult.LOST
    return VoteResult.PENDING


@settings(max_examples=300, deadline=None)
@given(voters=ids, data=st.data())
def test_committed_index_matches_reference(voters: set[int], data: st.DataObject) -> None:
    match = {v: data.draw(st.integers(0, 20)) for v in voters}
    assert quorum.committed_index(voters, lambda v: match[v]) == _ref_committed(voters, match)


@settings(max_examples=300, deadline=None)
@given(voters=ids, data=st.data())
def test_vote_result_matches_reference(voters: set[int], data: st.DataObject) -> None:
    votes = data.draw(st.dictionaries(st.integers(1, 9), st.booleans(), max_size=9))
    assert quorum.vote_result(voters, votes) == _ref_vote(voters, votes)


@settings(max_examples=200, deadline=None)
@given(voters=ids, data=st.data())
def test_has_quorum_matches_reference(voters: set[int], data: st.DataObject) -> None:
    active = {v: data.draw(st.booleans()) for v in voters}
    want = not voters or sum(active.values()) > len(voters) // 2
    assert quorum.has_quorum(voters, lambda v: active[v]) is want


def test_examples() -> None:
    assert quorum.committed_index({1, 2, 3}, {1: 7, 2: 5, 3: 9}.__getitem__) == 7
    assert quorum.committed_index({1}, {1: 4}.__getitem__) == 4
    assert quorum.committed_index(set(), lambda v: 0) == quorum.NO_CONSTRAINT
    assert quorum.vote_result({1, 2, 3}, {1: True}) is VoteResult.PENDING
    assert quorum.vote_result({1, 2, 3}, {1: True, 2: True}) is VoteResult.WON
    assert quorum.vote_result({1, 2, 3}, {2: False, 3: False}) is VoteResult.LOST
    # Votes from non-voters do not count.
    assert quorum.vote_result({1, 2, 3}, {1: True, 7: True, 8: True}) is VoteResult.PENDING
