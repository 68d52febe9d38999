from __future__ import annotations

from raft.progress import Progress, ProgressTracker
from raft.types import ConfState, ProgressState


def _pr(match: int, next: int) -> Progress:
    return Progress(match=match, next=next, inflight_msgs_max=2)


def test_probe_pauses_after_send_until_ack() -> None:
    pr = _pr(0, 5)
    assert not pr.is_paused()
    pr.probe_sent = True
    assert pr.is_paused()
    assert pr.maybe_update(4)
    assert not pr.is_paused() and (pr.match, pr.next) == (4, 5)
    assert not pr.maybe_update(3)  # stale
    assert pr.next == 5


def test_maybe_decr_to_probe() -> None:
    pr = _pr(0, 10)
    assert not pr.maybe_decr_to(5, 5)  # not a reply to next-1: stale
    assert pr.maybe_decr_to(9, 3)
    assert pr.next == 4
    assert pr.maybe_decr_to(3, 0)
    assert pr.next == 1  # never below 1


def test_maybe_decr_to_replicate() -> None:
    pr = _pr(5, 6)
    pr.become_replicate()
    pr.optimistic_update(9)
    assert not pr.maybe_decr_to(5, 0)  # at or below match: stale
    assert pr.maybe_decr_to(8, 0)
    assert pr.next == 6


def test_replicate_paused_when_window_full() -> None:
    pr = _pr(5, 6)
    pr.become_replicate()
    pr.inflights.add(7)
    pr.inflights.add(8)
    assert pr.is_paused()


def test_snapshot_state() -> None:
    pr = _pr(3, 4)
    pr.become_snapshot(10)
    assert pr.state is ProgressState.SNAPSHOT and pr.is_paused()
    pr.become_probe()
    assert (pr.state, pr.next) == (ProgressState.PROBE, 11)
    pr.become_snapshot(2)
    pr.become_probe()
    assert pr.next == 4  # match+1 when the snapshot is older than match
    assert repr(pr) == "StateProbe match=3 next=4"


def test_tracker_config_and_votes() -> None:
    t = ProgressTracker(4)
    t.set_config(ConfState((1, 2, 3), (4,)), last_index=7)
    assert t.ids() == [1, 2, 3, 4]
    assert t.progress[4].is_learner and t.progress[1].recent_active
    assert t.progress[2].next == 7
    t.progress[1].match, t.progress[2].match, t.progress[4].match = 9, 8, 9
    assert t.committed() == 8  # the learner does not count
    t.set_config(ConfState((1, 2), ()), last_index=9)
    assert t.ids() == [1, 2] and t.conf_state() == ConfState((1, 2), ())
    t.record_vote(2, False)
    t.record_vote(2, True)  # the first vote counts
    t.record_vote(1, True)
    assert t.tally_votes()[:2] == (1, 1)
    t.progress[2].recent_active = False
    t.progress[1].recent_active = True
    assert not t.quorum_active()
    assert not t.is_singleton()
