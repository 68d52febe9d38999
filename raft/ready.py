"""The Ready value and THE Ready contract (the only place it is written down).

`RawNode.ready()` hands the application a batch of work. The application MUST do the steps
below in this order, then call `RawNode.advance(ready)` before asking for the next Ready
(`ready()` raises ReadyNotAdvancedError otherwise, and `has_ready()` is False meanwhile):

1. **Snapshot.** If `snapshot` is not None, persist it durably (snapshot file, then the WAL
   snapshot marker) and install it in the LogStorage (`MemoryStorage.apply_snapshot`).
2. **HardState and entries.** Persist `hard_state` (if not None) and append `entries` to the
   log (entries may overwrite a conflicting suffix: truncate at `entries[0].index`), with an
   fsync when `must_sync` is True. `must_sync` is True when the term, the vote, the entries
   or the snapshot changed: those are exactly what Raft's safety needs on stable storage. A commit-only
   change does not require an fsync (the commit index can be re-learnt from the leader).
3. **Messages.** Only now send `messages`. Several of them promise something about durable
   state and would be lies if sent before step 2:
   - MsgVoteResp / MsgPreVoteResp granting a vote and MsgVote (the candidate's self vote)
     depend on HardState.term and HardState.vote being durable (one vote per term must
     survive a crash);
   - MsgAppResp (accepting entries) depends on the entries being durable: the leader counts
     the acknowledgement towards a commit quorum.
   The one exception, Raft thesis 10.2.1: when `sends_before_persist(...)` says so (a
   leader's Ready that changes neither term nor vote), the messages may go out BEFORE
   step 1, so the leader's fsync runs in parallel with its followers' appends. That is
   safe because a leader's messages promise nothing about its own disk: the leader counts
   its own entries towards a commit quorum before they are durable, but a commit index
   that needs them can only be reached from acknowledgements of this Ready's MsgApps, so
   it first appears in a later Ready, which `ready()` hands out only after this one's
   `advance()`, i.e. after step 2. Without that exception the rule above holds for every
   message.
   Messages may be dropped, duplicated or reordered by the network: Raft tolerates that.
   A MsgSnap carries a Snapshot whose `data` the application streams to the peer; afterwards
   it calls `report_snapshot(peer, ok)`. Unreachable peers are reported via
   `report_unreachable(peer)`.
4. **Apply.** Apply `committed_entries` in order to the state machine. For an
   EntryType.CONF_CHANGE entry, decode `ConfChange.unmarshal(entry.data)` and call
   `RawNode.apply_conf_change(cc)` (then record the returned ConfState with the data).
   `committed_entries` may include entries that are in `entries` of the same Ready: they are
   safe to apply once step 2 is done. `read_states` answer ReadIndex requests: serve the read
   with `request_ctx` once the applied index is >= `ReadState.index`.
5. **Advance.** Call `RawNode.advance(ready)`: the core marks the entries stable, the
   snapshot installed and the committed entries applied.

A node restarted from what it persisted (hard state, log entries, snapshot; the
LogStorage's `initial_state()`), with `Config.applied` set to the index its state machine
has applied, resumes correctly: it may re-deliver committed entries after `applied`, which
the application must apply idempotently.
"""

from __future__ import annotations

from collections.abc import Sequence

from raft.types import (
    Entry,
    HardState,
    Message,
    ReadState,
    Snapshot,
    SoftState,
    StateType,
    hot_record,
)


@hot_record
class Ready:
    """One batch of work for the application; see the module docstring for the order.

    A `hot_record` (raft/types.py): frozen for the type checker, never mutated."""

    # None when unchanged since the previous Ready.
    soft_state: SoftState | None
    # None when unchanged since the previous Ready.
    hard_state: HardState | None
    # Entries to append to stable storage before sending messages.
    entries: Sequence[Entry]
    # Snapshot to persist and install, or None.
    snapshot: Snapshot | None
    # Entries to apply to the state machine (already committed).
    committed_entries: Sequence[Entry]
    # Messages to send once entries and hard state are durable.
    messages: Sequence[Message]
    read_states: Sequence[ReadState]
    must_sync: bool

    @property
    def is_empty(self) -> bool:
        return (
            self.soft_state is None
            and self.hard_state is None
            and not self.entries
            and self.snapshot is None
            and not self.committed_entries
            and not self.messages
            and not self.read_states
        )


def must_sync(
    *, hard_state: HardState, prev: HardState, entries_count: int, has_snapshot: bool
) -> bool:
    """Whether the Ready needs an fsync: votes, terms, entries and an installed snapshot
    must be durable before any message that depends on them is sent; a commit index alone
    need not be."""
    return (
        entries_count != 0
        or has_snapshot
        or hard_state.vote != prev.vote
        or hard_state.term != prev.term
    )


def sends_before_persist(rd: Ready, soft: SoftState, persisted: HardState) -> bool:
    """Whether `rd.messages` may be sent before `rd` is persisted (the contract's step 3
    exception): `soft` is the node's soft state before this Ready, `persisted` its durable
    HardState. Only a leader qualifies, and only if the Ready changes neither term nor vote:
    a leader elected alone (a single voter) gets its new term in the same Ready as its first
    MsgApp to learners, and that term must be durable before anyone hears of it."""
    state = rd.soft_state.raft_state if rd.soft_state is not None else soft.raft_state
    if state is not StateType.LEADER:
        return False
    hs = rd.hard_state
    return hs is None or (hs.term == persisted.term and hs.vote == persisted.vote)
