"""`kvctl check perf` against kvstore and real etcd.

* Shortened to 3 s (KVCTL_CHECK_PERF_SECONDS) against both servers: etcdctl's progress
  counter's last state, its three report lines in order, a verdict consistent with them
  and with the exit code, and the prefix left empty.
* Side by side with etcdctl at etcdctl's fixed 60 s, each on its own fresh etcd (both write
  the same prefix, so not one server): identical output once the progress redraws and the
  measured numbers are normalised.
"""

from __future__ import annotations

import concurrent.futures
import re
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.compat.kvctl_harness import etcdctl_runner, run_subprocess
from tests.process.servers import KINDS, run_server

pytestmark = [pytest.mark.slow]

LINES = [
    re.compile(r"(PASS: Throughput is \d+|FAIL: Throughput too low: \d+) writes/s"),
    re.compile(r"(PASS: Slowest request took|Slowest request took too long:) \d+\.\d{6}s"),
    re.compile(r"(PASS: Stddev is|FAIL: Stddev too high:) \d+\.\d{6}s"),
]


def final_lines(stdout: bytes) -> list[str]:
    """Each line as a terminal shows it once the carriage-return redraws are done."""
    text = stdout.decode().removesuffix("\n")  # not splitlines(): it splits at "\r" too
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n")] if text else []


@pytest.mark.parametrize("kind", KINDS)
def test_check_perf_reports_like_etcdctl(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVCTL_CHECK_PERF_SECONDS", "3")
    with run_server(kind) as server:
        ep = f"--endpoints={server.endpoint}"
        out, err, code = run_subprocess([ep, "check", "perf", "--load=s"], None, 60.0, Path.cwd())
        lines = final_lines(out)
        assert len(lines) == 5 and lines[0] == " 3 / 3  100.00% 3s", (out, err)
        for pattern, line in zip(LINES, lines[1:4], strict=True):
            assert pattern.fullmatch(line), line
        failed = any(line.startswith(("FAIL", "Slowest request took too long")) for line in lines[1:4])
        assert lines[4] == ("FAIL" if failed else "PASS")
        assert (int(code) == 0) == (not failed)
        # Throughput is bounded by the load's rate limit (150 puts/s for "s").
        assert int(re.findall(r"\d+", lines[1])[0]) <= 165
        left, _, _ = run_subprocess(
            [ep, "get", "--prefix", "--count-only", "-w", "json", "/etcdctl-check-perf/"],
            None, 30.0, Path.cwd(),
        )
        assert '"count"' not in left.decode(), left  # etcdctl's JSON omits a zero count


_NUMBERS = re.compile(r"(Throughput is |too low: )\d+|(took |too long: |Stddev is |too high: )\d+\.\d+")


# The progress counter's redraws; etcdctl's own last state varies with load (sometimes
# "60 / 60  100.00% 1m0s" and a newline, sometimes "59 / 60   98.33%" and none).
_PROGRESS = re.compile(r"(\r *\d+ / \d+ +\d+\.\d+%(?: [0-9hms]+)?)+\n?")


def _normalised(result: tuple[bytes, bytes, str]) -> tuple[list[str], str, str]:
    out, err, code = result
    text = _PROGRESS.sub("", out.decode())
    lines = [_NUMBERS.sub(lambda m: (m.group(1) or m.group(2)) + "<N>", ln) for ln in text.splitlines()]
    return lines, err.decode(), code


def test_check_perf_matches_etcdctl_side_by_side(tmp_path: Path) -> None:
    with ExitStack() as stack:
        servers = [stack.enter_context(run_server("etcd")) for _ in range(2)]
        argv = [["--endpoints=" + s.endpoint, "check", "perf"] for s in servers]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            want = pool.submit(etcdctl_runner(), argv[0], None, 120.0, tmp_path)
            got = pool.submit(run_subprocess, argv[1], None, 120.0, tmp_path)
            etcdctl, kvctl = _normalised(want.result()), _normalised(got.result())
    assert etcdctl[0][0] == "PASS: Throughput is <N> writes/s", etcdctl
    assert kvctl == etcdctl
