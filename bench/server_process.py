"""One etcd-compatible server process on loopback, kvstore or the real etcd 3.4: what the
benchmark (bench/load/cluster.py) and the process tests (tests/process/) share.

A `MemberProcess` has a fixed identity: a name, free loopback client and peer ports
(bench/ports.py; never 2379/2380), a data dir and a log file. It runs at most one process
at a time. `spawn(flags)` starts it with the member's own flags (name, data dir, URLs)
followed by `flags`; both kinds take the same etcd flags. `kill()` SIGKILLs it by PID (a
crash) and reaps it, so a restart is kill + spawn on the same data dir and ports.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.ports import free_port

REPO = Path(__file__).resolve().parents[1]
KINDS = ("kvstore", "etcd")


def etcd_binary() -> str | None:
    return shutil.which("etcd")


class MemberProcess:
    """A server's fixed identity and its current process (see the module docstring)."""

    def __init__(self, kind: str, name: str, data_dir: Path, log_path: Path, *,
                 kvstore_log_level: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown server kind {kind!r}")
        self.kind = kind
        self.name = name
        self.data_dir = data_dir
        self.log_path = log_path
        self.client_port = free_port()
        self.peer_port = free_port()
        self.kvstore_log_level = kvstore_log_level  # None: the server's default
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0  # monotonic time of the last spawn

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.kind} {self.name} is not running")
        return self.proc.pid

    def command(self, flags: Sequence[str]) -> list[str]:
        own = [
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            *flags,
        ]
        if self.kind == "etcd":
            binary = etcd_binary()
            if binary is None:
                raise RuntimeError("etcd binary not found on PATH")
            return [binary, *own, "--log-level", "error", "--logger", "zap"]
        level = ["--log-level", self.kvstore_log_level] if self.kvstore_log_level else []
        return [sys.executable, "-m", "api.server.main", *own, *level]

    def spawn(self, flags: Sequence[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "ETCD_UNSUPPORTED_ARCH": ""}
        self.spawned_at = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(flags), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
            )

    def kill(self) -> float:
        """SIGKILL by PID and reap; returns the monotonic time right after the signal."""
        killed_at = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            killed_at = time.monotonic()
        if self.proc is not None:
            self.proc.wait()
        return killed_at

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""
