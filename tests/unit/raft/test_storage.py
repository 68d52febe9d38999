"""MemoryStorage: etcd's layout with a dummy entry at the snapshot point."""

from __future__ import annotations

import pytest

from raft.errors import CompactedError, InvariantError, SnapOutOfDateError, UnavailableError
from raft.storage import MemoryStorage, limit_size
from raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata


def _storage(*indexes_terms: tuple[int, int]) -> MemoryStorage:
    """Storage whose dummy is the first (index, term) and entries follow."""
    s = MemoryStorage()
    first_i, first_t = indexes_terms[0]
    if first_i:
        s.apply_snapshot(Snapshot(SnapshotMetadata(first_i, first_t, ConfState((1,)))))
    s.append([Entry(t, i) for i, t in indexes_terms[1:]])
    return s


def test_empty() -> None:
    s = MemoryStorage()
    assert (s.first_index(), s.last_index()) == (1, 0)
    assert s.initial_state() == (HardState(), ConfState())
    assert s.term(0) == 0
    with pytest.raises(UnavailableError):
        s.entries(1, 1, 100)


def test_term() -> None:
    s = _storage((3, 3), (4, 4), (5, 5))
    with pytest.raises(CompactedError):
        s.term(2)
    assert [s.term(i) for i in (3, 4, 5)] == [3, 4, 5]
    with pytest.raises(UnavailableError):
        s.term(6)


def test_entries_and_limits() -> None:
    s = _storage((3, 3), (4, 4), (5, 5), (6, 6))
    with pytest.raises(CompactedError):
        s.entries(3, 5, 1 << 30)
    assert [e.index for e in s.entries(4, 7, 1 << 30)] == [4, 5, 6]
    # Always at least one entry, otherwise within the byte budget (16 bytes per empty entry).
    assert [e.index for e in s.entries(4, 7, 0)] == [4]
    assert [e.index for e in s.entries(4, 7, 32)] == [4, 5]
    with pytest.raises(InvariantError):
        s.entries(4, 8, 100)


def test_limit_size() -> None:
    es = [Entry(1, i, data=b"x" * 4) for i in range(1, 5)]
    assert limit_size([], 0) == []
    assert len(limit_size(es, 0)) == 1
    assert len(limit_size(es, 40)) == 2
    assert len(limit_size(es, 1000)) == 4


def test_append_overwrites_and_skips_compacted() -> None:
    s = _storage((3, 3), (4, 4), (5, 5))
    s.append([Entry(3, 3), Entry(4, 4), Entry(5, 5)])  # same
    assert [(e.index, e.term) for e in s.entries(4, 6, 1 << 30)] == [(4, 4), (5, 5)]
    s.append([Entry(3, 3), Entry(6, 4), Entry(6, 5)])  # conflict from 4
    assert [e.term for e in s.entries(4, 6, 1 << 30)] == [6, 6]
    s.append([Entry(1, 1), Entry(2, 2)])  # all compacted already: ignored
    assert s.last_index() == 5
    s.append([Entry(6, 6)])  # plain append
    assert s.last_index() == 6
    s.append([])
    assert s.last_index() == 6
    with pytest.raises(InvariantError):
        s.append([Entry(6, 8)])  # a gap


def test_compact() -> None:
    s = _storage((3, 3), (4, 4), (5, 5))
    with pytest.raises(CompactedError):
        s.compact(2)
    s.compact(4)
    assert (s.first_index(), s.last_index(), s.term(4)) == (5, 5, 4)
    with pytest.raises(InvariantError):
        s.compact(6)


def test_create_and_apply_snapshot() -> None:
    s = _storage((3, 3), (4, 4), (5, 5))
    cs = ConfState((1, 2))
    snap = s.create_snapshot(4, cs, b"data")
    assert snap.metadata == SnapshotMetadata(4, 4, cs)
    assert s.snapshot() == snap
    with pytest.raises(SnapOutOfDateError):
        s.create_snapshot(3, cs, b"")
    with pytest.raises(InvariantError):
        s.create_snapshot(9, cs, b"")
    with pytest.raises(SnapOutOfDateError):
        s.apply_snapshot(Snapshot(SnapshotMetadata(4, 4, cs)))
    s.apply_snapshot(Snapshot(SnapshotMetadata(10, 6, cs)))
    assert (s.first_index(), s.last_index(), s.term(10)) == (11, 10, 6)
    assert s.initial_state()[1] == cs
    s.set_hard_state(HardState(6, 1, 10))
    assert s.hard_state() == HardState(6, 1, 10)
