"""RawNode: the public API, the Ready/advance contract, restart and determinism."""

from __future__ import annotations

import dataclasses
import random

import pytest

from raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDroppedError,
    RawNode,
    ReadOnlyOption,
    ReadState,
    ReadyNotAdvancedError,
    Snapshot,
    SnapshotMetadata,
    StateType,
    StepLocalMsgError,
    StepPeerNotFoundError,
    describe_ready,
)

from .helpers import handle_ready, new_raw_node, new_storage


def _single() -> tuple[RawNode, MemoryStorage]:
    node, s = new_raw_node(1, (1,))
    node.campaign()
    handle_ready(node, s)
    return node, s


def test_config_validation() -> None:
    rng = random.Random(1)
    for bad in (
        Config(id=0, rng=rng),
        Config(id=1, rng=rng, heartbeat_ticks=0),
        Config(id=1, rng=rng, election_ticks=1, heartbeat_ticks=1),
        Config(id=1, rng=rng, max_inflight_msgs=0),
        Config(id=1, rng=rng, read_only_option=ReadOnlyOption.LEASE_BASED),
    ):
        with pytest.raises(ValueError):
            RawNode(bad, MemoryStorage())


def test_single_node_campaign_propose_and_read() -> None:
    node, s = _single()
    assert node.status().soft_state.raft_state is StateType.LEADER
    node.propose(b"a")
    node.propose_batch([b"b", b"c"])
    node.propose_batch([])
    node.read_index(b"ctx")
    assert node.has_ready()
    rd = handle_ready(node, s)
    assert [e.data for e in rd.committed_entries] == [b"a", b"b", b"c"]
    assert rd.read_states == [ReadState(5, b"ctx")]
    assert rd.must_sync and rd.hard_state == HardState(1, 1, 5)
    assert not node.has_ready()
    st = node.status()
    assert (st.applied, st.progress[1].match) == (5, 5)


def test_ready_twice_without_advance_is_refused() -> None:
    node, s = _single()
    node.propose(b"a")
    rd = node.ready()
    assert not node.has_ready()
    with pytest.raises(ReadyNotAdvancedError):
        node.ready()
    with pytest.raises(ValueError):
        node.advance(dataclasses.replace(rd))
    s.append(rd.entries)
    node.advance(rd)
    assert not node.has_ready()
    assert describe_ready(node.ready()) == "<empty Ready>"


def test_step_rejects_local_and_unknown_peer_messages() -> None:
    node, _ = new_raw_node(1)
    with pytest.raises(StepLocalMsgError):
        node.step(Message(MessageType.HUP, from_=1))
    with pytest.raises(StepPeerNotFoundError):
        node.step(Message(MessageType.APP_RESP, from_=9, to=1, term=1))


def test_proposals_dropped_without_leader() -> None:
    node, _ = new_raw_node(1)
    with pytest.raises(ProposalDroppedError):
        node.propose(b"x")
    # A proposal forwarded by a peer is dropped silently.
    node.step(Message(MessageType.PROP, from_=2, to=1, entries=[Entry(0, 0, data=b"y")]))


def _three() -> tuple[dict[int, RawNode], dict[int, MemoryStorage]]:
    nodes, stores = {}, {}
    for i in (1, 2, 3):
        nodes[i], stores[i] = new_raw_node(i)
    return nodes, stores


def _stabilize(nodes: dict[int, RawNode], stores: dict[int, MemoryStorage]) -> list[str]:
    trace: list[str] = []
    for _ in range(100):
        msgs: list[Message] = []
        for i, n in nodes.items():
            if n.has_ready():
                rd = handle_ready(n, stores[i])
                trace.append(f"{i}: {describe_ready(rd)}")
                for e in rd.committed_entries:
                    if e.type is EntryType.CONF_CHANGE:
                        n.apply_conf_change(ConfChange.unmarshal(e.data))
                msgs.extend(rd.messages)
        if not msgs and not any(n.has_ready() for n in nodes.values()):
            return trace
        for m in msgs:
            if m.to in nodes:
                try:
                    nodes[m.to].step(m)
                except StepPeerNotFoundError:
                    pass
    raise AssertionError("no convergence")


def test_three_nodes_replicate_and_restart() -> None:
    nodes, stores = _three()
    nodes[1].campaign()
    _stabilize(nodes, stores)
    for i in range(5):
        nodes[1].propose(f"v{i}".encode())
    _stabilize(nodes, stores)
    assert {stores[i].last_index() for i in nodes} == {7}
    # Restart node 2 from what it persisted; it keeps term, vote and commit.
    before = nodes[2].status()
    nodes[2] = RawNode(Config(id=2, rng=random.Random(2), applied=7), stores[2])
    after = nodes[2].status()
    assert after.hard_state == before.hard_state
    assert after.applied == 7 and not nodes[2].has_ready()
    # Restarting with an older applied index re-delivers committed entries.
    n = RawNode(Config(id=2, rng=random.Random(2), applied=4), stores[2])
    assert n.has_ready()
    rd = n.ready()
    assert [e.index for e in rd.committed_entries] == [5, 6, 7]
    nodes[1].propose(b"after")
    _stabilize(nodes, stores)
    assert stores[2].last_index() == 8


def test_same_seed_same_trace() -> None:
    def run(seed: int) -> list[str]:
        nodes = {}
        stores = {}
        for i in (1, 2, 3):
            stores[i] = new_storage((1, 2, 3), index=1, term=1)
            nodes[i] = RawNode(Config(id=i, rng=random.Random(seed * 10 + i)), stores[i])
        trace = []
        for tick in range(40):
            for n in nodes.values():
                n.tick()
            trace += _stabilize(nodes, stores)
            if tick % 7 == 0:
                for n in nodes.values():
                    if n.status().soft_state.raft_state is StateType.LEADER:
                        n.propose(b"t%d" % tick)
        return trace

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_conf_change_api_and_status() -> None:
    nodes, stores = _three()
    nodes[1].campaign()
    _stabilize(nodes, stores)
    nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    _stabilize(nodes, stores)
    st = nodes[1].status()
    assert st.conf_state == ConfState((1, 2, 3), (4,))
    assert st.progress[4].is_learner
    assert nodes[2].status().progress == {}
    assert nodes[1].id == 1


def test_transfer_leader_and_reports() -> None:
    nodes, stores = _three()
    nodes[1].campaign()
    _stabilize(nodes, stores)
    nodes[1].report_unreachable(2)
    assert nodes[1].status().progress[2].state.value == "StateProbe"
    nodes[1].report_snapshot(2, True)  # not in snapshot state: ignored
    nodes[1].transfer_leader(3)
    _stabilize(nodes, stores)
    assert nodes[3].status().soft_state.raft_state is StateType.LEADER


def test_snapshot_in_ready_sets_applied() -> None:
    node, s = new_raw_node(2, (1, 2))
    snap_msg = Message(
        MessageType.SNAP,
        to=2,
        from_=1,
        term=3,
        snapshot=Snapshot(SnapshotMetadata(10, 3, ConfState((1, 2)))),
    )
    node.step(snap_msg)
    rd = handle_ready(node, s)
    assert rd.snapshot is not None and rd.must_sync
    assert node.status().applied == 10
    assert s.first_index() == 11


def test_local_proposal_drop_is_raised_through_step() -> None:
    node, _ = new_raw_node(1)
    with pytest.raises(ProposalDroppedError):
        node.step(Message(MessageType.PROP, entries=[Entry(0, 0, data=b"x")]))


def test_has_ready_on_soft_state_change_alone() -> None:
    node, s = _single()
    node._raft.become_follower(node._raft.term, 0)  # stepped down, nothing else changed
    assert node.has_ready()
    rd = handle_ready(node, s)
    assert rd.soft_state is not None and rd.hard_state is None


def test_restart_with_applied_beyond_persisted_commit() -> None:
    """A commit-only HardState is written without fsync, so after a crash the durable
    commit index can be below what the state machine already applied: applied entries were
    committed, so the node restarts with commit = applied."""
    s = new_storage((1, 2, 3), index=1, term=1)
    s.append([Entry(1, 2, data=b"a"), Entry(1, 3, data=b"b")])
    s.set_hard_state(HardState(term=1, vote=1, commit=1))
    node = RawNode(Config(id=1, rng=random.Random(1), applied=3), s)
    st = node.status()
    assert (st.hard_state.commit, st.applied) == (3, 3)
    assert not node.has_ready() or node.ready().committed_entries == ()
    with pytest.raises(Exception, match="after the last index"):
        RawNode(Config(id=1, rng=random.Random(1), applied=4), s)


def test_propose_batch_without_leader_is_dropped_and_on_follower_forwarded() -> None:
    node, s = new_raw_node(2)
    with pytest.raises(ProposalDroppedError):
        node.propose_batch([b"a", b"b"])
    node.step(Message(MessageType.HEARTBEAT, to=2, from_=1, term=1))
    node.propose_batch([b"a", b"b"])
    rd = handle_ready(node, s)
    fwd = [m for m in rd.messages if m.type is MessageType.PROP]
    assert [(m.to, [e.data for e in m.entries]) for m in fwd] == [(1, [b"a", b"b"])]
