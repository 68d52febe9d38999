"""Leader role: replication, commit, heartbeats, ReadIndex, leadership transfer.

Replication to each follower is driven by its Progress (raft/progress.py): a MsgApp carries
the entries from `next` within `max_size_per_msg_bytes`; when those are compacted the
follower gets a MsgSnap instead. The commit index advances only when a quorum of voters
matches an entry of the current term (Raft §5.4.2); earlier entries commit with it.

ReadIndex (Raft thesis §6.4): a read records the commit index, then one heartbeat round
carrying the read's context proves that we were still leader when it arrived. Until the
leader has committed an entry of its own term it does not know the latest commit index, so
reads wait in `pending_read_index_messages` and are released together, sharing one round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from raft import confchange
from raft.errors import SnapshotTemporarilyUnavailableError, invariant
from raft.types import (
    ENTRY_CONF_CHANGE,
    ENTRY_NORMAL,
    MSG_APP,
    MSG_APP_RESP,
    MSG_BEAT,
    MSG_CHECK_QUORUM,
    MSG_HEARTBEAT,
    MSG_HEARTBEAT_RESP,
    MSG_PROP,
    MSG_READ_INDEX,
    MSG_READ_INDEX_RESP,
    MSG_SNAP,
    MSG_SNAP_STATUS,
    MSG_TIMEOUT_NOW,
    MSG_TRANSFER_LEADER,
    MSG_UNREACHABLE,
    NONE,
    PR_PROBE,
    PR_REPLICATE,
    PR_SNAPSHOT,
    READ_LEASE_BASED,
    READ_SAFE,
    STATE_LEADER,
    Entry,
    Message,
    ReadState,
)

if TYPE_CHECKING:
    from raft.core import Raft


def step_leader(r: Raft, m: Message) -> None:
    t = m.type
    if t is MSG_BEAT:
        bcast_heartbeat(r)
        return
    if t is MSG_CHECK_QUORUM:
        if not r.trk.quorum_active():
            # We cannot hear from a quorum: another leader may exist. Step down so clients
            # stop being served by a deposed leader.
            r.become_follower(r.term, NONE)
        for id, other in r.trk.progress.items():
            if id != r.id:
                other.recent_active = False
        return
    if t is MSG_PROP:
        _handle_proposal(r, m)
        return
    if t is MSG_READ_INDEX:
        _handle_read_index(r, m)
        return

    pr = r.trk.progress.get(m.from_)
    if pr is None:
        return
    if t is MSG_APP_RESP:
        pr.recent_active = True
        if m.reject:
            _handle_append_reject(r, m)
            return
        old_paused = pr.is_paused()
        if not (pr.maybe_update(m.index) or (pr.match == m.index and pr.state is PR_PROBE)):
            return
        if pr.state is PR_PROBE:
            pr.become_replicate()
        elif pr.state is PR_SNAPSHOT:
            if pr.match + 1 >= r.raft_log.first_index():
                # The snapshot (or enough of the log) arrived: resume normal replication.
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        if maybe_commit(r):
            release_pending_read_index_messages(r)
            bcast_append(r)
        elif old_paused:
            send_append(r, m.from_)
        # Stream as much as the window allows.
        while maybe_send_append(r, m.from_, send_if_empty=False):
            pass
        if m.from_ == r.lead_transferee and pr.match == r.raft_log.last_index():
            send_timeout_now(r, m.from_)
    elif t is MSG_HEARTBEAT_RESP:
        pr.recent_active = True
        pr.probe_sent = False
        if pr.state is PR_REPLICATE and pr.inflights.full():
            pr.inflights.free_first_one()
        if pr.match < r.raft_log.last_index():
            send_append(r, m.from_)
        if r.read_only.option is not READ_SAFE or not m.context:
            return
        acks = r.read_only.recv_ack(m.from_, m.context)
        if acks is None or not _is_quorum(r, acks):
            return
        for rs in r.read_only.advance(m.context):
            _respond_to_read_index(r, rs.req, rs.index)
    elif t is MSG_SNAP_STATUS:
        if pr.state is not PR_SNAPSHOT:
            return
        if m.reject:
            pr.pending_snapshot = 0
        pr.become_probe()
        # Wait for a heartbeat response (or an append response) before the next probe.
        pr.probe_sent = True
    elif t is MSG_UNREACHABLE:
        # Optimistic replication to an unreachable peer would only lose messages.
        if pr.state is PR_REPLICATE:
            pr.become_probe()
    elif t is MSG_TRANSFER_LEADER:
        _handle_transfer_leader(r, m, pr.is_learner)


def _is_quorum(r: Raft, acks: set[int]) -> bool:
    return sum(1 for v in r.trk.voters if v in acks) >= len(r.trk.voters) // 2 + 1


def _handle_append_reject(r: Raft, m: Message) -> None:
    pr = r.trk.progress[m.from_]
    next_probe = m.reject_hint
    if m.log_term > 0:
        # The follower told us its last index with a term <= the probed term; find where
        # our own log has that term or less, skipping our divergent entries too.
        next_probe, _ = r.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)
    if pr.maybe_decr_to(m.index, next_probe):
        if pr.state is PR_REPLICATE:
            pr.become_probe()
        send_append(r, m.from_)


def _handle_proposal(r: Raft, m: Message) -> None:
    invariant(len(m.entries) > 0, "stepped empty MsgProp")
    if r.id not in r.trk.progress:
        # We were removed from the configuration while leading.
        r.drop_proposal("leader is not a member")
    if r.lead_transferee != NONE:
        r.drop_proposal(f"leadership transfer to {r.lead_transferee} in progress")
    entries: Sequence[Entry] = m.entries
    for i, e in enumerate(m.entries):
        if e.type is not ENTRY_CONF_CHANGE:
            continue
        cc = confchange.decode(e)
        # One change at a time: a change proposed while another is unapplied, or one that
        # is invalid for the current config, becomes an empty entry (etcd does the same),
        # so the proposer sees it committed without effect.
        if (
            r.pending_conf_index > r.raft_log.applied
            or cc is None
            or not confchange.is_valid(r.trk.conf_state(), cc)
        ):
            entries = list(entries)
            entries[i] = Entry(0, 0)
        else:
            r.pending_conf_index = r.raft_log.last_index() + i + 1
    if not append_entry(r, entries):
        r.drop_proposal("too many uncommitted bytes")
    # Replication is deferred to the next Ready (flush_appends): messages only leave through
    # ready(), so many proposals between two Ready batches share one MsgApp per follower.
    r.append_pending = True


def flush(r: Raft) -> None:
    """Called before a Ready is built: send the entries proposed since the last Ready to
    every follower that can take them, and one heartbeat round for the ReadIndex requests
    that arrived since then (they all share it)."""
    if r.append_pending:
        r.append_pending = False
        for id in r.trk.ids():
            if id != r.id:
                while maybe_send_append(r, id, send_if_empty=False):
                    pass
    if r.heartbeat_pending:
        bcast_heartbeat(r)


def propose_local(r: Raft, datas: Sequence[bytes]) -> bool:
    """Fast path for `RawNode.propose`: append normal entries on the leader without building
    a MsgProp, with the same effect as stepping one. Returns False (doing nothing) whenever
    a check of the slow path could apply: not leader, transfer, size limit, not a member."""
    if (
        r.state is not STATE_LEADER
        or r.lead_transferee != NONE
        or r.max_uncommitted_size > 0
        or r.id not in r.trk.progress
    ):
        return False
    log = r.raft_log
    li = log.last_index()
    term = r.term
    normal = ENTRY_NORMAL
    new = [Entry(term, li + 1 + i, normal, d) for i, d in enumerate(datas)]
    log.unstable.truncate_and_append(new)
    r.uncommitted_size += sum(map(len, datas))
    r.trk.progress[r.id].maybe_update(li + len(new))
    if len(r.trk.voters) == 1:
        maybe_commit(r)
    r.append_pending = True
    return True


def append_entry(r: Raft, es: Sequence[Entry]) -> bool:
    log = r.raft_log
    li = log.last_index()
    term = r.term
    ents = [Entry(term, li + 1 + i, e.type, e.data) for i, e in enumerate(es)]
    size = sum(len(e.data) for e in ents)
    if (
        r.max_uncommitted_size > 0
        and size > 0
        and r.uncommitted_size > 0
        and r.uncommitted_size + size > r.max_uncommitted_size
    ):
        return False
    r.uncommitted_size += size
    li = log.append(ents)
    # Counting ourselves before the fsync is safe: the commit index this enables is only
    # sent or applied after the Ready's entries are durable (raft/ready.py).
    r.trk.progress[r.id].maybe_update(li)
    # Followers never match beyond our last index, so our own append can only move the
    # quorum's commit index when we are the only voter.
    if len(r.trk.voters) == 1:
        maybe_commit(r)
    return True


def maybe_commit(r: Raft) -> bool:
    return r.raft_log.maybe_commit(r.trk.committed(), r.term)


def committed_entry_in_current_term(r: Raft) -> bool:
    return r.raft_log.term_or_none(r.raft_log.committed) == r.term


def bcast_append(r: Raft) -> None:
    for id in r.trk.ids():
        if id != r.id:
            maybe_send_append(r, id, send_if_empty=True)  # send_append, one call less


def send_append(r: Raft, to: int) -> None:
    maybe_send_append(r, to, send_if_empty=True)


def maybe_send_append(r: Raft, to: int, *, send_if_empty: bool) -> bool:
    """Send a MsgApp (or a MsgSnap when entries are compacted) to `to`; False if nothing
    was sent (paused, nothing new, or snapshot not ready yet)."""
    pr = r.trk.progress[to]
    log = r.raft_log
    next_index = pr.next
    last_index = log.last_index()
    # Cheapest test first: callers loop on this until it returns False.
    if not send_if_empty and next_index > last_index:
        return False  # nothing new to send
    if pr.is_paused():
        return False
    prev_index = next_index - 1
    prev_term = log.term_or_none(prev_index)
    if prev_term is None:
        # The entries this follower needs are compacted away (or prev_index is before the
        # snapshot point): only a snapshot can catch it up.
        return _send_snapshot(r, to)
    # Non-empty unless send_if_empty (next > last_index was checked above).
    ents = log.slice(next_index, last_index + 1, r.max_msg_size) if next_index <= last_index else []
    if ents:
        if pr.state is PR_REPLICATE:
            last = ents[-1].index
            pr.optimistic_update(last)
            pr.inflights.add(last)
        else:
            pr.probe_sent = True
    # Positional (type, to, from_, term, log_term, index, entries, commit): keywords cost
    # ~0.2 us more per Message and this is the most frequent one.
    r.msgs.append(Message(MSG_APP, to, r.id, r.term, prev_term, prev_index, ents, log.committed))
    return True


def _send_snapshot(r: Raft, to: int) -> bool:
    pr = r.trk.progress[to]
    if not pr.recent_active:
        # Do not ship a snapshot to a peer that may be down; wait until it answers.
        return False
    try:
        snapshot = r.raft_log.snapshot()
    except SnapshotTemporarilyUnavailableError:
        # The application is preparing one; the next heartbeat response retries.
        return False
    invariant(not snapshot.is_empty, "need non-empty snapshot")
    pr.become_snapshot(snapshot.metadata.index)
    r.send(Message(MSG_SNAP, to=to, from_=r.id, term=r.term, snapshot=snapshot))
    return True


def bcast_heartbeat(r: Raft) -> None:
    r.heartbeat_pending = False
    ctx = r.read_only.last_pending_request_ctx()
    for id in r.trk.ids():
        if id != r.id:
            send_heartbeat(r, id, ctx)


def send_heartbeat(r: Raft, to: int, ctx: bytes) -> None:
    # Never tell a follower to commit beyond what it has: it may not have those entries.
    commit = min(r.trk.progress[to].match, r.raft_log.committed)
    r.send(
        Message(MSG_HEARTBEAT, to=to, from_=r.id, term=r.term, commit=commit, context=ctx)
    )


def _handle_read_index(r: Raft, m: Message) -> None:
    if r.trk.is_singleton():
        _respond_to_read_index(r, m, r.raft_log.committed)
        return
    if not committed_entry_in_current_term(r):
        r.pending_read_index_messages.append(m)
        return
    _start_read_index(r, [m])


def _start_read_index(r: Raft, reqs: list[Message]) -> None:
    committed = r.raft_log.committed
    if r.read_only.option is READ_LEASE_BASED:
        for m in reqs:
            _respond_to_read_index(r, m, committed)
        return
    for m in reqs:
        r.read_only.add_request(committed, m)
        r.read_only.recv_ack(r.id, m.entries[0].data)
    # The round goes out with the next Ready (flush): a heartbeat sent after a request
    # arrived proves leadership for it, so requests arriving together share one round.
    r.heartbeat_pending = True


def release_pending_read_index_messages(r: Raft) -> None:
    if not r.pending_read_index_messages or not committed_entry_in_current_term(r):
        return
    reqs = r.pending_read_index_messages
    r.pending_read_index_messages = []
    _start_read_index(r, reqs)


def _respond_to_read_index(r: Raft, req: Message, index: int) -> None:
    if req.from_ in (NONE, r.id):
        r.read_states.append(ReadState(index, req.entries[0].data))
        return
    r.send(
        Message(MSG_READ_INDEX_RESP, to=req.from_, from_=r.id, term=r.term, index=index, entries=req.entries)
    )


def _handle_transfer_leader(r: Raft, m: Message, is_learner: bool) -> None:
    if is_learner:
        return  # a learner cannot lead
    transferee = m.from_
    if r.lead_transferee != NONE:
        if r.lead_transferee == transferee:
            return  # same transfer already in progress
        r.abort_leader_transfer()
    if transferee == r.id:
        return  # already leader
    # The transfer must finish within an election timeout (see tick_heartbeat).
    r.election_elapsed = 0
    r.lead_transferee = transferee
    if r.trk.progress[transferee].match == r.raft_log.last_index():
        send_timeout_now(r, transferee)
    else:
        send_append(r, transferee)


def send_timeout_now(r: Raft, to: int) -> None:
    r.send(Message(MSG_TIMEOUT_NOW, to=to, from_=r.id, term=r.term))
