"""RaftLog: stable storage plus the unstable tail."""

from __future__ import annotations

import pytest

from raft.errors import CompactedError, InvariantError, UnavailableError
from raft.log import RaftLog
from raft.types import ConfState, Entry, Snapshot, SnapshotMetadata

from .helpers import ents, new_storage


def _log(*terms: int, index: int = 0, term: int = 0) -> RaftLog:
    s = new_storage((1,), index=index, term=term)
    s.append(ents(*terms, start=index + 1))
    return RaftLog(s)


def test_indexes_from_storage_and_unstable() -> None:
    log = _log(1, 2, index=3, term=1)
    assert (log.first_index(), log.last_index(), log.last_term()) == (4, 5, 2)
    assert (log.committed, log.applied) == (3, 3)
    log.append([Entry(3, 6)])
    assert (log.last_index(), log.last_term()) == (6, 3)
    assert log.unstable_entries() == (Entry(3, 6),)


def test_term_errors() -> None:
    log = _log(1, 2, index=3, term=1)
    assert log.term(3) == 1  # the snapshot point
    with pytest.raises(CompactedError):
        log.term(2)
    with pytest.raises(UnavailableError):
        log.term(6)
    assert log.term_or_none(6) is None


def test_term_of_compacted_index_below_the_snapshot_point() -> None:
    log = _log(1, 2, index=3, term=1)
    assert log.term_or_none(1) is None  # the storage raises CompactedError
    assert not log.match_term(1, 1)
    assert log.match_term(3, 1)


def test_maybe_append_and_conflicts() -> None:
    log = _log(1, 2, 3)
    assert log.maybe_append(3, 2, 3, []) is None  # mismatch
    assert log.maybe_append(3, 3, 3, []) == 3
    assert log.committed == 3
    assert log.maybe_append(3, 3, 5, [Entry(4, 4)]) == 4
    assert log.committed == 4  # min(leader commit, last new)
    with pytest.raises(InvariantError):
        log.maybe_append(1, 1, 5, [Entry(9, 2)])  # would overwrite committed entry 2
    # Duplicated entries are skipped; a new suffix is appended.
    assert log.maybe_append(2, 2, 4, [Entry(3, 3), Entry(4, 4), Entry(4, 5)]) == 5
    assert [e.term for e in log.all_entries()] == [1, 2, 3, 4, 4]


def test_find_conflict_by_term() -> None:
    log = _log(1, 1, 4, 4, 5, index=2, term=1)
    assert log.find_conflict_by_term(7, 5) == (7, 5)
    assert log.find_conflict_by_term(7, 4) == (6, 4)
    assert log.find_conflict_by_term(7, 2) == (4, 1)
    assert log.find_conflict_by_term(2, 1) == (2, 1)
    assert log.find_conflict_by_term(2, 0) == (1, 0)  # compacted: unknown term
    assert _log().find_conflict_by_term(0, 0) == (0, 0)
    empty = RaftLog(new_storage((1,)))
    empty.append(ents(2, 2))
    assert empty.find_conflict_by_term(2, 1) == (0, 0)


def test_commit_and_apply() -> None:
    log = _log(1, 1, 2)
    with pytest.raises(InvariantError):
        log.commit_to(4)
    assert not log.maybe_commit(3, 1)  # entry 3 has term 2, not 1
    assert log.maybe_commit(3, 2)
    assert not log.maybe_commit(2, 1)  # not beyond committed
    log.applied_to(0)
    log.applied_to(2)
    with pytest.raises(InvariantError):
        log.applied_to(1)
    assert [e.index for e in log.next_committed_ents()] == [3]
    with pytest.raises(InvariantError):
        log.append([Entry(3, 2)])  # before the commit index
    log.applied_to(3)
    assert not log.has_next_committed_ents() and log.next_committed_ents() == ()


def test_committed_entries_compacted_away_are_not_handed_out() -> None:
    # The application compacted its storage past the commit index (its own snapshot): the
    # entries in between can no longer be applied from the log, and none are offered.
    s = new_storage((1,))
    s.append(ents(1, 1, 1, 1, 1))
    log = RaftLog(s)
    log.commit_to(2)
    s.compact(4)
    assert not log.has_next_committed_ents()
    assert log.next_committed_ents() == ()


def test_slice_across_storage_and_unstable() -> None:
    log = _log(1, 1, 1, index=2, term=1)
    log.append([Entry(2, 6), Entry(2, 7)])
    assert [e.index for e in log.slice(3, 8, 1 << 30)] == [3, 4, 5, 6, 7]
    assert [e.index for e in log.slice(6, 8, 1 << 30)] == [6, 7]
    assert [e.index for e in log.slice(4, 8, 16)] == [4]  # storage part already full
    assert [e.index for e in log.slice(5, 8, 32)] == [5, 6]  # limit across the boundary
    assert log.slice(4, 4, 10) == []
    assert log.entries(8, 100) == []
    with pytest.raises(CompactedError):
        log.slice(2, 5, 100)
    with pytest.raises(InvariantError):
        log.slice(4, 9, 100)


def test_restore_snapshot() -> None:
    log = _log(1, 1)
    snap = Snapshot(SnapshotMetadata(10, 3, ConfState((1,))))
    log.restore(snap)
    assert (log.committed, log.first_index(), log.last_index(), log.last_term()) == (10, 11, 10, 3)
    assert log.snapshot() is snap
    assert not log.has_next_committed_ents() and log.next_committed_ents() == ()
    log.stable_snap_to(10)
    assert log.snapshot() == log.storage.snapshot()


def test_is_up_to_date() -> None:
    log = _log(1, 2, 2)
    assert log.is_up_to_date(3, 2)
    assert log.is_up_to_date(1, 3)
    assert not log.is_up_to_date(2, 2)
    assert not log.is_up_to_date(9, 1)


def test_max_applying_size() -> None:
    s = new_storage((1,))
    s.append([Entry(1, i, data=b"x" * 10) for i in range(1, 6)])
    log = RaftLog(s, max_applying_size=60)
    log.commit_to(5)
    assert [e.index for e in log.next_committed_ents()] == [1, 2]


def test_append_nothing() -> None:
    log = _log(1, 1)
    assert log.append([]) == 2
    assert log.entries(3, 100) == []  # nothing after the last index
