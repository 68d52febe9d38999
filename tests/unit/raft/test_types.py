"""types.py records, errors.py tree and ready.must_sync."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raft import errors
from raft.ready import must_sync
from raft.types import (
    EMPTY_HARD_STATE,
    ConfChange,
    ConfChangeType,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
    entry_size,
    payload_size,
)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(list(ConfChangeType)), st.integers(0, 2**64 - 1), st.binary(max_size=20))
def test_conf_change_round_trip(kind: ConfChangeType, node: int, ctx: bytes) -> None:
    cc = ConfChange(kind, node, ctx)
    assert ConfChange.unmarshal(cc.marshal()) == cc


@pytest.mark.parametrize("data", [b"", b"\x01\x00", b"\x02" + b"\x00" * 9, b"\x01\x07" + b"\x00" * 8])
def test_conf_change_rejects_bad_payloads(data: bytes) -> None:
    with pytest.raises(ValueError):
        ConfChange.unmarshal(data)


def test_records() -> None:
    assert EMPTY_HARD_STATE.is_empty and not HardState(1).is_empty
    assert Snapshot().is_empty and not Snapshot(SnapshotMetadata(1, 1)).is_empty
    es = [Entry(1, 1, data=b"abc"), Entry(1, 2)]
    assert payload_size(es) == 3
    assert entry_size(es[0]) == 19
    with pytest.raises(AttributeError):
        es[0].term = 2  # type: ignore[misc]


def test_must_sync() -> None:
    hs = HardState(2, 1, 5)
    assert not must_sync(hard_state=hs, prev=HardState(2, 1, 3), entries_count=0, has_snapshot=False)
    assert must_sync(hard_state=hs, prev=HardState(2, 1, 3), entries_count=1, has_snapshot=False)
    assert must_sync(hard_state=hs, prev=HardState(2, 1, 3), entries_count=0, has_snapshot=True)
    assert must_sync(hard_state=hs, prev=HardState(2, 0, 5), entries_count=0, has_snapshot=False)
    assert must_sync(hard_state=hs, prev=HardState(1, 1, 5), entries_count=0, has_snapshot=False)


def test_error_tree() -> None:
    for cls in (
        errors.ProposalDroppedError,
        errors.StepLocalMsgError,
        errors.StepPeerNotFoundError,
        errors.ConfChangeError,
        errors.ReadyNotAdvancedError,
        errors.StorageError,
    ):
        assert issubclass(cls, errors.RaftError)
    for cls in (
        errors.CompactedError,
        errors.SnapOutOfDateError,
        errors.UnavailableError,
        errors.SnapshotTemporarilyUnavailableError,
    ):
        assert issubclass(cls, errors.StorageError)
    assert not issubclass(errors.InvariantError, errors.RaftError)
    errors.invariant(True, "fine")
    with pytest.raises(errors.InvariantError, match="broken"):
        errors.invariant(False, "broken")
