"""`kvctl check perf` against kvstore and real etcd, shortened to a few seconds.

etcdctl's check perf always runs 60 s, so it is not in the side-by-side differential test;
this checks kvctl's report against both servers: etcdctl's four report lines in order, the
verdict consistent with them and with the exit code, and the prefix left empty.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.compat.kvctl_harness import run_subprocess
from tests.process.servers import KINDS, run_server

pytestmark = [pytest.mark.slow]

LINES = [
    re.compile(r"(PASS: Throughput is \d+|FAIL: Throughput too low: \d+) writes/s"),
    re.compile(r"(PASS: Slowest request took|Slowest request took too long:) \d+\.\d{6}s"),
    re.compile(r"(PASS: Stddev is|FAIL: Stddev too high:) \d+\.\d{6}s"),
]


@pytest.mark.parametrize("kind", KINDS)
def test_check_perf_reports_like_etcdctl(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVCTL_CHECK_PERF_SECONDS", "3")
    with run_server(kind) as server:
        ep = f"--endpoints={server.endpoint}"
        out, err, code = run_subprocess([ep, "check", "perf", "--load=s"], None, 60.0, Path.cwd())
        lines = out.decode().splitlines()
        assert len(lines) >= 4, (out, err)
        for pattern, line in zip(LINES, lines[:3], strict=True):
            assert pattern.fullmatch(line), line
        failed = any(line.startswith(("FAIL", "Slowest request took too long")) for line in lines[:-1])
        assert lines[-1] == ("FAIL" if failed else "PASS")
        assert (int(code) == 0) == (not failed)
        # Throughput is bounded by the load's rate limit (150 puts/s for "s").
        assert int(re.findall(r"\d+", lines[0])[0]) <= 165
        left, _, _ = run_subprocess(
            [ep, "get", "--prefix", "--count-only", "-w", "json", "/etcdctl-check-perf/"],
            None, 30.0, Path.cwd(),
        )
        assert '"count"' not in left.decode(), left  # etcdctl's JSON omits a zero count
