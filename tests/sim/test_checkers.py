"""Checker self-tests: each checker must flag a fabricated history that breaks its property.

A checker that cannot fail proves nothing, so every property gets one violating history
(and the same history minus the fault passes, so the check is not just always-raising).
"""

from __future__ import annotations

import pytest

from raft.testing.checkers import (
    EntryRecord,
    LogView,
    ReadRecord,
    Role,
    SafetyChecker,
    SimViolation,
)


def entry(index: int, term: int, tag: str = "") -> EntryRecord:
    return EntryRecord(index=index, term=term, digest=f"{index}/{term}/{tag}".encode())


def soft(c: SafetyChecker, node: int, *, term: int, role: Role = Role.FOLLOWER,
         commit: int = 0, incarnation: int = 0, is_learner: bool = False) -> None:
    c.on_soft_state(node, incarnation=incarnation, term=term, commit=commit, role=role,
                    is_learner=is_learner)


def test_two_leaders_in_one_term() -> None:
    c = SafetyChecker()
    soft(c, 1, term=2, role=Role.LEADER)
    soft(c, 2, term=3, role=Role.LEADER)  # another term: fine
    with pytest.raises(SimViolation, match="election-safety"):
        soft(c, 3, term=2, role=Role.LEADER)


def test_term_and_commit_never_decrease_within_an_incarnation() -> None:
    c = SafetyChecker()
    soft(c, 1, term=5, commit=4)
    with pytest.raises(SimViolation, match="term-monotonic"):
        soft(c, 1, term=4, commit=4)
    c = SafetyChecker()
    soft(c, 1, term=5, commit=4)
    with pytest.raises(SimViolation, match="commit-monotonic"):
        soft(c, 1, term=5, commit=3)
    # A restart (new incarnation) may come back with less volatile state.
    c = SafetyChecker()
    soft(c, 1, term=5, commit=4)
    soft(c, 1, term=3, commit=0, incarnation=1)


def test_persisted_term_commit_and_vote() -> None:
    c = SafetyChecker()
    c.on_persist_hard_state(1, term=3, vote=2, commit=5)
    with pytest.raises(SimViolation, match="term-monotonic"):
        c.on_persist_hard_state(1, term=2, vote=0, commit=5)
    with pytest.raises(SimViolation, match="commit-monotonic"):
        c.on_persist_hard_state(1, term=3, vote=2, commit=4)
    with pytest.raises(SimViolation, match="double-vote"):
        c.on_persist_hard_state(1, term=3, vote=3, commit=5)
    c.on_persist_hard_state(1, term=4, vote=3, commit=6)  # a new term, a new vote


def test_vote_granted_before_persisted() -> None:
    c = SafetyChecker()
    c.on_vote_granted_sent(1, to=2, term=3, pre_vote=True)  # pre-votes need no persistence
    with pytest.raises(SimViolation, match="vote-durability"):
        c.on_vote_granted_sent(1, to=2, term=3, pre_vote=False)
    c.on_persist_hard_state(1, term=3, vote=2, commit=0)
    c.on_vote_granted_sent(1, to=2, term=3, pre_vote=False)
    with pytest.raises(SimViolation, match="vote-durability"):
        c.on_vote_granted_sent(1, to=3, term=3, pre_vote=False)
    # One Ready may carry a grant for term 3 and the HardState of term 4 that followed it.
    c.on_persist_hard_state(1, term=4, vote=3, commit=0)
    c.on_vote_granted_sent(1, to=2, term=3, pre_vote=False)


def test_learner_never_campaigns_and_its_vote_does_not_count() -> None:
    c = SafetyChecker()
    with pytest.raises(SimViolation, match="learner-campaign"):
        soft(c, 4, term=2, role=Role.PRE_CANDIDATE, is_learner=True)
    c = SafetyChecker()
    log = LogView(0, 0, ())
    voters = frozenset({1, 2, 3})
    with pytest.raises(SimViolation, match="learner-campaign"):
        c.on_became_leader(4, term=2, voters=voters, log=log)
    # Node 1 got a vote only from learner 4: not a majority of {1, 2, 3}.
    c.on_vote_granted_received(1, frm=4, term=2)
    with pytest.raises(SimViolation, match="vote-count"):
        c.on_became_leader(1, term=2, voters=voters, log=log)
    c.on_vote_granted_received(1, frm=3, term=2)
    c.on_became_leader(1, term=2, voters=voters, log=log)
    # Votes of another term do not count either.
    c.on_vote_granted_received(2, frm=1, term=2)
    with pytest.raises(SimViolation, match="vote-count"):
        c.on_became_leader(2, term=3, voters=voters, log=log)
    c.on_became_leader(5, term=3, voters=frozenset({5}), log=log)  # a single voter


def test_log_matching() -> None:
    c = SafetyChecker()
    c.on_persist_entries(1, [entry(1, 1), entry(2, 1), entry(3, 2)], prev_term=0)
    c.on_persist_entries(2, [entry(1, 1), entry(2, 1)], prev_term=0)
    with pytest.raises(SimViolation, match="log-matching"):
        c.on_persist_entries(2, [entry(3, 2, "other")], prev_term=1)
    # Same (index, term) and payload, but after a different previous term.
    with pytest.raises(SimViolation, match="log-matching"):
        c.on_persist_entries(3, [entry(3, 2)], prev_term=2)


def test_commit_safety() -> None:
    c = SafetyChecker()
    c.on_commit(1, index=5, term=2)
    c.on_commit(2, index=5, term=2)
    with pytest.raises(SimViolation, match="commit-safety"):
        c.on_commit(3, index=5, term=3)
    # Applying an entry commits it too: a different term there is caught at apply.
    for i in range(1, 5):
        c.on_apply(1, entry(i, 1), state_digest=f"s{i}".encode())
    with pytest.raises(SimViolation, match="commit-safety"):
        c.on_apply(1, entry(5, 1), state_digest=b"s5")
    # Leader completeness counts what is committed, applied or not.
    c.on_commit(1, index=6, term=2)
    c.on_vote_granted_received(2, frm=1, term=3)
    with pytest.raises(SimViolation, match="leader-completeness"):
        c.on_became_leader(2, term=3, voters=frozenset({1, 2, 3}), log=LogView(4, 1, (2,)))
    c.on_became_leader(2, term=3, voters=frozenset({1, 2, 3}), log=LogView(4, 1, (2, 2)))


def test_leader_completeness() -> None:
    c = SafetyChecker()
    c.on_apply(1, entry(1, 1), state_digest=b"s1")
    c.on_apply(1, entry(2, 1), state_digest=b"s2")
    voters = frozenset({1, 2, 3})
    c.on_vote_granted_received(2, frm=3, term=2)
    with pytest.raises(SimViolation, match="leader-completeness"):
        c.on_became_leader(2, term=2, voters=voters, log=LogView(0, 0, (1,)))
    with pytest.raises(SimViolation, match="leader-completeness"):
        c.on_became_leader(2, term=2, voters=voters, log=LogView(0, 0, (1, 2)))
    c.on_became_leader(2, term=2, voters=voters, log=LogView(0, 0, (1, 1, 2)))
    c.on_became_leader(2, term=2, voters=voters, log=LogView(1, 1, (1,)))  # compacted


def test_state_machine_safety() -> None:
    c = SafetyChecker()
    c.on_apply(1, entry(1, 1), state_digest=b"s1")
    with pytest.raises(SimViolation, match="state-machine-safety"):
        c.on_apply(2, entry(1, 1, "forged"), state_digest=b"s1")
    c = SafetyChecker()
    c.on_apply(1, entry(1, 1), state_digest=b"s1")
    with pytest.raises(SimViolation, match="state-machine-safety"):
        c.on_apply(2, entry(1, 1), state_digest=b"diverged")
    with pytest.raises(SimViolation, match="state-machine-safety"):
        c.on_install_snapshot(3, index=1, state_digest=b"diverged")
    c.on_install_snapshot(3, index=1, state_digest=b"s1")


def test_apply_in_order() -> None:
    c = SafetyChecker()
    c.on_apply(1, entry(1, 1), state_digest=b"s1")
    with pytest.raises(SimViolation, match="apply-order"):
        c.on_apply(1, entry(3, 1), state_digest=b"s3")
    with pytest.raises(SimViolation, match="apply-order"):
        c.on_apply(1, entry(1, 1), state_digest=b"s1")


def test_applied_prefix_survives_restart() -> None:
    c = SafetyChecker()
    for i in range(1, 4):
        c.on_apply(1, entry(i, 1), state_digest=f"s{i}".encode())
    with pytest.raises(SimViolation, match="apply-durability"):
        c.on_restart(1, persisted_commit=2, snap_index=0)
    c.on_restart(1, persisted_commit=2, snap_index=3)
    c.on_restart(1, persisted_commit=3, snap_index=0)
    # After the restart the node re-applies from the start, in order.
    c.on_apply(1, entry(1, 1), state_digest=b"s1")


def _history() -> SafetyChecker:
    c = SafetyChecker()
    c.on_apply(1, entry(1, 1), state_digest=b"s1", put=("k", "a"))
    c.on_apply(1, entry(2, 1), state_digest=b"s2", put=("k", "b"))
    c.on_apply(1, entry(3, 1), state_digest=b"s3", put=("j", "x"))
    return c


def read(**kw: object) -> ReadRecord:
    base: dict[str, object] = dict(node=1, key="k", invoked_step=10, completed_step=12,
                                   commit_at_invoke=2, read_index=2, applied_index=3, value="b")
    base.update(kw)
    return ReadRecord(**base)  # type: ignore[arg-type]


def test_read_linearizability() -> None:
    c = _history()
    c.on_read(read())
    assert c.value_at("k", 1) == "a" and c.value_at("nope", 3) is None
    # A stale leader answers with an index older than a write already committed.
    with pytest.raises(SimViolation, match="read-linearizable"):
        c.on_read(read(read_index=1, applied_index=1, value="a"))
    # Served before the node applied the read index.
    with pytest.raises(SimViolation, match="read-linearizable"):
        c.on_read(read(read_index=3, applied_index=2))
    # A value that the committed log never had at that index (stale or uncommitted).
    with pytest.raises(SimViolation, match="read-linearizable"):
        c.on_read(read(value="a"))
    with pytest.raises(SimViolation, match="read-linearizable"):
        c.on_read(read(value="never-committed"))
    # Served at an index nobody has committed.
    with pytest.raises(SimViolation, match="read-linearizable"):
        c.on_read(read(applied_index=9))
    assert c.reads_checked == 1
