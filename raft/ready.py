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
     the acknowledgement towards a commit quorum;
   - MsgApp and MsgSnap from a leader carry a commit index that may count the leader's own
     not-yet-durable entries. Raft thesis §10.2.1 allows a leader to send MsgApp in parallel
     with its own fsync, provided it does not count itself before the fsync; this core does
     NOT implement that optimisation, so everything is sent after step 2.
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

from raft.types import Entry, HardState, Message, ReadState, Snapshot, SoftState, hot_record


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
