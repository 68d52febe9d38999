"""Unstable: the not-yet-durable tail and incoming snapshot."""

from __future__ import annotations

import pytest

from raft.errors import InvariantError
from raft.log_unstable import Unstable
from raft.types import ConfState, Entry, Snapshot, SnapshotMetadata


def _snap(index: int, term: int) -> Snapshot:
    return Snapshot(SnapshotMetadata(index, term, ConfState((1,))))


def _u(offset: int, terms: list[int], snap: Snapshot | None = None) -> Unstable:
    u = Unstable(offset)
    u.entries = [Entry(t, offset + i) for i, t in enumerate(terms)]
    u.snapshot = snap
    return u


def test_first_last_index() -> None:
    assert _u(5, [1]).maybe_first_index() is None
    assert _u(5, [1], _snap(4, 1)).maybe_first_index() == 5
    assert _u(5, []).maybe_last_index() is None
    assert _u(5, [1]).maybe_last_index() == 5
    assert _u(5, [], _snap(4, 1)).maybe_last_index() == 4


def test_maybe_term() -> None:
    u = _u(5, [1], _snap(4, 1))
    assert u.maybe_term(5) == 1
    assert u.maybe_term(4) == 1
    assert u.maybe_term(3) is None
    assert u.maybe_term(6) is None
    assert _u(5, [1]).maybe_term(4) is None


def test_stable_to() -> None:
    u = _u(5, [1, 1, 2])
    u.stable_to(4, 1)  # before offset
    u.stable_to(9, 1)  # beyond
    u.stable_to(6, 2)  # term mismatch (the entry was replaced): ignored
    assert u.offset == 5 and len(u.entries) == 3
    u.stable_to(6, 1)
    assert u.offset == 7 and [e.index for e in u.entries] == [7]


def test_stable_snap_to_and_restore() -> None:
    u = _u(5, [1])
    u.restore(_snap(9, 2))
    assert (u.offset, u.entries, u.snapshot) == (10, [], _snap(9, 2))
    u.stable_snap_to(8)
    assert u.snapshot is not None
    u.stable_snap_to(9)
    assert u.snapshot is None


def test_truncate_and_append() -> None:
    u = _u(5, [1, 1, 1])
    u.truncate_and_append([Entry(1, 8)])  # append
    assert [e.index for e in u.entries] == [5, 6, 7, 8]
    u.truncate_and_append([Entry(2, 6), Entry(2, 7)])  # truncate inside
    assert [(e.index, e.term) for e in u.entries] == [(5, 1), (6, 2), (7, 2)]
    u.truncate_and_append([Entry(3, 4)])  # replace everything from before the offset
    assert (u.offset, [e.index for e in u.entries]) == (4, [4])


def test_slice_bounds() -> None:
    u = _u(5, [1, 1])
    assert [e.index for e in u.slice(5, 7)] == [5, 6]
    with pytest.raises(InvariantError):
        u.slice(4, 6)
    with pytest.raises(InvariantError):
        u.slice(5, 8)
