"""confchange.py: rules by example, and random sequences against a set-based reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raft.confchange import apply_change, is_valid
from raft.errors import ConfChangeError
from raft.types import ConfChange, ConfChangeType, ConfState

V, L, R = ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE, ConfChangeType.REMOVE_NODE


@pytest.mark.parametrize(
    ("start", "change", "want"),
    [
        (ConfState((1,)), ConfChange(V, 2), ConfState((1, 2))),
        (ConfState((1, 2)), ConfChange(V, 2), ConfState((1, 2))),  # no-op
        (ConfState((1,), (2,)), ConfChange(V, 2), ConfState((1, 2))),  # promote
        (ConfState((1,)), ConfChange(L, 3), ConfState((1,), (3,))),
        (ConfState((1, 2)), ConfChange(L, 2), ConfState((1,), (2,))),  # demote
        (ConfState((1,), (3,)), ConfChange(L, 3), ConfState((1,), (3,))),  # no-op
        (ConfState((1, 2), (3,)), ConfChange(R, 2), ConfState((1,), (3,))),
        (ConfState((1, 2), (3,)), ConfChange(R, 3), ConfState((1, 2))),
        (ConfState((1, 2)), ConfChange(R, 9), ConfState((1, 2))),  # unknown: no-op
    ],
)
def test_rules(start: ConfState, change: ConfChange, want: ConfState) -> None:
    assert apply_change(start, change) == want


@pytest.mark.parametrize(
    ("start", "change"),
    [
        (ConfState((1,)), ConfChange(R, 1)),  # removes all voters
        (ConfState((1,), (2,)), ConfChange(L, 1)),  # demotes the last voter
        (ConfState((1,)), ConfChange(V, 0)),  # node id 0
    ],
)
def test_invalid(start: ConfState, change: ConfChange) -> None:
    with pytest.raises(ConfChangeError):
        apply_change(start, change)
    assert not is_valid(start, change)


def _reference(voters: set[int], learners: set[int], c: ConfChange) -> tuple[set[int], set[int]]:
    v, l_ = set(voters), set(learners)
    if c.type is V:
        v.add(c.node_id)
        l_.discard(c.node_id)
    elif c.type is L:
        l_.add(c.node_id)
        v.discard(c.node_id)
    else:
        v.discard(c.node_id)
        l_.discard(c.node_id)
    return v, l_


changes = st.builds(ConfChange, st.sampled_from([V, L, R]), st.integers(0, 6))


@settings(max_examples=300, deadline=None)
@given(st.lists(changes, max_size=30))
def test_sequences_match_reference(seq: list[ConfChange]) -> None:
    cs = ConfState((1,))
    voters, learners = {1}, set()
    for c in seq:
        nv, nl = _reference(voters, learners, c)
        if c.node_id == 0 or not nv:
            assert not is_valid(cs, c)
            continue
        cs = apply_change(cs, c)
        voters, learners = nv, nl
        assert cs == ConfState(tuple(sorted(voters)), tuple(sorted(learners)))
        # Invariants: disjoint, sorted, at least one voter; one change moves <= 1 voter.
        assert not set(cs.voters) & set(cs.learners)
        assert cs.voters
