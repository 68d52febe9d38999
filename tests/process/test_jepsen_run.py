"""`kvbench jepsen` end to end: a short faulty run on 3 kvstore members must PASS, and each
--inject-bug mode must FAIL with the anomaly its checker names (issue 7).

Each run is a real `python -m bench.cli jepsen` process (its clean-up of members,
namespaces and proxies is part of what is tested). The faulty run asks for every fault,
including delay, so on a kernel without netem it exercises the proxy backend; the
inject-bug runs have no faults, so they take network namespaces where those work.
Budget: about 45 s for the faulty run and ~20 s per inject-bug run on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXPECTED_KIND = {
    "stale-read": "nonlinearizable",
    "lost-write": "lost-write",
    "watch-drop": "watch-gap",
    "watch-dup": "watch-duplicate",
}


def jepsen(tmp_path: Path, *args: str) -> tuple[int, str, dict[str, object]]:
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cli", "jepsen", "--results", str(results), *args],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-3000:]
    verdict = json.loads((results / "verdict.json").read_text())
    for name in ("history.json", "verdict.txt", "latency.png", "throughput.png"):
        assert (results / name).exists(), name
    return proc.returncode, lines[-1], verdict


def test_short_faulty_run_passes(tmp_path: Path) -> None:
    rc, last, verdict = jepsen(
        tmp_path, "--nodes", "3", "--time", "32", "--seed", "7", "--fault-s", "2,4",
        "--quiet", "4", "--concurrency", "4",
    )
    assert last.startswith("verdict: PASS "), (last, verdict)
    assert rc == 0
    assert verdict["faults"] >= 3
    assert verdict["ops"] > 500


@pytest.mark.parametrize("mode", sorted(EXPECTED_KIND))
def test_injected_bug_fails(tmp_path: Path, mode: str) -> None:
    rc, last, verdict = jepsen(
        tmp_path, "--nodes", "3", "--time", "10", "--faults", "none", "--seed", "3",
        "--inject-bug", mode, "--quiet", "0", "--concurrency", "4",
    )
    assert last.startswith("verdict: FAIL "), (last, verdict)
    assert rc == 1
    assert EXPECTED_KIND[mode] in verdict["kinds"], verdict["kinds"]
