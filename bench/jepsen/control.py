"""Process control of the cluster under test: start, kill, pause, restart, remove/re-add.

Theory of operation. A `Cluster` owns N member processes of one server kind (kvstore,
etcd, or a command template) with the same etcd flags; the network backend (net.py) says
where each listens and what it advertises, and may wrap the command (ip netns exec). A
member keeps its name, addresses and data dir across kill/restart; a re-added member gets
a fresh data dir and `--initial-cluster-state existing`. Every process is signalled by its
PID only, and `close()` SIGKILLs every process this object started.

Command templates use Python format fields: {name} {data_dir} {client_url} {peer_url}
{listen_client_url} {listen_peer_url} {initial_cluster} {initial_cluster_state}
{initial_cluster_token}, e.g. "etcd --name {name} --data-dir {data_dir} ...".
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.jepsen.net import Net

REPO = Path(__file__).resolve().parents[2]
TOKEN = "kvbench-jepsen"


@dataclass(slots=True)
class Member:
    index: int
    name: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    generation: int = 0
    cluster_state: str = "new"
    initial_cluster: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    def __init__(self, kind: str, n: int, tmp: Path, net: Net, *, template: str = "",
                 heartbeat_ms: int = 50, election_ms: int = 500, snapshot_count: int = 2000) -> None:
        self.kind = kind
        self.n = n
        self.tmp = tmp
        self.net = net
        self.template = template
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.snapshot_count = snapshot_count
        self.members = [
            Member(i, f"n{i + 1}", tmp / f"n{i + 1}.data", tmp / f"n{i + 1}.log") for i in range(n)
        ]
        full = ",".join(f"{m.name}={net.urls(m.index)['peer_url']}" for m in self.members)
        for m in self.members:
            m.initial_cluster = full

    @property
    def endpoints(self) -> list[str]:
        return [self.net.client_endpoint(i) for i in range(self.n)]

    def command(self, m: Member) -> list[str]:
        u = self.net.urls(m.index)
        fields = {
            "name": m.name, "data_dir": str(m.data_dir), **u,
            "initial_cluster": m.initial_cluster, "initial_cluster_state": m.cluster_state,
            "initial_cluster_token": TOKEN,
        }
        if self.template:
            return shlex.split(self.template.format(**fields))
        flags = [
            "--name", m.name, "--data-dir", str(m.data_dir),
            "--listen-client-urls", u["listen_client_url"],
            "--advertise-client-urls", u["client_url"],
            "--listen-peer-urls", u["listen_peer_url"],
            "--initial-advertise-peer-urls", u["peer_url"],
            "--initial-cluster", m.initial_cluster,
            "--initial-cluster-state", m.cluster_state,
            "--initial-cluster-token", TOKEN,
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--snapshot-count", str(self.snapshot_count),
        ]
        if self.kind == "etcd":
            binary = shutil.which("etcd")
            if binary is None:
                raise RuntimeError("etcd binary not found on PATH (make debs)")
            return [binary, *flags, "--log-level", "error", "--logger", "zap"]
        return [sys.executable, "-m", "api.server.main", *flags, "--log-level", "warn"]

    # ---- lifecycle --------------------------------------------------------------------------

    def spawn(self, i: int, *, env: dict[str, str] | None = None) -> None:
        m = self.members[i]
        m.env = dict(env or {})
        full_env = {**os.environ, "ETCD_UNSUPPORTED_ARCH": "", "PYTHONPATH": str(REPO), **m.env}
        with open(m.log_path, "ab") as log:
            extra = " ".join(f"{k}={v}" for k, v in m.env.items())
            log.write(f"--- start {time.strftime('%H:%M:%S')} {extra}\n".encode())
            log.flush()
            m.proc = subprocess.Popen(
                self.net.wrap(i, self.command(m)), stdout=log, stderr=subprocess.STDOUT,
                env=full_env, cwd=REPO,
            )
        m.paused = False
        self.net.member_started(i, m.proc.pid)

    def start_all(self) -> None:
        for i in range(self.n):
            self.spawn(i)

    def kill(self, i: int) -> None:
        m = self.members[i]
        if m.proc is not None:
            if m.proc.poll() is None:
                os.kill(m.proc.pid, signal.SIGKILL)
            m.proc.wait()
        m.paused = False

    def restart(self, i: int, *, env: dict[str, str] | None = None) -> None:
        self.kill(i)
        self.spawn(i, env=env)

    def pause(self, i: int) -> None:
        m = self.members[i]
        if m.running:
            os.kill(m.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
            m.paused = True

    def resume(self, i: int) -> None:
        m = self.members[i]
        if m.proc is not None and m.paused:
            if m.proc.poll() is None:
                os.kill(m.proc.pid, signal.SIGCONT)
            m.paused = False

    def prepare_rejoin(self, i: int, initial_cluster: str) -> None:
        """After member i was removed: a fresh data dir, joining the existing cluster."""
        m = self.members[i]
        self.kill(i)
        m.generation += 1
        m.data_dir = self.tmp / f"{m.name}.data.{m.generation}"
        m.cluster_state = "existing"
        m.initial_cluster = initial_cluster

    def log_tail(self, i: int, n: int = 2000) -> str:
        try:
            return self.members[i].log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def close(self) -> None:
        for i, m in enumerate(self.members):
            if m.paused and m.running:
                os.kill(m.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
            self.kill(i)
