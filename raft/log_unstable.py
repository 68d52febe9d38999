"""Unstable: the tail of the log (and possibly a snapshot) not yet persisted.

Entries here have been accepted by the core but not yet confirmed durable by `advance()`.
`offset` is the index of `entries[0]`; with an incoming snapshot at index i, offset = i + 1.
The invariant `offset == snapshot.index + 1 if snapshot and not entries` keeps the index
arithmetic in one place. `stable_to(i, t)` only drops entries when the entry at i still has
term t: a Ready's entries may have been truncated and replaced by a newer leader meanwhile,
and those replacements must not be marked stable.
"""

from __future__ import annotations

from collections.abc import Sequence

from raft.errors import invariant
from raft.types import Entry, Snapshot


class Unstable:
    __slots__ = ("snapshot", "entries", "offset")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.metadata.index == i:
                return self.snapshot.metadata.term
            return None
        if i - self.offset >= len(self.entries):
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, i: int, t: int) -> None:
        if i < self.offset or i - self.offset >= len(self.entries):
            return
        if self.entries[i - self.offset].term != t:
            return
        self.entries = self.entries[i + 1 - self.offset :]
        self.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == i:
            self.snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        self.offset = snapshot.metadata.index + 1
        self.entries = []
        self.snapshot = snapshot

    def truncate_and_append(self, ents: Sequence[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replace everything unstable (a new leader overwrote our whole tail).
            self.offset = after
            self.entries = list(ents)
        else:
            # Keep the agreeing prefix, drop the conflicting suffix.
            self.entries = self.entries[: after - self.offset]
            self.entries.extend(ents)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        invariant(
            self.offset <= lo <= hi <= self.offset + len(self.entries),
            "unstable.slice[%d,%d) out of bound [%d,%d]",
            lo,
            hi,
            self.offset,
            self.offset + len(self.entries),
        )
        return self.entries[lo - self.offset : hi - self.offset]
