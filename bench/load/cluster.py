"""Process control for the benchmark: a fresh N-member etcd or kvstore cluster on loopback.

Every member is a `MemberProcess` (bench/server_process.py: free loopback ports, never
2379/2380) with its own data dir in one temp dir, so kvstore and etcd start from the same
empty state. Both kinds get the same etcd flags: `--initial-cluster` naming every
member, a shared `--initial-cluster-token`, and the heartbeat and election timeout given
here (etcd's defaults, 100 ms and 1000 ms, unless the caller says otherwise); everything
else (snapshot count, quotas) is left at each server's default unless `extra_args` says.

`start()` spawns all members at once (one member of three cannot elect alone) and returns
once every member names the same leader through Maintenance.Status; it also learns each
member's ID from the Status response header, so the benchmark never needs the server's own
ID derivation. `kill(i)` sends SIGKILL by PID; `restart(i)` spawns member i again on the same
data dir, ports and flags; `add_member()` is MemberAdd through the public client followed by
a start with `--initial-cluster-state existing`; `remove_member(i)` is MemberRemove, then
SIGKILL; `stop()` SIGKILLs every process started here
and removes the temp dir. A single member (`BenchServer`) is the size-1 case.

The benchmark never imports the server: it judges kvstore and etcd through the wire only.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import grpc

from api.client import SyncClient, UnhealthyClusterError
from api.proto import rpc_pb2, rpc_pb2_grpc
from bench.load.errors import ServerStartError
from bench.server_process import KINDS, MemberProcess

START_TIMEOUT_S = 30.0
CONVERGE_TIMEOUT_S = 60.0
TOKEN = "kvbench-load"
HEARTBEAT_MS = 100  # etcd's defaults
ELECTION_MS = 1000
POLL_S = 0.05
MEMBER_ADD_TIMEOUT_S = 30.0
# Status polls must see a member as soon as its client port opens: gRPC's default reconnect
# backoff (1 s, growing) added up to 2 s to a catch-up measured through them.
POLL_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 100),
]


class BenchMember(MemberProcess):
    """One member's fixed identity and current process (bench/server_process.py), plus its
    ID as learned from Status."""

    def __init__(self, kind: str, name: str, tmp: Path) -> None:
        super().__init__(kind, name, tmp / name, tmp / f"{name}.log", kvstore_log_level="error")
        self.member_id = 0  # learned from the first Status answer
        self._channel: grpc.Channel | None = None

    def status(self, timeout: float = 1.0) -> rpc_pb2.StatusResponse:
        """Maintenance.Status of this member alone (answered locally, also by learners)."""
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.endpoint, options=POLL_CHANNEL_OPTIONS)
        resp: rpc_pb2.StatusResponse = rpc_pb2_grpc.MaintenanceStub(self._channel).Status(
            rpc_pb2.StatusRequest(), timeout=timeout)
        if resp.header.member_id:
            self.member_id = resp.header.member_id
        return resp

    def close(self) -> None:
        self.kill()
        if self._channel is not None:
            self._channel.close()
            self._channel = None


class BenchCluster:
    """`size` fresh members of one kind; use as a context manager."""

    def __init__(
        self, kind: str, size: int = 1, *, extra_args: tuple[str, ...] = (),
        heartbeat_ms: int = HEARTBEAT_MS, election_ms: int = ELECTION_MS,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown server kind {kind!r}")
        if size < 1:
            raise ValueError("a cluster needs at least one member")
        self.kind = kind
        self.size = size
        self.extra_args = extra_args
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.members: list[BenchMember] = []
        self._added = 0  # members added by add_member, for fresh names
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"kvbench-load-{self.kind}-")
        tmp = Path(self._tmp.name)
        self.members = [BenchMember(self.kind, f"n{i + 1}", tmp) for i in range(self.size)]
        for m in self.members:
            m.spawn(self._flags(self.members, "new"))
        self.leader_index()

    def _flags(self, members: list[BenchMember], state: str) -> list[str]:
        return [
            "--initial-cluster", ",".join(f"{m.name}={m.peer_url}" for m in members),
            "--initial-cluster-token", TOKEN,
            "--initial-cluster-state", state,
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            *self.extra_args,
        ]

    def kill(self, i: int) -> float:
        """SIGKILL member i (a crash); returns the monotonic time of the signal."""
        return self.members[i].kill()

    def restart(self, i: int) -> None:
        """Start member i again on its data dir (a restarted member ignores bootstrap flags)."""
        m = self.members[i]
        m.kill()
        m.spawn(self._flags(self.members, "new"))

    def add_member(self, *, learner: bool) -> BenchMember:
        """MemberAdd through the public client, then start the member with `existing`."""
        if self._tmp is None:
            raise ServerStartError("cluster not started")
        self._added += 1
        new = BenchMember(self.kind, f"n{self.size + self._added}", Path(self._tmp.name))
        leader = self.members[self.leader_index()]
        client = SyncClient([leader.endpoint], timeout_s=10.0)
        deadline = time.monotonic() + MEMBER_ADD_TIMEOUT_S
        try:
            while True:
                try:
                    client.member_add([new.peer_url], is_learner=learner)
                    break
                except UnhealthyClusterError:
                    # etcd refuses until every member has been connected for 5 s.
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        finally:
            client.close()
        self.members.append(new)
        new.spawn(self._flags(self.members, "existing"))
        return new

    def remove_member(self, i: int) -> None:
        """MemberRemove of member i through the public client, then SIGKILL it and forget it
        (so later `--initial-cluster` flags no longer name it; etcd checks the count)."""
        m = self.members[i]
        leader = self.members[self.leader_index()]
        client = SyncClient([leader.endpoint], timeout_s=10.0)
        try:
            client.member_remove(m.member_id)
        finally:
            client.close()
        m.close()
        del self.members[i]

    def stop(self) -> None:
        for m in self.members:
            m.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> BenchCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observation -------------------------------------------------------------------------

    @property
    def running(self) -> list[int]:
        return [i for i, m in enumerate(self.members) if m.running]

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(self.members[i].endpoint for i in self.running)

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(self.members[i].pid for i in self.running)

    def index_of(self, member_id: int) -> int | None:
        for i, m in enumerate(self.members):
            if m.member_id == member_id:
                return i
        return None

    def _check_alive(self, among: list[int]) -> None:
        for i in among:
            m = self.members[i]
            if m.proc is not None and m.proc.poll() is not None:
                raise ServerStartError(f"{self.kind} {m.name} exited: {m.log_tail()}")

    def leader_index(self, timeout: float = START_TIMEOUT_S) -> int:
        """Index of the leader every running member names (waits for one)."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            among = self.running
            self._check_alive(among)
            try:
                leaders = {self.members[i].status().leader for i in among}
                lead = leaders.pop() if len(leaders) == 1 else 0
                j = self.index_of(lead) if lead else None
                if j is not None and j in among:
                    return j
                last = f"leaders named: {sorted(f'{x:x}' for x in leaders | {lead})}"
            except grpc.RpcError as exc:
                last = f"{exc.code()} {exc.details()}"
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{self.kind}: no agreed leader in {timeout}s ({last})\n"
                    + "\n".join(f"== {m.name}\n{m.log_tail(800)}" for m in self.members))
            time.sleep(POLL_S)

    def wait_converged(self, timeout: float = CONVERGE_TIMEOUT_S) -> int:
        """Wait until every running member names the same leader and has the same applied
        index and revision; returns that revision. Only meaningful while writes are paused."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            self._check_alive(self.running)
            try:
                statuses = [self.members[i].status() for i in self.running]
                seen = {(s.leader, s.raftAppliedIndex, s.header.revision) for s in statuses}
                if len(seen) == 1 and next(iter(seen))[0] != 0:
                    return next(iter(seen))[2]
                last = f"(leader, applied, revision) per member: {sorted(seen)}"
            except grpc.RpcError as exc:
                last = f"{exc.code()} {exc.details()}"
            if time.monotonic() > deadline:
                raise ServerStartError(f"{self.kind}: members did not converge in {timeout}s: {last}")
            time.sleep(POLL_S * 2)


class BenchServer(BenchCluster):
    """One fresh single-member server (the size-1 cluster)."""

    def __init__(self, kind: str, *, extra_args: tuple[str, ...] = ()) -> None:
        super().__init__(kind, 1, extra_args=extra_args)

    @property
    def endpoint(self) -> str:
        return self.members[0].endpoint

    @property
    def pid(self) -> int:
        return self.members[0].pid
