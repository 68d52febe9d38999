"""describe.py: the stable text of golden files."""

from __future__ import annotations

from raft.describe import (
    describe_entry,
    describe_hard_state,
    describe_message,
    describe_ready,
    describe_snapshot,
    describe_soft_state,
)
from raft.ready import Ready
from raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateType,
)


def test_entry() -> None:
    assert describe_entry(Entry(1, 11, data=b"foo")) == '1/11 EntryNormal "foo"'
    cc = ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4).marshal()
    assert describe_entry(Entry(2, 3, EntryType.CONF_CHANGE, cc)) == "2/3 EntryConfChange l4"
    assert describe_entry(Entry(2, 3, EntryType.CONF_CHANGE, b"??")) == '2/3 EntryConfChange "??"'
    assert describe_entry(Entry(1, 1, data=b'a"\xff')) == '1/1 EntryNormal "a\\"\\xff"'


def test_message() -> None:
    m = Message(
        MessageType.APP, to=2, from_=1, term=1, log_term=1, index=10, commit=10,
        entries=[Entry(1, 11, data=b"foo")],
    )
    assert describe_message(m) == '1->2 MsgApp Term:1 Log:1/10 Commit:10 Entries:[1/11 EntryNormal "foo"]'
    r = Message(MessageType.APP_RESP, to=1, from_=2, term=1, log_term=1, index=11, reject=True, reject_hint=10)
    assert describe_message(r) == "2->1 MsgAppResp Term:1 Log:1/11 Rejected (Hint: 10)"
    snap = Snapshot(SnapshotMetadata(5, 2, ConfState((1, 2), (3,))))
    s = Message(MessageType.SNAP, to=3, from_=1, term=2, snapshot=snap)
    assert describe_message(s) == (
        "1->3 MsgSnap Term:2 Log:0/0 Snapshot: Index:5 Term:2 ConfState:Voters:[1 2] Learners:[3]"
    )
    h = Message(MessageType.HEARTBEAT, to=2, from_=1, term=3, context=b"rd")
    assert describe_message(h) == '1->2 MsgHeartbeat Term:3 Log:0/0 Context:"rd"'


def test_states_and_ready() -> None:
    assert describe_hard_state(HardState(2, 1, 7)) == "HardState Term:2 Vote:1 Commit:7"
    assert describe_soft_state(SoftState(1, StateType.LEADER)) == "Lead:1 State:StateLeader"
    snap = Snapshot(SnapshotMetadata(5, 2, ConfState((1,))))
    assert describe_snapshot(snap) == "Index:5 Term:2 ConfState:Voters:[1] Learners:[]"
    rd = Ready(
        soft_state=SoftState(1, StateType.LEADER),
        hard_state=HardState(2, 1, 7),
        entries=[Entry(2, 8)],
        snapshot=snap,
        committed_entries=[Entry(2, 7)],
        messages=[Message(MessageType.HEARTBEAT, to=2, from_=1, term=2)],
        read_states=[ReadState(7, b"x")],
        must_sync=True,
    )
    assert describe_ready(rd).split("\n") == [
        "Ready MustSync=true:",
        "Lead:1 State:StateLeader",
        "HardState Term:2 Vote:1 Commit:7",
        "Entries:",
        '2/8 EntryNormal ""',
        "Snapshot Index:5 Term:2 ConfState:Voters:[1] Learners:[]",
        "CommittedEntries:",
        '2/7 EntryNormal ""',
        "Messages:",
        "1->2 MsgHeartbeat Term:2 Log:0/0",
        "ReadStates:",
        'ReadState Index:7 RequestCtx:"x"',
    ]
    empty = Ready(None, None, (), None, (), (), (), False)
    assert empty.is_empty and describe_ready(empty) == "<empty Ready>"
