"""Start real server processes for process and compat tests: real etcd or kvstore.

Both kinds take the same etcd flags and are started the same way:

* "etcd": the real etcd 3.4 binary (shutil.which("etcd")), the oracle;
* "kvstore": `python -m api.server.main`, the real server (raft + WAL + snapshot + store).

Each server is a `MemberProcess` (bench/server_process.py: free loopback ports, never
2379/2380) with a temp data dir. `run_server` yields once Maintenance.Status answers with a leader, and always
SIGKILLs the process by PID at the end; `kill()` and `restart()` serve crash tests
(restart keeps the data dir and ports).

`KINDS` parametrizes a fixture over the kinds, so every behaviour is checked against the
oracle and against us in the same test.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from api.proto import rpc_pb2, rpc_pb2_grpc
from bench.ports import free_port
from bench.server_process import REPO, MemberProcess

__all__ = ["KINDS", "REPO", "ServerProcess", "free_port", "needs_etcd", "needs_etcdctl",
           "run_server"]
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


class ServerProcess(MemberProcess):
    """One running single-member server (bench/server_process.py) with a metrics URL;
    `endpoint` is "127.0.0.1:<client port>"."""

    def __init__(
        self,
        kind: str,
        tmp: Path,
        extra_args: tuple[str, ...],
        name: str = "n1",
    ) -> None:
        super().__init__(kind, name, tmp / "data", tmp / f"{kind}.log")
        self.tmp = tmp
        self.metrics_port = free_port()
        self.extra_args = extra_args

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def flags(self) -> list[str]:
        """The flags after the member's own (name, data dir, URLs)."""
        return [
            "--initial-cluster", f"{self.name}={self.peer_url}",
            "--listen-metrics-urls", self.metrics_url,
            *self.extra_args,
        ]

    def start(self) -> None:
        self.spawn(self.flags())
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
