"""core.Raft and the role step functions: the edge cases the paper tests do not reach."""

from __future__ import annotations

import pytest

from raft.confchange import decode as decode_conf_change
from raft.core import Raft
from raft.errors import ProposalDroppedError
from raft.roles import leader
from raft.types import (
    CAMPAIGN_TRANSFER,
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProgressState,
    Snapshot,
    SnapshotMetadata,
    StateType,
)

from .helpers import Network, ents, new_raft, new_storage, read_messages

M = MessageType


def _leader(r: Raft) -> Raft:
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    return r


def _ack_all(r: Raft) -> None:
    li = r.raft_log.last_index()
    for id in r.trk.ids():
        if id != r.id:
            r.step(Message(M.APP_RESP, to=r.id, from_=id, term=r.term, index=li))
    read_messages(r)


def _prop(data: bytes = b"x", type: EntryType = EntryType.NORMAL) -> Message:
    return Message(M.PROP, from_=1, entries=[Entry(0, 0, type, data)])


def _cc(kind: ConfChangeType, id: int) -> Message:
    return _prop(ConfChange(kind, id).marshal(), EntryType.CONF_CHANGE)


# ---------------------------------------------------------------- ticks and elections


def test_heartbeat_every_heartbeat_ticks() -> None:
    r = _leader(new_raft(1, heartbeat_ticks=2))
    r.tick()
    assert read_messages(r) == []
    r.tick()
    assert {m.type for m in read_messages(r)} == {M.HEARTBEAT}


def test_stale_pre_vote_is_rejected_with_our_term() -> None:
    r = new_raft(1, pre_vote=True)
    r.become_follower(5, NONE)
    r.step(Message(M.PRE_VOTE, to=1, from_=2, term=3))
    (m,) = read_messages(r)
    assert (m.type, m.term, m.reject) == (M.PRE_VOTE_RESP, 5, True)


def test_leader_ignores_hup() -> None:
    r = _leader(new_raft(1))
    term = r.term
    r.step(Message(M.HUP, from_=1))
    assert (r.state, r.term) == (StateType.LEADER, term)


def test_no_campaign_with_unapplied_conf_change() -> None:
    cc = Entry(1, 2, EntryType.CONF_CHANGE, ConfChange(ConfChangeType.REMOVE_NODE, 3).marshal())
    s = new_storage((1, 2, 3), entries=[Entry(1, 1), cc, Entry(1, 3)], hard_state=HardState(1, 0, 3))
    r = new_raft(1, storage=s, applied=1)
    r.step(Message(M.HUP, from_=1))
    assert r.state is StateType.FOLLOWER
    r.raft_log.applied_to(2)  # the change is applied: only a normal entry remains
    r.step(Message(M.HUP, from_=1))
    assert r.state is StateType.CANDIDATE


def test_single_voter_pre_vote_wins_at_once() -> None:
    r = new_raft(1, (1,), pre_vote=True)
    r.step(Message(M.HUP, from_=1))
    assert (r.state, r.term) == (StateType.LEADER, 1)


def test_pre_vote_does_not_bump_terms_and_lease_ignores_votes() -> None:
    net = Network.of(3, pre_vote=True, check_quorum=True)
    net.campaign(1)
    assert net.peers[1].state is StateType.LEADER
    term = net.peers[1].term
    net.isolate(3)
    for _ in range(40):
        net.peers[3].tick()
        net.send(read_messages(net.peers[3]))
    assert net.peers[3].term == term  # pre-votes were never answered
    net.recover()
    # Within their lease, 1 and 2 ignore a forced-looking vote at a higher term.
    net.send([Message(M.VOTE, to=2, from_=3, term=term + 5, index=99, log_term=99)])
    assert net.peers[2].term == term
    # A leadership-transfer vote bypasses the lease.
    net.peers[2].step(
        Message(M.VOTE, to=2, from_=3, term=term + 5, index=99, log_term=99, context=CAMPAIGN_TRANSFER)
    )
    assert net.peers[2].term == term + 5


def test_stale_granted_pre_vote_response_is_ignored() -> None:
    r = new_raft(1, pre_vote=True)
    r.step(Message(M.HUP, from_=1))
    assert r.state is StateType.PRE_CANDIDATE
    # A real vote response does not count for a pre-candidate.
    r.step(Message(M.VOTE_RESP, to=1, from_=2, term=0))
    assert r.state is StateType.PRE_CANDIDATE
    r.step(Message(M.PRE_VOTE_RESP, to=1, from_=2, term=1))
    assert (r.state, r.term) == (StateType.CANDIDATE, 1)


def test_candidate_drops_proposals_and_accepts_snapshot() -> None:
    r = new_raft(2)
    r.step(Message(M.HUP, from_=2))
    with pytest.raises(ProposalDroppedError):
        r.step(_prop())
    snap = Snapshot(SnapshotMetadata(5, 1, ConfState((1, 2, 3))))
    r.step(Message(M.SNAP, to=2, from_=1, term=r.term, snapshot=snap))
    assert (r.state, r.lead, r.raft_log.committed) == (StateType.FOLLOWER, 1, 5)


def test_candidate_ignores_timeout_now() -> None:
    r = new_raft(1)
    r.step(Message(M.HUP, from_=1))
    r.step(Message(M.TIMEOUT_NOW, to=1, from_=2, term=r.term))
    assert r.state is StateType.CANDIDATE


# ---------------------------------------------------------------------- follower


def test_follower_forwards_or_drops() -> None:
    r = new_raft(2)
    with pytest.raises(ProposalDroppedError):
        r.step(_prop())
    r.step(Message(M.TRANSFER_LEADER, from_=3))  # no leader: ignored
    r.step(Message(M.READ_INDEX, entries=[Entry(0, 0, data=b"c")]))  # no leader: ignored
    assert read_messages(r) == []
    r.become_follower(1, 1)
    r.step(_prop())
    r.step(Message(M.TRANSFER_LEADER, from_=3))
    r.step(Message(M.READ_INDEX, entries=[Entry(0, 0, data=b"c")]))
    msgs = read_messages(r)
    assert [(m.type, m.to, m.from_, m.term) for m in msgs] == [
        (M.PROP, 1, 2, 0),
        (M.TRANSFER_LEADER, 1, 3, 0),
        (M.READ_INDEX, 1, 2, 0),
    ]
    # A malformed MsgReadIndexResp (no context entry) is ignored.
    r.step(Message(M.READ_INDEX_RESP, to=2, from_=1, term=1, index=3))
    assert r.read_states == []


def test_follower_without_forwarding_drops_proposals() -> None:
    r = new_raft(2, disable_proposal_forwarding=True)
    r.become_follower(1, 1)
    with pytest.raises(ProposalDroppedError):
        r.step(_prop())


def test_follower_acks_commit_for_old_append() -> None:
    r = new_raft(2, storage=new_storage((1, 2, 3), entries=ents(1, 1, 1)))
    r.become_follower(1, 1)
    r.raft_log.commit_to(3)
    r.step(Message(M.APP, to=2, from_=1, term=1, index=1, log_term=1, entries=ents(1, start=2)))
    (m,) = read_messages(r)
    assert (m.type, m.index, m.reject) == (M.APP_RESP, 3, False)


def test_follower_learner_does_not_campaign_on_timeout_now() -> None:
    r = new_raft(4, learners=(4,))
    r.become_follower(1, 1)
    r.step(Message(M.TIMEOUT_NOW, to=4, from_=1, term=1))
    assert r.state is StateType.FOLLOWER


@pytest.mark.parametrize(
    ("index", "term", "conf", "want_commit", "restored"),
    [
        (2, 1, (1, 2, 3), 3, False),  # not newer than our commit
        (9, 1, (1, 3), 3, False),  # we are not in its config
        (4, 1, (1, 2, 3), 4, False),  # we have its last entry: fast-forward only
        (9, 2, (1, 2, 3), 9, True),
    ],
)
def test_follower_snapshot_handling(
    index: int, term: int, conf: tuple[int, ...], want_commit: int, restored: bool
) -> None:
    r = new_raft(2, storage=new_storage((1, 2, 3), entries=ents(1, 1, 1, 1, 1)))
    r.become_follower(2, 1)
    r.raft_log.commit_to(3)
    snap = Snapshot(SnapshotMetadata(index, term, ConfState(conf)))
    r.step(Message(M.SNAP, to=2, from_=1, term=2, snapshot=snap))
    (m,) = read_messages(r)
    assert r.raft_log.committed == want_commit
    assert m.index == (index if restored else want_commit)
    assert (r.raft_log.unstable.snapshot is not None) is restored


# ------------------------------------------------------------------------ leader


def test_leader_ignores_messages_from_unknown_peers() -> None:
    r = _leader(new_raft(1))
    r.step(Message(M.APP_RESP, to=1, from_=9, term=r.term, index=5))
    assert read_messages(r) == []


def test_check_quorum_steps_down_without_responses() -> None:
    r = _leader(new_raft(1, check_quorum=True))
    r.step(Message(M.HEARTBEAT_RESP, to=1, from_=2, term=r.term))
    for _ in range(r.election_timeout):
        r.tick()
    assert r.state is StateType.LEADER  # heard from 2: with itself a quorum of 3
    for _ in range(r.election_timeout):
        r.tick()
    assert r.state is StateType.FOLLOWER


def test_heartbeat_response_frees_a_full_window() -> None:
    r = _leader(new_raft(1, (1, 2), max_inflight_msgs=1))
    _ack_all(r)
    pr = r.trk.progress[2]
    r.step(_prop())
    leader.flush(r)
    assert pr.state is ProgressState.REPLICATE and pr.is_paused()
    read_messages(r)  # the MsgApp is lost
    r.step(Message(M.HEARTBEAT_RESP, to=1, from_=2, term=r.term))
    (m,) = read_messages(r)
    assert m.type is M.APP  # resent after the window was freed


def test_snapshot_status_and_unreachable() -> None:
    r = _leader(new_raft(1))
    pr = r.trk.progress[2]
    r.step(Message(M.UNREACHABLE, from_=2))  # probing already: no change
    assert pr.state is ProgressState.PROBE
    pr.become_snapshot(7)
    r.step(Message(M.SNAP_STATUS, from_=2, reject=True))
    assert (pr.state, pr.next, pr.probe_sent) == (ProgressState.PROBE, pr.match + 1, True)
    pr.become_snapshot(7)
    r.step(Message(M.SNAP_STATUS, from_=2))
    assert (pr.state, pr.next) == (ProgressState.PROBE, 8)


def test_stale_ack_in_snapshot_state_keeps_waiting() -> None:
    s = new_storage((1, 2, 3), index=10, term=1)
    r = _leader(new_raft(1, storage=s))
    pr = r.trk.progress[2]
    pr.become_snapshot(10)
    r.step(Message(M.APP_RESP, to=1, from_=2, term=r.term, index=3))
    assert pr.state is ProgressState.SNAPSHOT and pr.match == 3


def test_stale_rejection_is_ignored() -> None:
    r = _leader(new_raft(1))
    _ack_all(r)
    r.step(Message(M.APP_RESP, to=1, from_=2, term=r.term, index=0, reject=True))
    assert read_messages(r) == []


def test_leader_drops_proposals_when_removed_or_over_limit() -> None:
    r = _leader(new_raft(1, max_uncommitted_entries_size=10))
    r.step(_prop(b"12345678"))
    with pytest.raises(ProposalDroppedError):
        r.step(_prop(b"123"))
    r.trk.set_config(ConfState((2, 3)), last_index=r.raft_log.last_index())
    with pytest.raises(ProposalDroppedError):
        r.step(_prop())


def test_malformed_or_invalid_conf_change_becomes_empty_entry() -> None:
    r = _leader(new_raft(1, (1,)))
    r.step(_prop(b"\x09garbage", EntryType.CONF_CHANGE))
    r.raft_log.applied_to(r.raft_log.committed)
    r.step(_cc(ConfChangeType.REMOVE_NODE, 1))  # would remove the last voter
    last = r.raft_log.all_entries()[-2:]
    assert [(e.type, e.data) for e in last] == [(EntryType.NORMAL, b"")] * 2
    assert decode_conf_change(Entry(1, 1, EntryType.CONF_CHANGE, b"")) is None


def test_removing_a_lagging_voter_commits() -> None:
    r = _leader(new_raft(1, (1, 2, 3)))
    r.step(Message(M.APP_RESP, to=1, from_=2, term=r.term, index=r.raft_log.last_index()))
    r.step(_prop())
    assert r.raft_log.committed == 1
    read_messages(r)
    # Nodes 2 and 3 are gone; removing 3 leaves {1, 2}, still needing 2's ack. Removing 2
    # too leaves {1}: everything commits at once and the followers are told.
    r.apply_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))
    assert r.raft_log.committed == 1
    r.apply_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 2))
    assert r.raft_log.committed == 2


def test_removed_leader_steps_down_when_asked() -> None:
    r = _leader(new_raft(1, step_down_on_removal=True))
    r.apply_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    assert r.state is StateType.FOLLOWER
    r2 = _leader(new_raft(1))
    r2.apply_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 1))
    assert r2.state is StateType.LEADER and r2.is_learner


def test_transfer_leader_edge_cases() -> None:
    r = _leader(new_raft(1, (1, 2, 3), learners=(4,)))
    r.step(Message(M.TRANSFER_LEADER, from_=4))  # a learner cannot lead
    r.step(Message(M.TRANSFER_LEADER, from_=1))  # already leader
    assert r.lead_transferee == NONE
    r.step(Message(M.TRANSFER_LEADER, from_=2))
    assert r.lead_transferee == 2
    read_messages(r)
    r.step(Message(M.TRANSFER_LEADER, from_=2))  # same transfer: nothing new
    assert read_messages(r) == []
    r.step(Message(M.TRANSFER_LEADER, from_=3))  # another target replaces it
    assert r.lead_transferee == 3
    # Removing the transferee aborts the transfer.
    r.apply_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))
    assert r.lead_transferee == NONE


def test_no_snapshot_to_inactive_peer() -> None:
    s = new_storage((1, 2, 3), index=10, term=1)
    r = _leader(new_raft(1, storage=s))
    pr = r.trk.progress[2]
    pr.next = 5  # needs compacted entries
    pr.recent_active = False
    assert not leader.maybe_send_append(r, 2, send_if_empty=True)
    pr.recent_active = True
    assert leader.maybe_send_append(r, 2, send_if_empty=True)
    assert read_messages(r)[-1].type is M.SNAP


def test_follower_ignores_leader_only_messages() -> None:
    r = new_raft(2)
    r.become_follower(1, 1)
    r.step(Message(M.HEARTBEAT_RESP, to=2, from_=3, term=1))
    r.step(Message(M.APP_RESP, to=2, from_=3, term=1, index=4))
    assert read_messages(r) == [] and r.state is StateType.FOLLOWER
