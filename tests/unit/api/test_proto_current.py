"""The committed stubs in api/proto/ are exactly what `python -m api.proto.generate` writes.

If this fails, a .proto was edited without regenerating (or a newer grpcio-tools writes
different code): run `python -m api.proto.generate` from the repository root and commit the
result. The generator's version stamps alone (protobuf gencode version, GRPC_GENERATED_VERSION)
are ignored, so an upgrade of grpcio-tools that writes the same code does not fail here.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from api.proto import generate

_VERSION_STAMPS = (
    (re.compile(r"# Protobuf Python Version: [0-9.]+"), "# Protobuf Python Version: X"),
    (
        re.compile(r"(Domain\.PUBLIC,\n)\s*\d+,\n\s*\d+,\n\s*\d+,\n\s*'[^']*',"),
        r"\1    X,",
    ),
    (re.compile(r"GRPC_GENERATED_VERSION = '[0-9.]+'"), "GRPC_GENERATED_VERSION = 'X'"),
)


def without_version_stamps(text: str) -> str:
    for pattern, replacement in _VERSION_STAMPS:
        text = pattern.sub(replacement, text)
    return text


def test_version_stamps_are_recognised() -> None:
    # The normalisation must actually find the stamps, or it would hide nothing and mean nothing.
    text = (generate.ROOT / generate.PROTO_DIR / "rpc_pb2.py").read_text()
    assert without_version_stamps(text).count(" X") >= 2
    grpc_text = (generate.ROOT / generate.PROTO_DIR / "rpc_pb2_grpc.py").read_text()
    assert "GRPC_GENERATED_VERSION = 'X'" in without_version_stamps(grpc_text)


def test_committed_stubs_match_regenerated(tmp_path: Path) -> None:
    regenerated = generate.generate(tmp_path)
    assert len(regenerated) == len(generate.PROTO_NAMES) * len(generate.SUFFIXES)
    stale: list[str] = []
    for fresh in regenerated:
        rel = fresh.relative_to(tmp_path)
        committed = generate.ROOT / rel
        if not committed.exists():
            stale.append(f"{rel}: missing")
            continue
        want = without_version_stamps(fresh.read_text())
        got = without_version_stamps(committed.read_text())
        if want != got:
            diff = difflib.unified_diff(
                got.splitlines(), want.splitlines(), "committed", "regenerated", lineterm="", n=1
            )
            stale.append(f"{rel}:\n" + "\n".join(list(diff)[:20]))
    assert not stale, "stale generated stubs; run `python -m api.proto.generate`:\n" + "\n".join(stale)


def test_no_stray_generated_files() -> None:
    # A renamed or removed .proto must not leave its old stubs behind.
    expected = {p.name for p in generate.generated_files()}
    present = {
        p.name for p in (generate.ROOT / generate.PROTO_DIR).iterdir() if "_pb2" in p.name
    }
    assert present == expected
