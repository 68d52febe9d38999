"""Start and stop a private, single-member real etcd for differential and interop tests.

The server listens on free loopback ports (found by binding port 0; never 2379/2380),
keeps its data in a temporary directory, and is killed with SIGKILL by PID at the end: the
tests only need it as an oracle, so an unclean stop is fine and fast. Short Raft timers
make the single member elect itself within a few tens of milliseconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from api.proto import rpc_pb2, rpc_pb2_grpc
from bench.ports import free_port

START_TIMEOUT_S = 20.0
START_ATTEMPTS = 3


def etcd_binary() -> str | None:
    return shutil.which("etcd")


@dataclass(frozen=True, slots=True)
class EtcdServer:
    endpoint: str  # "127.0.0.1:<port>", for grpc.insecure_channel
    pid: int
    data_dir: Path


@contextmanager
def run_etcd(*, extra_args: tuple[str, ...] = ()) -> Iterator[EtcdServer]:
    """Run a fresh etcd; yield once it answers Status; always kill it afterwards."""
    binary = etcd_binary()
    if binary is None:
        raise RuntimeError("etcd binary not found on PATH")
    with tempfile.TemporaryDirectory(prefix="etcd-oracle-") as tmp:
        # A port found free may be taken before etcd binds it (tests run in parallel):
        # start again on new ports a few times.
        for attempt in range(START_ATTEMPTS):
            proc, endpoint, data_dir = _start(binary, Path(tmp) / f"try{attempt}", extra_args)
            try:
                _wait_ready(endpoint, proc, Path(tmp) / f"try{attempt}" / "etcd.log")
            except EtcdExitedError:
                if attempt + 1 == START_ATTEMPTS:
                    raise
                continue
            except BaseException:
                _kill(proc)
                raise
            try:
                yield EtcdServer(endpoint=endpoint, pid=proc.pid, data_dir=data_dir)
            finally:
                _kill(proc)
            return


class EtcdExitedError(RuntimeError):
    pass


def _start(
    binary: str, workdir: Path, extra_args: tuple[str, ...]
) -> tuple[subprocess.Popen[bytes], str, Path]:
    workdir.mkdir()
    data_dir = workdir / "data"
    client_port, peer_port = free_port(), free_port()
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    args = [
        binary,
        "--name", "oracle",
        "--data-dir", str(data_dir),
        "--listen-client-urls", client_url,
        "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url,
        "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"oracle={peer_url}",
        "--heartbeat-interval", "10",
        "--election-timeout", "100",
        "--log-level", "error",
        "--logger", "zap",
        *extra_args,
    ]
    with open(workdir / "etcd.log", "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"127.0.0.1:{client_port}", data_dir


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait_ready(endpoint: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with grpc.insecure_channel(endpoint) as channel:
        stub = rpc_pb2_grpc.MaintenanceStub(channel)
        while True:
            if proc.poll() is not None:
                raise EtcdExitedError(f"etcd exited early: {log_path.read_text()[-2000:]}")
            try:
                status = stub.Status(rpc_pb2.StatusRequest(), timeout=1.0)
                if status.leader != 0:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd not ready in {START_TIMEOUT_S}s: {log_path.read_text()[-2000:]}")
            time.sleep(0.02)
