"""types.py records, errors.py tree and ready.must_sync."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raft import errors
from raft.ready import Ready, must_sync
from raft.types import (
    EMPTY_HARD_STATE,
    MSG_APP,
    ConfChange,
    ConfChangeType,
    Entry,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
    entry_size,
    hot_record,
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
        Snapshot().data = b"x"  # type: ignore[misc]


def test_hot_records_are_frozen_for_the_type_checker() -> None:
    # Entry, Message, HardState and Ready skip the runtime freeze for speed (types.py
    # docstring); mypy sees them as frozen through dataclass_transform(frozen_default=True).
    spec = hot_record.__dataclass_transform__  # type: ignore[attr-defined]
    # Python 3.11 keeps unknown options under "kwargs"; 3.12+ has frozen_default itself.
    assert spec.get("frozen_default", spec.get("kwargs", {}).get("frozen_default")) is True
    for cls in (Entry, Message, HardState, Ready):
        assert "__slots__" in vars(cls)
    e = Entry(1, 2, data=b"x")
    with pytest.raises(AttributeError):
        e.extra = 1  # type: ignore[attr-defined]
    # Same value semantics as a frozen dataclass: equality and a field-based hash.
    assert e == Entry(1, 2, data=b"x") and hash(e) == hash(Entry(1, 2, data=b"x"))
    assert len({Message(MessageType.APP, to=2), Message(MSG_APP, to=2)}) == 1
    assert hash(HardState(1, 2, 3)) == hash(HardState(1, 2, 3))


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
