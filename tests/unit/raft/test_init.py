"""The public surface of raft/ is pinned, and raft/ imports nothing that does I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import raft

ROOT = Path(__file__).resolve().parents[3]

EXPECTED_ALL = {
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
}

FORBIDDEN = {"asyncio", "os", "socket", "time", "threading", "subprocess", "pickle", "select"}


def test_all_is_pinned() -> None:
    assert set(raft.__all__) == EXPECTED_ALL
    assert len(raft.__all__) == len(EXPECTED_ALL)
    for name in raft.__all__:
        assert hasattr(raft, name), name


def test_raft_is_ours() -> None:
    assert raft.__file__ is not None
    assert Path(raft.__file__).resolve().is_relative_to(ROOT)


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((a.name.split(".")[0], node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def _global_random_uses(path: Path) -> list[int]:
    """Lines calling module-level random functions (random.random(), random.choice(), ...);
    only constructing `random.Random(seed)` is allowed."""
    tree = ast.parse(path.read_text(), str(path))
    bad = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
            and node.attr != "Random"
        ):
            bad.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "random":
            if any(a.name != "Random" for a in node.names):
                bad.append(node.lineno)
    return bad


def test_no_forbidden_imports() -> None:
    files = sorted((ROOT / "raft").rglob("*.py"))
    assert len(files) >= 18
    offenders = []
    for path in files:
        for mod, line in _imports(path):
            if mod in FORBIDDEN or mod in {"wal", "snapshot", "kvstore", "api"}:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
        offenders.extend(
            f"{path.relative_to(ROOT)}:{line} uses the global random"
            for line in _global_random_uses(path)
        )
    assert offenders == []


def test_scanner_detects_forbidden_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom time import monotonic\nimport random\nx = random.random()\n")
    assert {m for m, _ in _imports(bad)} >= {"os", "time"}
    assert _global_random_uses(bad) == [4]
