"""Process control for the benchmark: start one fresh etcd or kvstore member, sample /proc.

A server started here gets free loopback ports (bind port 0, close, hand the number to the
server; never 2379/2380) and a fresh temp data dir, so kvstore and etcd start from the same
empty state. `start()` returns once Maintenance.Status names a leader; `stop()` sends SIGKILL
by PID and removes the temp dir. Both kinds get the same etcd flags, and etcd's own defaults
(snapshot count, heartbeat, quotas) are left alone on both sides so the comparison is fair.

`ProcStats` reads the server's CPU time (utime + stime of /proc/<pid>/stat, all threads) and
its resident set (VmRSS and the high-water mark VmHWM of /proc/<pid>/status). The benchmark
never imports the server: it judges kvstore and etcd through the wire only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from api.proto import rpc_pb2, rpc_pb2_grpc
from bench.load.errors import ServerStartError

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
KINDS = ("kvstore", "etcd")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_s: float
    rss_bytes: int
    rss_peak_bytes: int
    # RSS split: anonymous memory (heap: Python objects, indexes) vs file-backed pages
    # (mmap'd files such as LMDB's data file, which the kernel can drop and re-read).
    rss_anon_bytes: int = 0
    rss_file_bytes: int = 0
    # CPU seconds of each thread (tid -> s): the busiest thread bounds a server whose hot
    # path is serial (one event loop), however many cores the machine has.
    thread_cpu_s: tuple[tuple[int, float], ...] = ()


def _stat_cpu_s(path: str) -> float:
    with open(path, "rb") as f:
        stat = f.read().decode()
    # The command name (field 2) may contain spaces; the fields after its ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


def busiest_thread_cpu_s(before: ProcSample, after: ProcSample) -> float:
    """The largest CPU time one thread used between two samples."""
    old = dict(before.thread_cpu_s)
    return max((cpu - old.get(tid, 0.0) for tid, cpu in after.thread_cpu_s), default=0.0)


def sample_proc(pid: int) -> ProcSample:
    """CPU seconds so far (whole process and per thread) and RSS of `pid` (Linux /proc)."""
    cpu_s = _stat_cpu_s(f"/proc/{pid}/stat")
    threads = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            threads.append((int(tid), _stat_cpu_s(f"/proc/{pid}/task/{tid}/stat")))
        except FileNotFoundError:  # the thread ended between listdir and open
            continue
    fields_kib = {"VmRSS": 0, "VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in fields_kib:
                fields_kib[name] = int(rest.split()[0])
    return ProcSample(
        cpu_s=cpu_s, rss_bytes=fields_kib["VmRSS"] * 1024,
        rss_peak_bytes=fields_kib["VmHWM"] * 1024,
        rss_anon_bytes=fields_kib["RssAnon"] * 1024, rss_file_bytes=fields_kib["RssFile"] * 1024,
        thread_cpu_s=tuple(threads),
    )


def etcd_binary() -> str | None:
    return shutil.which("etcd")


class BenchServer:
    """One fresh single-member server on loopback ports; use as a context manager."""

    def __init__(self, kind: str, *, extra_args: tuple[str, ...] = ()) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown server kind {kind!r}")
        self.kind = kind
        self.extra_args = extra_args
        self.client_port = free_port()
        self.peer_port = free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ServerStartError(f"{self.kind} is not running")
        return self.proc.pid

    def command(self, data_dir: Path) -> list[str]:
        client_url = f"http://127.0.0.1:{self.client_port}"
        peer_url = f"http://127.0.0.1:{self.peer_port}"
        flags = [
            "--name", "bench",
            "--data-dir", str(data_dir),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"bench={peer_url}",
            *self.extra_args,
        ]
        if self.kind == "etcd":
            binary = etcd_binary()
            if binary is None:
                raise ServerStartError("etcd binary not found on PATH")
            return [binary, *flags, "--log-level", "error", "--logger", "zap"]
        return [sys.executable, "-m", "api.server.main", *flags, "--log-level", "error"]

    def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"kvbench-load-{self.kind}-")
        tmp = Path(self._tmp.name)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.log_path = tmp / "server.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(tmp / "data"), stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=REPO,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        with grpc.insecure_channel(self.endpoint) as channel:
            stub = rpc_pb2_grpc.MaintenanceStub(channel)
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise ServerStartError(f"{self.kind} exited early: {self.log_tail()}")
                try:
                    if stub.Status(rpc_pb2.StatusRequest(), timeout=1.0).leader != 0:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"{self.kind} not ready in {START_TIMEOUT_S}s: {self.log_tail()}"
                    )
                time.sleep(0.05)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> BenchServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
