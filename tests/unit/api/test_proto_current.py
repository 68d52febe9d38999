"""The committed stubs in api/proto/ are exactly what `python -m api.proto.generate` writes.

If this fails, a .proto was edited (or grpcio-tools changed) without regenerating: run
`python -m api.proto.generate` from the repository root and commit the result.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from api.proto import generate


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
        want, got = fresh.read_text(), committed.read_text()
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
