"""Stable one-line text for Raft values, in etcd-io/raft's format.

Golden scenario files (tests/scenarios/raft) are made of this text, so every diff reads as a
protocol trace, e.g. `1->2 MsgApp Term:1 Log:1/10 Commit:10 Entries:[1/11 EntryNormal "foo"]`.
Changing a format here changes every golden file: do it deliberately.
"""

from __future__ import annotations

from raft.ready import Ready
from raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    ReadState,
    Snapshot,
    SoftState,
)

_CC_PREFIX = {
    ConfChangeType.ADD_NODE: "v",
    ConfChangeType.ADD_LEARNER_NODE: "l",
    ConfChangeType.REMOVE_NODE: "r",
}


def _quote(data: bytes) -> str:
    return '"' + data.decode("utf-8", "backslashreplace").replace('"', '\\"') + '"'


def describe_conf_change(cc: ConfChange) -> str:
    return f"{_CC_PREFIX[cc.type]}{cc.node_id}"


def describe_entry(e: Entry) -> str:
    if e.type is EntryType.CONF_CHANGE:
        try:
            payload = describe_conf_change(ConfChange.unmarshal(e.data))
        except ValueError:
            payload = _quote(e.data)
    else:
        payload = _quote(e.data)
    return f"{e.term}/{e.index} {e.type.value} {payload}"


def describe_conf_state(cs: ConfState) -> str:
    voters = " ".join(str(v) for v in cs.voters)
    learners = " ".join(str(v) for v in cs.learners)
    return f"Voters:[{voters}] Learners:[{learners}]"


def describe_snapshot(s: Snapshot) -> str:
    m = s.metadata
    return f"Index:{m.index} Term:{m.term} ConfState:{describe_conf_state(m.conf_state)}"


def describe_hard_state(hs: HardState) -> str:
    return f"HardState Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}"


def describe_soft_state(ss: SoftState) -> str:
    return f"Lead:{ss.lead} State:{ss.raft_state.value}"


def describe_read_state(rs: ReadState) -> str:
    return f"ReadState Index:{rs.index} RequestCtx:{_quote(rs.request_ctx)}"


def describe_message(m: Message) -> str:
    out = f"{m.from_}->{m.to} {m.type.value} Term:{m.term} Log:{m.log_term}/{m.index}"
    if m.reject:
        out += f" Rejected (Hint: {m.reject_hint})"
    if m.commit:
        out += f" Commit:{m.commit}"
    if m.entries:
        out += " Entries:[" + ", ".join(describe_entry(e) for e in m.entries) + "]"
    if m.snapshot is not None:
        out += f" Snapshot: {describe_snapshot(m.snapshot)}"
    if m.context:
        out += f" Context:{_quote(m.context)}"
    return out


def describe_ready(rd: Ready) -> str:
    """Multi-line description of a Ready, one section per non-empty field."""
    if rd.is_empty:
        return "<empty Ready>"
    lines = [f"Ready MustSync={str(rd.must_sync).lower()}:"]
    if rd.soft_state is not None:
        lines.append(describe_soft_state(rd.soft_state))
    if rd.hard_state is not None:
        lines.append(describe_hard_state(rd.hard_state))
    if rd.entries:
        lines.append("Entries:")
        lines.extend(describe_entry(e) for e in rd.entries)
    if rd.snapshot is not None:
        lines.append(f"Snapshot {describe_snapshot(rd.snapshot)}")
    if rd.committed_entries:
        lines.append("CommittedEntries:")
        lines.extend(describe_entry(e) for e in rd.committed_entries)
    if rd.messages:
        lines.append("Messages:")
        lines.extend(describe_message(m) for m in rd.messages)
    if rd.read_states:
        lines.append("ReadStates:")
        lines.extend(describe_read_state(rs) for rs in rd.read_states)
    return "\n".join(lines)
