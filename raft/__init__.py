"""raft: the Raft consensus core as a pure state machine (no I/O, no clock, no threads).

Public surface (pinned by tests/unit/raft/test_init.py): `RawNode` driven by `tick()`,
`step()`, `propose*()`, `read_index()`, producing `Ready` batches (contract in
`raft/ready.py`), the records of `raft.types`, `MemoryStorage` / `LogStorage`, and the
error tree of `raft.errors`. Everything else is internal.
"""

from raft.describe import describe_entry, describe_message, describe_ready
from raft.errors import (
    CompactedError,
    ConfChangeError,
    InvariantError,
    ProposalDroppedError,
    RaftError,
    ReadyNotAdvancedError,
    SnapOutOfDateError,
    SnapshotTemporarilyUnavailableError,
    StepLocalMsgError,
    StepPeerNotFoundError,
    StorageError,
    UnavailableError,
)
from raft.raw_node import RawNode
from raft.ready import Ready, sends_before_persist
from raft.storage import LogStorage, MemoryStorage
from raft.types import (
    NONE,
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProgressState,
    ProgressStatus,
    ReadOnlyOption,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateType,
    Status,
)

__all__ = [
    "NONE",
    "CompactedError",
    "ConfChange",
    "ConfChangeError",
    "ConfChangeType",
    "ConfState",
    "Config",
    "Entry",
    "EntryType",
    "HardState",
    "InvariantError",
    "LogStorage",
    "MemoryStorage",
    "Message",
    "MessageType",
    "ProgressState",
    "ProgressStatus",
    "ProposalDroppedError",
    "RaftError",
    "RawNode",
    "ReadOnlyOption",
    "ReadState",
    "Ready",
    "ReadyNotAdvancedError",
    "SnapOutOfDateError",
    "Snapshot",
    "SnapshotMetadata",
    "SnapshotTemporarilyUnavailableError",
    "SoftState",
    "StateType",
    "Status",
    "StepLocalMsgError",
    "StepPeerNotFoundError",
    "StorageError",
    "UnavailableError",
    "describe_entry",
    "describe_message",
    "describe_ready",
    "sends_before_persist",
]
