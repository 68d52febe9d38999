"""Start a static N-member cluster of real processes (kvstore or real etcd 3.4) on loopback.

Theory of operation: every member is a `MemberProcess` (bench/server_process.py: free
loopback ports, never 2379/2380) with its own temp data dir and the same etcd flags (`--initial-cluster` naming all
members, a shared `--initial-cluster-token`, short raft timers). `run_cluster` starts all
members at once (a member cannot elect alone, so they must come up together), waits until
every running member reports the same leader through Maintenance.Status, yields the
`Cluster`, and always SIGKILLs every process it started, by PID, at the end.

Fault injection, the tools of the issue-5 acceptance tests:

* `kill(i)` SIGKILL (a crash), `restart(i)` same data dir, ports and flags;
* `stop_sigstop(i)` / `cont(i)` freeze a member (it keeps its sockets, peers time out);
* `partition(i, from_=[...])` / `heal()` write the TEST-ONLY partition files that kvstore
  members re-read every ~100 ms (`--experimental-test-partition-file`): both ends of each cut
  link list each other, so a partition is symmetric even before both have polled. Real etcd
  has no such flag; partition() refuses etcd clusters.

Member IDs come from `api.server.config.compute_member_id`, the same derivation etcd uses,
so IDs are known before the processes start (and checked against MemberList in tests).
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc

from api.proto import rpc_pb2
from api.server.config import compute_member_id
from bench.server_process import MemberProcess
from tests.process.grpc_helpers import Stubs

T = TypeVar("T")


HEARTBEAT_MS = 50
ELECTION_MS = 500
TOKEN = "kvstore-cluster-test"
START_TIMEOUT_S = 30.0
PARTITION_SETTLE_S = 0.4


class Member(MemberProcess):
    """One member's fixed identity and current process (bench/server_process.py)."""

    def __init__(self, cluster: Cluster, index: int) -> None:
        name = f"n{index + 1}"
        super().__init__(cluster.kind, name, cluster.tmp / name, cluster.tmp / f"{name}.log")
        self.cluster = cluster
        self.index = index
        self.partition_file = cluster.tmp / f"{self.name}.partition"
        self.stopped = False  # SIGSTOPped
        self._stubs: Stubs | None = None

    @property
    def member_id(self) -> int:
        return compute_member_id([self.peer_url], TOKEN)

    @property
    def stubs(self) -> Stubs:
        """gRPC stubs to this member only (one channel, reused across restarts)."""
        if self._stubs is None:
            self._stubs = Stubs.connect(self.endpoint)
        return self._stubs

    def flags(self) -> list[str]:
        """The flags after the member's own (name, data dir, URLs)."""
        c = self.cluster
        flags = [
            "--initial-cluster", ",".join(f"{m.name}={m.peer_url}" for m in c.members),
            "--initial-cluster-token", TOKEN,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", str(c.heartbeat_ms),
            "--election-timeout", str(c.election_ms),
        ]
        if self.kind == "kvstore":
            flags += ["--experimental-test-partition-file", str(self.partition_file)]
        return flags

    def spawn(self, flags: Sequence[str] | None = None) -> None:
        super().spawn(self.flags() if flags is None else flags)
        self.stopped = False

    def kill(self) -> float:
        killed_at = super().kill()
        self.stopped = False
        return killed_at

    def status(self, timeout: float = 1.0) -> Any:
        return self.stubs.maintenance.Status(rpc_pb2.StatusRequest(), timeout=timeout)


class Cluster:
    """N members of one kind; indexes are 0-based positions in `members`."""

    def __init__(
        self, kind: str, size: int, tmp: Path, *, heartbeat_ms: int = HEARTBEAT_MS,
        election_ms: int = ELECTION_MS,
    ) -> None:
        if kind not in ("etcd", "kvstore"):
            raise ValueError(f"unknown kind {kind!r}")
        self.kind = kind
        self.tmp = tmp
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.members: list[Member] = []
        self.members = [Member(self, i) for i in range(size)]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        for m in self.members:
            m.spawn()
        self.wait_leader()

    def kill(self, i: int) -> None:
        """SIGKILL member i by PID (a crash) and reap it."""
        self.members[i].kill()

    def kill_all(self) -> None:
        for m in self.members:
            if m.stopped and m.proc is not None and m.proc.poll() is None:
                os.kill(m.proc.pid, signal.SIGCONT)
            m.kill()

    def restart(self, i: int, *, wait: bool = True) -> None:
        """Kill member i if running and start it again with the same data dir and flags."""
        m = self.members[i]
        m.kill()
        m.spawn()
        if wait:
            self.wait_leader()

    def stop_sigstop(self, i: int) -> None:
        m = self.members[i]
        if m.proc is None:
            raise RuntimeError(f"{m.name} not running")
        os.kill(m.proc.pid, signal.SIGSTOP)
        m.stopped = True

    def cont(self, i: int) -> None:
        m = self.members[i]
        if m.proc is None:
            raise RuntimeError(f"{m.name} not running")
        os.kill(m.proc.pid, signal.SIGCONT)
        m.stopped = False

    def close(self) -> None:
        self.kill_all()
        for m in self.members:
            if m._stubs is not None:
                m._stubs.close()
                m._stubs = None

    # -- partitions (kvstore only) ------------------------------------------------------------

    def partition(self, i: int, from_: Iterable[int] | None = None) -> None:
        """Cut member i off from members `from_` (default: all others), both directions."""
        if self.kind != "kvstore":
            raise RuntimeError("partition files are a kvstore TEST-ONLY flag; etcd has none")
        others = [j for j in (from_ if from_ is not None else range(len(self.members))) if j != i]
        cuts: dict[int, set[int]] = {j: set() for j in range(len(self.members))}
        for j, text in self._current_cuts().items():
            cuts[j] |= text
        for j in others:
            cuts[i].add(self.members[j].member_id)
            cuts[j].add(self.members[i].member_id)
        for j, ids in cuts.items():
            self._write_partition(j, ids)
        self._settle()

    def heal(self) -> None:
        for j in range(len(self.members)):
            self._write_partition(j, set())
        self._settle()

    def _settle(self) -> None:
        # Members poll their partition file every ~100 ms: wait a few polls so the change is
        # in force on every member when this returns.
        time.sleep(PARTITION_SETTLE_S)

    def _current_cuts(self) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        for j, m in enumerate(self.members):
            try:
                text = m.partition_file.read_text()
            except FileNotFoundError:
                text = ""
            out[j] = {int(line, 16) for line in text.split() if line.strip()}
        return out

    def _write_partition(self, j: int, ids: set[int]) -> None:
        # Atomic replace, so a member never reads a half-written file.
        path = self.members[j].partition_file
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{x:x}\n" for x in sorted(ids)))
        os.replace(tmp, path)

    # -- observation -------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def member_index(self, member_id: int) -> int:
        for i, m in enumerate(self.members):
            if m.member_id == member_id:
                return i
        raise KeyError(f"no member with ID {member_id:x}")

    def leader(self, among: Sequence[int] | None = None, timeout: float = START_TIMEOUT_S) -> int:
        """Index of the leader all running (non-stopped) members in `among` agree on."""
        return self.wait_leader(among, timeout)

    def wait_leader(self, among: Sequence[int] | None = None, timeout: float = START_TIMEOUT_S) -> int:
        idx = list(among) if among is not None else [
            i for i, m in enumerate(self.members) if m.running and not m.stopped
        ]
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            for i in idx:
                m = self.members[i]
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"{m.name} exited: {m.log_tail()}")
            try:
                leaders = {self.members[i].status().leader for i in idx}
                if len(leaders) == 1 and 0 not in leaders:
                    lead = leaders.pop()
                    j = self.member_index(lead)
                    if j in idx or among is not None:
                        return j
                last = f"leaders seen {[f'{x:x}' for x in leaders]}"
            except grpc.RpcError as exc:
                last = f"{exc.code()} {exc.details()}"
            if time.monotonic() > deadline:
                tails = "\n".join(f"== {m.name}\n{m.log_tail(1500)}" for m in self.members)
                raise RuntimeError(f"{self.kind}: no agreed leader in {timeout}s ({last})\n{tails}")
            time.sleep(0.05)

    def stubs(self, i: int) -> Stubs:
        return self.members[i].stubs

    # -- client helpers ----------------------------------------------------------------------

    def put(self, i: int, key: bytes, value: bytes, timeout: float = 5.0) -> Any:
        return self.stubs(i).kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=timeout)

    def get(
        self, i: int, key: bytes, *, serializable: bool = False, timeout: float = 5.0,
        metadata: Sequence[tuple[str, str]] | None = None, range_end: bytes = b"",
    ) -> Any:
        req = rpc_pb2.RangeRequest(key=key, range_end=range_end, serializable=serializable)
        return self.stubs(i).kv.Range(req, timeout=timeout, metadata=metadata)

    def hash_kv(self, i: int, revision: int = 0, timeout: float = 5.0) -> Any:
        return self.stubs(i).maintenance.HashKV(rpc_pb2.HashKVRequest(revision=revision), timeout=timeout)

    def wait_converged(self, timeout: float = 20.0) -> tuple[int, int]:
        """Wait until every running member has the same raft applied index and store revision
        and the same HashKV at that revision; return (revision, hash)."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            try:
                live = [i for i, m in enumerate(self.members) if m.running and not m.stopped]
                statuses = [self.members[i].status() for i in live]
                applied = {s.raftAppliedIndex for s in statuses}
                revs = {self.get(i, b"\0", serializable=True).header.revision for i in live}
                if len(applied) == 1 and len(revs) == 1:
                    rev = revs.pop()
                    hashes = {self.hash_kv(i, rev).hash for i in live}
                    if len(hashes) == 1:
                        return rev, hashes.pop()
                    last = f"hashes differ at revision {rev}: {hashes}"
                else:
                    last = f"applied indexes {applied}, revisions {revs}"
            except grpc.RpcError as exc:
                last = f"{exc.code()} {exc.details()}"
            if time.monotonic() > deadline:
                raise AssertionError(f"members did not converge in {timeout}s: {last}")
            time.sleep(0.1)


def retry(call: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05) -> T:
    """Call until it does not raise grpc.RpcError, or re-raise the last error at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


@contextmanager
def run_cluster(
    kind: str, size: int = 3, *, heartbeat_ms: int = HEARTBEAT_MS, election_ms: int = ELECTION_MS
) -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix=f"{kind}-cluster-") as tmp:
        cluster = Cluster(kind, size, Path(tmp), heartbeat_ms=heartbeat_ms, election_ms=election_ms)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.close()
