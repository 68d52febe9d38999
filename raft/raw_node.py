"""RawNode: the public, synchronous face of the Raft core (after etcd-io/raft rawnode.go).

A RawNode owns one `core.Raft` state machine and turns its internal state into `Ready`
batches. It has no thread, no clock and no I/O: the application calls `tick()` on a timer,
`step()` for every message that arrives, `propose*()` / `read_index()` for client work, and
drains `ready()` following the contract in `raft/ready.py`, then calls `advance()`.

Between `ready()` and `advance()` the RawNode still accepts input (ticks, messages,
proposals); it only refuses to produce a second Ready, so that each Ready is handed out once.
`advance()` uses the values recorded in the Ready itself (last entry's index and term, the
snapshot index, the last applied index), so input that arrived in between is never marked
stable or applied by mistake.
"""

from __future__ import annotations

from collections.abc import Sequence

from raft.core import Raft
from raft.errors import (
    ProposalDroppedError,
    ReadyNotAdvancedError,
    StepLocalMsgError,
    StepPeerNotFoundError,
)
from raft.ready import Ready, must_sync
from raft.roles import leader
from raft.storage import LogStorage
from raft.types import (
    ENTRY_CONF_CHANGE,
    ENTRY_NORMAL,
    LOCAL_MESSAGE_TYPES,
    MSG_HUP,
    MSG_PROP,
    MSG_READ_INDEX,
    MSG_SNAP_STATUS,
    MSG_TRANSFER_LEADER,
    MSG_UNREACHABLE,
    NONE,
    RESPONSE_MESSAGE_TYPES,
    STATE_LEADER,
    ConfChange,
    Config,
    ConfState,
    Entry,
    Message,
    ProgressStatus,
    Status,
    payload_size,
)


class RawNode:
    """One Raft node as a pure state machine. See `raft/ready.py` for the Ready contract."""

    __slots__ = ("_raft", "_prev_soft", "_prev_hard", "_outstanding")

    def __init__(self, config: Config, storage: LogStorage) -> None:
        """Start (or restart) from what `storage` holds: its hard state, snapshot and log.

        `config.applied` is the index the application's state machine has already applied;
        committed entries after it are handed out again."""
        config.validate()
        self._raft = Raft(config, storage)
        self._prev_soft = self._raft.soft_state()
        self._prev_hard = self._raft.hard_state()
        self._outstanding: Ready | None = None

    # ----------------------------------------------------------------- inputs

    def tick(self) -> None:
        """Advance the logical clock by one tick (election / heartbeat timers)."""
        self._raft.tick()

    def step(self, message: Message) -> None:
        """Feed a message received from a peer.

        Raises StepLocalMsgError for local-only message types and StepPeerNotFoundError for a
        response from a node outside the configuration. A proposal forwarded by a follower
        that this node cannot accept is dropped silently (the proposer times out)."""
        t = message.type
        if t in LOCAL_MESSAGE_TYPES:
            raise StepLocalMsgError(f"cannot step local message {t.value}")
        if t in RESPONSE_MESSAGE_TYPES and message.from_ not in self._raft.trk.progress:
            raise StepPeerNotFoundError(f"response from unknown peer {message.from_}")
        try:
            self._raft.step(message)
        except ProposalDroppedError:
            if message.from_ in (NONE, self._raft.id):
                raise

    def propose(self, data: bytes) -> None:
        """Propose `data` for the log; raises ProposalDroppedError if it cannot be accepted
        now (no known leader, a leadership transfer in progress, size limit)."""
        r = self._raft
        if leader.propose_local(r, (data,)):
            return
        r.step(Message(MSG_PROP, from_=r.id, entries=(Entry(0, 0, data=data),)))

    def propose_batch(self, datas: Sequence[bytes]) -> None:
        """Propose several entries in one MsgProp (cheaper than one propose() each);
        they are accepted or dropped together."""
        if not datas:
            return
        if leader.propose_local(self._raft, datas):
            return
        self._raft.step(
            Message(
                MSG_PROP,
                from_=self._raft.id,
                entries=[Entry(0, 0, ENTRY_NORMAL, d) for d in datas],
            )
        )

    def propose_conf_change(self, change: ConfChange) -> None:
        """Propose a membership change. The leader replaces it by an empty entry when another
        change is still unapplied or when the change is invalid for the current config."""
        entry = Entry(0, 0, ENTRY_CONF_CHANGE, change.marshal())
        self._raft.step(Message(MSG_PROP, from_=self._raft.id, entries=(entry,)))

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        """Apply a committed ConfChange to the configuration; returns the new ConfState."""
        return self._raft.apply_conf_change(change)

    def campaign(self) -> None:
        """Start an election now (a pre-vote first when pre_vote is enabled)."""
        self._raft.step(Message(MSG_HUP, from_=self._raft.id))

    def read_index(self, context: bytes) -> None:
        """Request a linearizable read point; the answer arrives as a ReadState carrying
        `context` in a later Ready. Use a unique context per request."""
        self._raft.step(Message(MSG_READ_INDEX, entries=(Entry(0, 0, data=context),)))

    def transfer_leader(self, target: int) -> None:
        """Ask the leader to hand leadership to `target` (forwarded when not leader)."""
        self._raft.step(Message(MSG_TRANSFER_LEADER, from_=target))

    def report_unreachable(self, id: int) -> None:
        """The transport failed to reach `id`: the leader stops optimistic replication."""
        self._raft.step(Message(MSG_UNREACHABLE, from_=id))

    def report_snapshot(self, id: int, ok: bool) -> None:
        """Result of streaming a MsgSnap to `id`; either way the peer goes back to probing."""
        self._raft.step(Message(MSG_SNAP_STATUS, from_=id, reject=not ok))

    # ---------------------------------------------------------------- outputs

    def has_ready(self) -> bool:
        """Whether `ready()` would return a non-empty Ready (False while one is outstanding)."""
        # Runs for every node after every batch of input: the cheapest tests come first and
        # the state records are compared field by field rather than built.
        if self._outstanding is not None:
            return False
        r = self._raft
        if r.append_pending or r.heartbeat_pending:
            leader.flush(r)
        if r.msgs:
            return True
        log = r.raft_log
        u = log.unstable
        if u.entries or u.snapshot is not None or r.read_states:
            return True
        if log.committed > log.applied and log.has_next_committed_ents():
            return True
        soft, hard = self._prev_soft, self._prev_hard
        return (
            r.lead != soft.lead
            or r.state is not soft.raft_state
            or r.term != hard.term
            or r.vote != hard.vote
            or log.committed != hard.commit
        )

    def ready(self) -> Ready:
        """The next batch of work; see the contract in raft/ready.py."""
        if self._outstanding is not None:
            raise ReadyNotAdvancedError("ready() called again before advance()")
        r = self._raft
        if r.append_pending or r.heartbeat_pending:
            leader.flush(r)
        log = r.raft_log
        # Compare fields before building new state records: most Readies change neither.
        soft, prev_hard = self._prev_soft, self._prev_hard
        soft_changed = r.lead != soft.lead or r.state is not soft.raft_state
        hard_changed = (
            r.term != prev_hard.term or r.vote != prev_hard.vote or log.committed != prev_hard.commit
        )
        if soft_changed:
            soft = r.soft_state()
        hard = r.hard_state() if hard_changed else prev_hard
        u = log.unstable
        entries = tuple(u.entries) if u.entries else ()  # log.unstable_entries(), inlined
        snapshot = u.snapshot
        # Entries or a snapshot always need an fsync: ask must_sync() only about the rest.
        sync = bool(entries) or snapshot is not None
        if not sync and hard_changed:
            sync = must_sync(hard_state=hard, prev=prev_hard, entries_count=0, has_snapshot=False)
        # Positional, in field order (soft_state, hard_state, entries, snapshot,
        # committed_entries, messages, read_states, must_sync): one Ready per node per batch.
        rd = Ready(
            soft if soft_changed else None,
            hard if hard_changed else None,
            entries,
            snapshot,
            log.next_committed_ents() if log.committed > log.applied else (),
            r.msgs,
            r.read_states,
            sync,
        )
        r.msgs = []
        r.read_states = []
        self._prev_soft = soft
        self._prev_hard = hard
        self._outstanding = rd
        return rd

    def advance(self, ready: Ready) -> None:
        """Tell the core that `ready` was handled (persisted, sent, applied)."""
        if ready is not self._outstanding:
            raise ValueError("advance() must be given the Ready returned by the last ready()")
        self._outstanding = None
        log = self._raft.raft_log
        if ready.entries:
            last = ready.entries[-1]
            log.stable_to(last.index, last.term)
        if ready.snapshot is not None:
            index = ready.snapshot.metadata.index
            log.stable_snap_to(index)
            log.applied_to(index)
        committed = ready.committed_entries
        if committed:
            log.applied_to(committed[-1].index)
            if self._raft.uncommitted_size:  # always 0 on a follower: skip the sum
                self._raft.reduce_uncommitted_size(payload_size(committed))

    # ------------------------------------------------------------- inspection

    @property
    def id(self) -> int:
        return self._raft.id

    def status(self) -> Status:
        """A snapshot of the node's state; `progress` is filled only on the leader."""
        r = self._raft
        progress: dict[int, ProgressStatus] = {}
        if r.state is STATE_LEADER:
            for id in r.trk.ids():
                pr = r.trk.progress[id]
                progress[id] = ProgressStatus(
                    match=pr.match,
                    next=pr.next,
                    state=pr.state,
                    pending_snapshot=pr.pending_snapshot,
                    recent_active=pr.recent_active,
                    is_learner=pr.is_learner,
                    paused=pr.is_paused(),
                    inflight=pr.inflights.count(),
                )
        return Status(
            id=r.id,
            hard_state=r.hard_state(),
            soft_state=r.soft_state(),
            applied=r.raft_log.applied,
            progress=progress,
            lead_transferee=r.lead_transferee,
            conf_state=r.trk.conf_state(),
        )
