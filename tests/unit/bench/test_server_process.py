"""bench/server_process.py: the command lines both server kinds are started with."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import server_process
from bench.server_process import MemberProcess


def test_kvstore_gets_its_own_flags_then_the_callers(tmp_path: Path) -> None:
    m = MemberProcess("kvstore", "n2", tmp_path / "n2", tmp_path / "n2.log")
    cmd = m.command(["--initial-cluster", f"n2={m.peer_url}"])
    assert cmd[:3] == [sys.executable, "-m", "api.server.main"]
    flags = cmd[3:]
    assert flags[flags.index("--name") + 1] == "n2"
    assert flags[flags.index("--data-dir") + 1] == str(tmp_path / "n2")
    assert flags[flags.index("--listen-client-urls") + 1] == f"http://{m.endpoint}"
    assert flags[flags.index("--listen-peer-urls") + 1] == m.peer_url
    assert flags[-2:] == ["--initial-cluster", f"n2={m.peer_url}"]  # no log level by default
    assert m.client_port != m.peer_port and 2379 not in (m.client_port, m.peer_port)


def test_log_level_for_kvstore_and_etcds_own_logging(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    quiet = MemberProcess("kvstore", "n1", tmp_path, tmp_path / "log", kvstore_log_level="error")
    assert quiet.command([])[-2:] == ["--log-level", "error"]
    monkeypatch.setattr(server_process, "etcd_binary", lambda: "fake-etcd")
    etcd = MemberProcess("etcd", "n1", tmp_path, tmp_path / "log", kvstore_log_level="error")
    cmd = etcd.command(["--election-timeout", "500"])
    assert cmd[0] == "fake-etcd"
    assert cmd[-6:] == ["--election-timeout", "500", "--log-level", "error", "--logger", "zap"]


def test_no_etcd_binary_and_unknown_kinds_are_refused(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_process, "etcd_binary", lambda: None)
    with pytest.raises(RuntimeError, match="etcd binary not found"):
        MemberProcess("etcd", "n1", tmp_path, tmp_path / "log").command([])
    with pytest.raises(ValueError, match="unknown server kind"):
        MemberProcess("zookeeper", "n1", tmp_path, tmp_path / "log")


def test_kill_before_any_spawn_is_harmless(tmp_path: Path) -> None:
    m = MemberProcess("kvstore", "n1", tmp_path, tmp_path / "log")
    assert not m.running
    m.kill()
    with pytest.raises(RuntimeError, match="not running"):
        _ = m.pid
    assert m.log_tail() == ""
