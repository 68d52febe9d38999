"""Golden protocol traces: every tests/scenarios/raft/*.txt file through an InteractionEnv.

Regenerate with `pytest tests/unit/raft/test_scenarios.py --rewrite`, then read the diff as
a protocol trace and check it by hand before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from raft.testing.interaction import InteractionEnv
from tests.datadriven import Case, run_file

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios" / "raft"
FILES = sorted(SCENARIOS.glob("*.txt"))


def test_scenarios_exist() -> None:
    assert len(FILES) >= 8


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: Path) -> None:
    env = InteractionEnv()

    def handler(case: Case) -> str:
        return env.handle(case.command, [(a.key, a.values) for a in case.args], case.input)

    run_file(path, handler)
