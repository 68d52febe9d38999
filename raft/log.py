"""RaftLog: the log as the core sees it, stable storage plus the unstable tail.

Indexes obey `snapshot.index <= applied <= committed <= last_index` and
`first_index = snapshot.index + 1`. Entries in [first_index, unstable.offset) come from the
LogStorage; entries from `unstable.offset` on are in memory and not yet durable. The term
of `first_index - 1` is still known (the snapshot point), which the log matching check needs.

Committed entries may be handed out for applying while still unstable: the Ready contract
persists a Ready's entries before applying its committed entries (raft/ready.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from raft.errors import CompactedError, UnavailableError, invariant
from raft.log_unstable import Unstable
from raft.storage import LogStorage, limit_size
from raft.types import Entry, Snapshot

_NO_LIMIT = 1 << 62


class RaftLog:
    __slots__ = ("storage", "unstable", "committed", "applied", "max_applying_size")

    def __init__(self, storage: LogStorage, max_applying_size: int = 0) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        # Everything up to the snapshot point is committed and applied by definition.
        self.committed = first - 1
        self.applied = first - 1
        self.max_applying_size = max_applying_size or _NO_LIMIT

    # ---------------------------------------------------------------- indexes

    # first_index, last_index and term_or_none are the hottest functions of the core: they
    # inline Unstable's maybe_* lookups instead of calling them.

    def first_index(self) -> int:
        snap = self.unstable.snapshot
        if snap is not None:
            return snap.metadata.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        u = self.unstable
        if u.entries:
            return u.offset + len(u.entries) - 1
        if u.snapshot is not None:
            return u.snapshot.metadata.index
        return self.storage.last_index()

    def last_term(self) -> int:
        t = self.term_or_none(self.last_index())
        invariant(t is not None, "unexpected error when getting the last term")
        return t  # type: ignore[return-value]

    def term_or_none(self, i: int) -> int | None:
        """The term of entry i, or None when compacted or beyond the last index."""
        u = self.unstable
        offset = u.offset
        if i >= offset:
            j = i - offset
            return u.entries[j].term if j < len(u.entries) else None
        snap = u.snapshot
        if snap is not None:
            # Until the incoming snapshot is installed, only its last entry is known below it.
            return snap.metadata.term if i == snap.metadata.index else None
        try:
            return self.storage.term(i)
        except (CompactedError, UnavailableError):
            return None

    def term(self, i: int) -> int:
        """The term of entry i; raises CompactedError / UnavailableError."""
        t = self.term_or_none(i)
        if t is None:
            if i + 1 < self.first_index():
                raise CompactedError(f"entry {i} is compacted")
            raise UnavailableError(f"entry {i} is unavailable")
        return t

    def match_term(self, i: int, term: int) -> bool:
        return self.term_or_none(i) == term

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Raft §5.4.1: a candidate's log is at least as up-to-date as ours."""
        last_term = self.last_term()
        return term > last_term or (term == last_term and last_index >= self.last_index())

    # ---------------------------------------------------------------- writing

    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: Sequence[Entry]
    ) -> int | None:
        """Append `ents` after entry (index, log_term) if it matches (Raft §5.3 consistency
        check); returns the last index the message vouches for, or None on mismatch."""
        if self.term_or_none(index) != log_term:  # match_term(), inlined: every MsgApp
            return None
        last_new = index + len(ents)
        # A commit-only MsgApp carries no entries: nothing can conflict.
        ci = self.find_conflict(ents) if ents else 0
        if ci != 0:
            # append()'s own check (nothing before the commit index) is this one.
            invariant(ci > self.committed, "entry %d conflicts with committed entry", ci)
            self.unstable.truncate_and_append(ents[ci - index - 1 :])
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, ents: Sequence[Entry]) -> int:
        if not ents:
            return self.last_index()
        invariant(ents[0].index - 1 >= self.committed, "cannot append before the commit index")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def find_conflict(self, ents: Sequence[Entry]) -> int:
        """Index of the first entry of `ents` that is new or conflicts with ours, else 0.

        Entries already in our log with the same term are skipped: a duplicated or
        reordered MsgApp must not truncate entries the follower already acknowledged."""
        last = self.last_index()
        for e in ents:
            if e.index > last or not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= `index` whose term is <= `term`, with that term (etcd's fast
        log back-off: skips a whole term of divergent entries per round trip). Returns term 0
        when the term is unknown (compacted)."""
        while index > 0:
            our = self.term_or_none(index)
            if our is None:
                return index, 0
            if our <= term:
                return index, our
            index -= 1
        return 0, 0

    def commit_to(self, to_commit: int) -> None:
        if self.committed < to_commit:
            last = self.last_index()
            invariant(
                last >= to_commit,
                "to_commit(%d) is out of range [last_index(%d)]",
                to_commit,
                last,
            )
            self.committed = to_commit

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Raft §5.4.2: commit by counting replicas only an entry of the current term."""
        if max_index > self.committed and self.term_or_none(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, i: int) -> None:
        if i == 0:
            return
        invariant(
            self.applied <= i <= self.committed,
            "applied(%d) out of range [prev applied(%d), committed(%d)]",
            i,
            self.applied,
            self.committed,
        )
        self.applied = i

    def stable_to(self, i: int, t: int) -> None:
        self.unstable.stable_to(i, t)

    def stable_snap_to(self, i: int) -> None:
        self.unstable.stable_snap_to(i)

    def restore(self, snapshot: Snapshot) -> None:
        self.committed = snapshot.metadata.index
        self.unstable.restore(snapshot)

    # ---------------------------------------------------------------- reading

    def unstable_entries(self) -> tuple[Entry, ...]:
        # A copy: the unstable list grows in place, and a Ready must not change later.
        return tuple(self.unstable.entries)

    def has_next_committed_ents(self) -> bool:
        if self.unstable.snapshot is not None:
            return False  # apply the snapshot first
        # committed > max(applied, first_index - 1), testing the cheap half first.
        committed = self.committed
        return committed > self.applied and committed >= self.first_index()

    def next_committed_ents(self) -> tuple[Entry, ...]:
        if self.unstable.snapshot is not None:
            return ()
        committed = self.committed
        if committed <= self.applied:
            return ()  # the common case, decided without asking the storage
        lo = max(self.applied + 1, self.first_index())
        if committed + 1 <= lo:
            return ()
        return tuple(self.slice(lo, committed + 1, self.max_applying_size))

    def entries(self, i: int, max_size: int) -> list[Entry]:
        """Entries from i to the end, within max_size bytes (at least one)."""
        last = self.last_index()
        if i > last:
            return []
        return self.slice(i, last + 1, max_size)

    def slice(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """Entries in [lo, hi); raises CompactedError when lo is before the first index."""
        u = self.unstable
        offset = u.offset
        if lo >= offset:
            # Entirely in memory: the common case for a leader's fresh entries.
            invariant(lo <= hi <= offset + len(u.entries), "slice[%d,%d) out of bound", lo, hi)
            return limit_size(u.entries[lo - offset : hi - offset], max_size)
        first = self.first_index()
        if lo < first:
            raise CompactedError(f"entry {lo} is compacted (first index {first})")
        # hi <= offset is within the log when the storage holds what it was given; the storage
        # checks its own bound. Only a slice reaching into unstable asks for last_index().
        invariant(
            lo <= hi and (hi <= offset or hi <= self.last_index() + 1),
            "slice[%d,%d) out of bound",
            lo,
            hi,
        )
        if lo == hi:
            return []
        ents = self.storage.entries(lo, min(hi, offset), max_size)
        if hi > offset and len(ents) == offset - lo:
            ents = ents + u.slice(offset, hi)
            return limit_size(ents, max_size)
        return ents

    def snapshot(self) -> Snapshot:
        """The snapshot to send a lagging follower; may raise
        SnapshotTemporarilyUnavailableError from the storage."""
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def all_entries(self) -> list[Entry]:
        """Every entry from the first index (for tests and debugging)."""
        return self.entries(self.first_index(), _NO_LIMIT)
