"""`kvbench floor`: the echo server process starts, answers, and the figures are printed."""

from __future__ import annotations

import re

import pytest

from bench.cli import main as kvbench_main


@pytest.mark.parametrize("front, server", [("http2", "api/http2"), ("grpcio", "grpc.aio")])
def test_floor_measures_a_real_echo_round_trip(
    capsys: pytest.CaptureFixture[str], front: str, server: str
) -> None:
    assert kvbench_main(["floor", "--calls", "200", "--payload", "64", "--front", front]) == 0
    out = capsys.readouterr().out
    assert f"({server} + uvloop echo" in out
    m = re.search(r"64 B, 1 client\): (\d+) calls/s, p50 ([\d.]+) ms, p90 ([\d.]+) ms, "
                  r"p99 ([\d.]+) ms", out)
    assert m, out
    rate, p50, p90, p99 = int(m[1]), float(m[2]), float(m[3]), float(m[4])
    assert rate > 0 and 0 < p50 <= p90 <= p99


def test_floor_refuses_nonsense(capsys: pytest.CaptureFixture[str]) -> None:
    assert kvbench_main(["floor", "--calls", "0"]) == 2
    assert "--calls must be >= 1" in capsys.readouterr().err
