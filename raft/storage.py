"""LogStorage: the core's read-only view of the persisted log, and MemoryStorage.

The core reads stable entries through the `LogStorage` protocol and never writes to it: the
application persists what a Ready hands out, then installs it here (`append`,
`set_hard_state`, `apply_snapshot`). Compaction is the application's decision too:
`create_snapshot(index, ...)` records a snapshot of applied state and `compact(index)` drops
the entries up to it.

MemoryStorage layout (etcd's): `_ents[0]` is a dummy entry carrying the index and term of
the last compacted entry (the snapshot point), so `term(first_index - 1)` still answers, as
the log matching check on the first new entry needs it. Worked example: after a snapshot at
index 10 term 2 and appends of 11..13, `_ents = [2/10 dummy, 11, 12, 13]`, first_index = 11,
last_index = 13, term(10) = 2, entries(lo=10, ...) raises CompactedError.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Protocol

from raft.errors import (
    CompactedError,
    SnapOutOfDateError,
    UnavailableError,
    invariant,
)
from raft.types import (
    EMPTY_HARD_STATE,
    ENTRY_OVERHEAD_BYTES,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
    entry_size,
)

_DATA = attrgetter("data")


class LogStorage(Protocol):
    """What the core needs from stable storage. Errors: CompactedError, UnavailableError,
    SnapshotTemporarilyUnavailableError (from `snapshot()`, when it is being prepared)."""

    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """Entries in [lo, hi), at least one if any, at most `max_size` bytes otherwise."""
        ...

    def term(self, index: int) -> int: ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


def limit_size(entries: list[Entry], max_size: int) -> list[Entry]:
    """The longest prefix of `entries` within `max_size` bytes, but never fewer than one."""
    if len(entries) <= 1:
        return entries
    # Fast path, in C: everything fits (the common case with the default 1 MiB limit).
    if sum(map(len, map(_DATA, entries))) + ENTRY_OVERHEAD_BYTES * len(entries) <= max_size:
        return entries
    # Some prefix overflows, since the whole list does: find where.
    size = entry_size(entries[0])
    i = 1
    while True:
        size += entry_size(entries[i])
        if size > max_size:
            return entries[:i]
        i += 1


class MemoryStorage:
    """An in-memory LogStorage (after etcd's MemoryStorage), used by tests and as the
    node's cache of the WAL's content."""

    __slots__ = ("_hard_state", "_snapshot", "_ents")

    def __init__(self) -> None:
        self._hard_state = EMPTY_HARD_STATE
        self._snapshot = Snapshot()
        self._ents: list[Entry] = [Entry(0, 0)]

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    def hard_state(self) -> HardState:
        return self._hard_state

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise CompactedError(f"entry {lo} is compacted (first index {offset + 1})")
        invariant(hi <= offset + len(self._ents), "entries' hi(%d) is out of bound", hi)
        if len(self._ents) == 1:
            raise UnavailableError("the log holds only the snapshot point")
        return limit_size(self._ents[lo - offset : hi - offset], max_size)

    def term(self, index: int) -> int:
        offset = self._ents[0].index
        if index < offset:
            raise CompactedError(f"term of {index} is compacted")
        if index - offset >= len(self._ents):
            raise UnavailableError(f"entry {index} is not in the log")
        return self._ents[index - offset].term

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Install a snapshot received from the leader (or restored at start-up); it replaces
        the whole log."""
        meta = snapshot.metadata
        if meta.index <= self._snapshot.metadata.index:
            raise SnapOutOfDateError(f"snapshot {meta.index} is out of date")
        self._snapshot = snapshot
        self._ents = [Entry(meta.term, meta.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine at applied `index`; the application calls
        `compact(index)` afterwards to drop the entries it covers."""
        if index <= self._snapshot.metadata.index:
            raise SnapOutOfDateError(f"snapshot {index} is out of date")
        invariant(index <= self.last_index(), f"snapshot {index} is after the last index")
        term = self._ents[index - self._ents[0].index].term
        self._snapshot = Snapshot(SnapshotMetadata(index, term, conf_state), data)
        return self._snapshot

    def compact(self, compact_index: int) -> None:
        """Discard entries before and at `compact_index` (keeping it as the dummy)."""
        offset = self._ents[0].index
        if compact_index <= offset:
            raise CompactedError(f"index {compact_index} is already compacted")
        invariant(compact_index <= self.last_index(), f"compact {compact_index} is out of bound")
        i = compact_index - offset
        self._ents = [Entry(self._ents[i].term, self._ents[i].index)] + self._ents[i + 1 :]

    def append(self, entries: Sequence[Entry]) -> None:
        """Append entries, overwriting any conflicting suffix (they come from a Ready)."""
        if not entries:
            return
        first = self._ents[0].index + 1  # first_index(), inlined: runs on every Ready
        last = entries[0].index + len(entries) - 1
        if last < first:
            return  # all already compacted
        if first > entries[0].index:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._ents[0].index
        invariant(offset <= len(self._ents), "missing log entry before %d", entries[0].index)
        if offset < len(self._ents):
            del self._ents[offset:]
        self._ents.extend(entries)
