"""Start real server processes for process and compat tests: real etcd or kvstore.

Both kinds take the same etcd flags and are started the same way:

* "etcd": the real etcd 3.4 binary (shutil.which("etcd")), the oracle;
* "kvstore": `python -m api.server.main`, the real server (raft + WAL + snapshot + store).

Each server gets free loopback ports (bound to port 0 first; never 2379/2380) and a temp
data dir. `run_server` yields once Maintenance.Status answers with a leader, and always
SIGKILLs the process by PID at the end; `kill()` and `restart()` serve crash tests
(restart keeps the data dir and ports).

`KINDS` parametrizes a fixture over the kinds, so every behaviour is checked against the
oracle and against us in the same test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from api.proto import rpc_pb2, rpc_pb2_grpc
from bench.ports import free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0

needs_etcd = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd binary not installed")
needs_etcdctl = pytest.mark.skipif(
    shutil.which("etcdctl") is None or shutil.which("etcd") is None,
    reason="etcd / etcdctl binaries not installed",
)

KINDS = [
    pytest.param("etcd", marks=needs_etcd, id="etcd"),
    pytest.param("kvstore", id="kvstore"),
]


class ServerProcess:
    """One running server; `endpoint` is "127.0.0.1:<client port>"."""

    def __init__(
        self,
        kind: str,
        tmp: Path,
        extra_args: tuple[str, ...],
    ) -> None:
        self.kind = kind
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.metrics_port = free_port()
        self.extra_args = extra_args
        self.name = "n1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / f"{kind}.log"

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
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("server not running")
        return self.proc.pid

    def command(self) -> list[str]:
        flags = [
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", f"{self.name}={self.peer_url}",
            "--listen-metrics-urls", self.metrics_url,
            *self.extra_args,
        ]
        if self.kind == "etcd":
            binary = shutil.which("etcd")
            if binary is None:
                raise RuntimeError("etcd binary not found on PATH")
            # etcd's default raft timers: the minimum lease TTL (2 s) derives from them.
            return [binary, *flags, "--log-level", "error", "--logger", "zap"]
        return [sys.executable, "-m", "api.server.main", *flags]

    def start(self) -> None:
        env = {**os.environ, "ETCD_UNSUPPORTED_ARCH": "", "PYTHONPATH": str(REPO)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        with grpc.insecure_channel(self.endpoint) as channel:
            stub = rpc_pb2_grpc.MaintenanceStub(channel)
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.kind} exited early: {self.log_tail()}")
                try:
                    status = stub.Status(rpc_pb2.StatusRequest(), timeout=1.0)
                    if status.leader != 0:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.kind} not ready in {START_TIMEOUT_S}s: {self.log_tail()}")
                time.sleep(0.02)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL by PID (a crash) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def restart(self) -> None:
        """Kill (if running) and start again on the same data dir and ports."""
        self.kill()
        self.start()


@contextmanager
def run_server(
    kind: str,
    *,
    extra_args: tuple[str, ...] = (),
) -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix=f"{kind}-proc-") as tmp:
        server = ServerProcess(kind, Path(tmp), extra_args)
        try:
            server.start()
            yield server
        finally:
            server.kill()
