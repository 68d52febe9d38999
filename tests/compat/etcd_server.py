"""Start and stop a private, single-member real etcd for differential and interop tests.

The server is a `ServerProcess` (tests/process/servers.py: free loopback ports, never
2379/2380) named "oracle", keeps its data in a temporary directory, and is killed with
SIGKILL by PID at the end: the tests only need it as an oracle, so an unclean stop is fine
and fast. Short Raft timers make the single member elect itself within a few tens of
milliseconds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.server_process import etcd_binary
from tests.process.servers import ServerProcess

START_ATTEMPTS = 3
FAST_TIMERS = ("--heartbeat-interval", "10", "--election-timeout", "100")


@dataclass(frozen=True, slots=True)
class EtcdServer:
    endpoint: str  # "127.0.0.1:<port>", for grpc.insecure_channel
    pid: int
    data_dir: Path


@contextmanager
def run_etcd(*, extra_args: tuple[str, ...] = ()) -> Iterator[EtcdServer]:
    """Run a fresh etcd; yield once it answers Status with a leader; always kill it after."""
    if etcd_binary() is None:
        raise RuntimeError("etcd binary not found on PATH")
    with tempfile.TemporaryDirectory(prefix="etcd-oracle-") as tmp:
        # A port found free may be taken before etcd binds it (tests run in parallel):
        # start again on new ports a few times.
        for attempt in range(START_ATTEMPTS):
            workdir = Path(tmp) / f"try{attempt}"
            workdir.mkdir()
            server = ServerProcess("etcd", workdir, (*FAST_TIMERS, *extra_args), name="oracle")
            try:
                server.start()
            except RuntimeError:
                server.kill()
                if attempt + 1 == START_ATTEMPTS:
                    raise
                continue
            except BaseException:
                server.kill()
                raise
            try:
                yield EtcdServer(endpoint=server.endpoint, pid=server.pid, data_dir=server.data_dir)
            finally:
                server.kill()
            return
