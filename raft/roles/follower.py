"""Follower role: accept the leader's log, forward client requests to the leader.

The handlers for MsgApp, MsgHeartbeat and MsgSnap live here and are shared with the
candidate role (a candidate that hears from a leader of its term becomes its follower).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raft.errors import invariant
from raft.types import (
    CAMPAIGN_TRANSFER,
    MSG_APP,
    MSG_APP_RESP,
    MSG_HEARTBEAT,
    MSG_HEARTBEAT_RESP,
    MSG_PROP,
    MSG_READ_INDEX,
    MSG_READ_INDEX_RESP,
    MSG_SNAP,
    MSG_TIMEOUT_NOW,
    MSG_TRANSFER_LEADER,
    NONE,
    STATE_FOLLOWER,
    Message,
    ReadState,
    Snapshot,
)

if TYPE_CHECKING:
    from raft.core import Raft


def step_follower(r: Raft, m: Message) -> None:
    t = m.type
    if t is MSG_APP:
        r.election_elapsed = 0
        r.lead = m.from_
        handle_append_entries(r, m)
    elif t is MSG_HEARTBEAT:
        r.election_elapsed = 0
        r.lead = m.from_
        handle_heartbeat(r, m)
    elif t is MSG_SNAP:
        r.election_elapsed = 0
        r.lead = m.from_
        handle_snapshot(r, m)
    elif t is MSG_PROP:
        if r.lead == NONE:
            r.drop_proposal("no leader")
        elif r.config.disable_proposal_forwarding:
            r.drop_proposal("proposal forwarding is disabled")
        r.send(_forward(m, r))
    elif t is MSG_TRANSFER_LEADER:
        if r.lead != NONE:
            r.send(_forward(m, r))
    elif t is MSG_TIMEOUT_NOW:
        # The leader hands us leadership: campaign at once, bypassing pre-vote and leases.
        r.hup(CAMPAIGN_TRANSFER)
    elif t is MSG_READ_INDEX:
        if r.lead != NONE:
            r.send(_forward(m, r))
    elif t is MSG_READ_INDEX_RESP:
        if len(m.entries) == 1:
            r.read_states.append(ReadState(m.index, m.entries[0].data))


def _forward(m: Message, r: Raft) -> Message:
    # Forwarded requests keep term 0: the leader treats them as local requests.
    return Message(
        m.type,
        to=r.lead,
        from_=m.from_ if m.type is MSG_TRANSFER_LEADER else r.id,
        entries=m.entries,
        context=m.context,
    )


def handle_append_entries(r: Raft, m: Message) -> None:
    log = r.raft_log
    if m.index < log.committed:
        # Already committed here: acknowledge our commit so the leader moves next forward.
        r.send(Message(MSG_APP_RESP, to=m.from_, from_=r.id, term=r.term, index=log.committed))
        return
    last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
    if last_new is not None:
        # Positional (type, to, from_, term, log_term, index): the hot path of a follower.
        r.msgs.append(Message(MSG_APP_RESP, m.from_, r.id, r.term, 0, last_new))
        return
    # Raft §5.3 consistency check failed. Hint the leader with the last index whose term is
    # <= the term it probed with, so it can skip a whole divergent term per round trip.
    hint_index = min(m.index, log.last_index())
    hint_index, hint_term = log.find_conflict_by_term(hint_index, m.log_term)
    r.send(
        Message(
            MSG_APP_RESP,
            to=m.from_,
            from_=r.id,
            term=r.term,
            index=m.index,
            reject=True,
            reject_hint=hint_index,
            log_term=hint_term,
        )
    )


def handle_heartbeat(r: Raft, m: Message) -> None:
    # The leader sends min(match, commit), so this never passes our last index.
    r.raft_log.commit_to(m.commit)
    r.send(
        Message(MSG_HEARTBEAT_RESP, to=m.from_, from_=r.id, term=r.term, context=m.context)
    )


def handle_snapshot(r: Raft, m: Message) -> None:
    snapshot = m.snapshot
    if snapshot is not None and restore(r, snapshot):
        index = r.raft_log.last_index()
    else:
        index = r.raft_log.committed
    r.send(Message(MSG_APP_RESP, to=m.from_, from_=r.id, term=r.term, index=index))


def restore(r: Raft, s: Snapshot) -> bool:
    """Install a snapshot from the leader; False when it brings nothing new."""
    log = r.raft_log
    meta = s.metadata
    if meta.index <= log.committed:
        return False
    # Candidates become followers before handling a MsgSnap and a leader never gets one
    # for its own term (one leader per term), so only followers reach this point.
    invariant(r.state is STATE_FOLLOWER, "only followers restore snapshots")
    cs = meta.conf_state
    if r.id not in cs.voters and r.id not in cs.learners:
        # A snapshot from a config we are not part of: ignore it.
        return False
    if log.match_term(meta.index, meta.term):
        # We already have the snapshot's last entry: just fast-forward the commit index.
        log.commit_to(meta.index)
        return False
    log.restore(s)
    r.trk.progress.clear()
    r.switch_to_config(cs)
    r.trk.progress[r.id].maybe_update(log.last_index())
    return True
