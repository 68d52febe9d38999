"""The catch-up scenario: a new member joins a cluster whose leader has compacted its log.

Theory of operation. A fresh cluster (3 members) runs with a small `--snapshot-count`, so
its members snapshot often and keep only a bounded tail of the raft log (etcd keeps 5,000
entries after each snapshot; kvstore keeps 5,000 entries or 8 MiB, whichever is less). It is
filled with `mib` MiB of data: `val_size`-byte values under distinct keys, `batch` puts per
Txn and `inflight` Txns outstanding, enough entries that a new member cannot be served
from the log and must receive the leader's snapshot. Then, with no writes running:

1. the leader's Status gives the target (raft applied index and revision); its peak RSS is
   reset (clear_refs) so the peak read later belongs to the catch-up alone;
2. MemberAdd through the public client (as a learner by default, as etcd recommends;
   etcd refuses it until every member has been connected for 5 s, so it is retried), and
   the new member is started with `--initial-cluster-state existing`: the clock starts
   when it is spawned;
3. the new member's Status (answered locally, also by a learner) is polled until its
   applied index and revision reach the target; the leader's and the new member's RSS are
   polled alongside. `ready_s` is the first Status answer (process start-up), `catchup_s`
   the moment the target is reached;
4. a serializable count of all keys on the new member must equal the leader's;
5. with more than one round, the new member is removed (MemberRemove, then SIGKILL) and
   the next round adds a fresh one to the same cluster: etcd's time in particular is
   bimodal (a new etcd member opens its client port only once its own "publish" proposal
   is applied, and a first attempt that is lost is retried after 5 s + 2 election
   timeouts), so one round is not a figure.

The figures: seconds, MiB/s of logical data (keys x value bytes over catchup_s), the
leader's database size, and the peak RSS of the leader and of the new member during the
catch-up. A snapshot streamed in chunks keeps both peaks well under the data size.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import grpc

from api.proto import rpc_pb2, rpc_pb2_grpc
from bench.load.cluster import BenchCluster, BenchMember
from bench.load.driver import preload
from bench.load.errors import LoadError
from bench.load.procstat import reset_peak_rss, sample_proc

MIB = 1024 * 1024
CATCHUP_TIMEOUT_S = 900.0
POLL_S = 0.05
KEY_SIZE = 16


@dataclass(frozen=True, slots=True)
class CatchupRound:
    ready_s: float | None  # spawn -> first Status answer
    catchup_s: float  # spawn -> applied index and revision reach the leader's
    leader_rss_before_bytes: int
    leader_rss_peak_bytes: int
    new_rss_peak_bytes: int
    keys_on_new: int
    # Largest anonymous RSS seen while polling (heap, not mmap'd database pages): a snapshot
    # held whole in memory shows here; file-backed pages of a database being read do not.
    leader_anon_before_bytes: int
    leader_anon_max_bytes: int
    new_anon_max_bytes: int


@dataclass(frozen=True, slots=True)
class CatchupResult:
    target: str
    nodes: int
    keys: int
    val_size: int
    batch: int
    snapshot_count: int
    learner: bool
    fill_s: float
    db_size_bytes: int
    target_applied: int
    target_revision: int
    rounds: tuple[CatchupRound, ...]

    @property
    def data_mib(self) -> float:
        return self.keys * self.val_size / MIB

    def catchup_stats(self) -> tuple[float, float, float]:
        xs = [r.catchup_s for r in self.rounds]
        return min(xs), statistics.median(xs), max(xs)

    @property
    def mib_per_s(self) -> float:
        """At the median catch-up time."""
        mid = self.catchup_stats()[1]
        return self.data_mib / mid if mid > 0 else 0.0


def _count_keys(endpoint: str) -> int:
    with grpc.insecure_channel(endpoint) as ch:
        resp = rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(
            key=b"\0", range_end=b"\0", serializable=True, count_only=True), timeout=60)
        return int(resp.count)


def _catch_up_once(
    cluster: BenchCluster, leader: BenchMember, status: rpc_pb2.StatusResponse, *, learner: bool
) -> tuple[BenchMember, CatchupRound]:
    before = sample_proc(leader.pid)
    reset_peak_rss(leader.pid)
    leader_peak, leader_anon = before.rss_bytes, before.rss_anon_bytes
    new_peak = new_anon = 0
    new = cluster.add_member(learner=learner)
    spawned = new.spawned_at
    ready_s: float | None = None
    deadline = spawned + CATCHUP_TIMEOUT_S
    while True:
        if not new.running:
            raise LoadError(f"catchup: the new {cluster.kind} member exited: {new.log_tail()}")
        lead_now, new_now = sample_proc(leader.pid), sample_proc(new.pid)
        leader_peak = max(leader_peak, lead_now.rss_bytes)
        leader_anon = max(leader_anon, lead_now.rss_anon_bytes)
        new_peak = max(new_peak, new_now.rss_peak_bytes)
        new_anon = max(new_anon, new_now.rss_anon_bytes)
        try:
            s = new.status(timeout=1.0)
        except grpc.RpcError:
            s = None
        now = time.monotonic()
        if s is not None:
            ready_s = now - spawned if ready_s is None else ready_s
            if s.raftAppliedIndex >= status.raftAppliedIndex and \
                    s.header.revision >= status.header.revision:
                catchup_s = now - spawned
                break
        if now > deadline:
            raise LoadError(f"catchup: {cluster.kind} new member not caught up in "
                            f"{CATCHUP_TIMEOUT_S}s (last status {s})")
        time.sleep(POLL_S)
    leader_peak = max(leader_peak, sample_proc(leader.pid).rss_peak_bytes)
    new_peak = max(new_peak, sample_proc(new.pid).rss_peak_bytes)
    return new, CatchupRound(
        ready_s=ready_s, catchup_s=catchup_s, leader_rss_before_bytes=before.rss_bytes,
        leader_rss_peak_bytes=leader_peak, new_rss_peak_bytes=new_peak,
        keys_on_new=_count_keys(new.endpoint), leader_anon_before_bytes=before.rss_anon_bytes,
        leader_anon_max_bytes=leader_anon, new_anon_max_bytes=new_anon,
    )


def run_catchup(
    kind: str, *, nodes: int, mib: float, val_size: int, batch: int, inflight: int,
    snapshot_count: int, learner: bool, heartbeat_ms: int, election_ms: int, rounds: int = 1,
    extra_args: tuple[str, ...] = (),
) -> CatchupResult:
    keys = max(1, int(mib * MIB) // val_size)
    args = ("--snapshot-count", str(snapshot_count), *extra_args)
    with BenchCluster(kind, nodes, extra_args=args, heartbeat_ms=heartbeat_ms,
                      election_ms=election_ms) as cluster:
        leader = cluster.members[cluster.leader_index()]
        fill_s = preload(leader.endpoint, count=keys, key_size=KEY_SIZE, val_size=val_size,
                         key_space=keys, batch=batch, inflight=inflight)
        cluster.wait_converged(timeout=CATCHUP_TIMEOUT_S)
        results = []
        for n in range(rounds):
            leader = cluster.members[cluster.leader_index()]
            status = leader.status(timeout=10)
            if n == 0:
                first = status
            new, one = _catch_up_once(cluster, leader, status, learner=learner)
            results.append(one)
            if n + 1 < rounds:
                cluster.remove_member(cluster.members.index(new))
        return CatchupResult(
            target=kind, nodes=nodes, keys=keys, val_size=val_size, batch=batch,
            snapshot_count=snapshot_count, learner=learner, fill_s=fill_s,
            db_size_bytes=first.dbSize, target_applied=first.raftAppliedIndex,
            target_revision=first.header.revision, rounds=tuple(results),
        )


def format_catchup(r: CatchupResult) -> list[str]:
    lo, mid, hi = r.catchup_stats()
    lines = [
        f"{r.target:<9} catchup   {r.nodes} members + 1 {'learner' if r.learner else 'voter'}, "
        f"--snapshot-count {r.snapshot_count}; {r.keys} keys x {r.val_size} B = "
        f"{r.data_mib:.1f} MiB ({r.batch} puts/txn, filled in {r.fill_s:.1f}s), "
        f"leader db {r.db_size_bytes / MIB:.1f} MiB, applied index {r.target_applied}",
        f"{'':<9}   caught up in min {lo:.2f}s  p50 {mid:.2f}s  max {hi:.2f}s over "
        f"{len(r.rounds)} rounds ({r.mib_per_s:.1f} MiB/s at p50)",
    ]
    for i, x in enumerate(r.rounds):
        ready = "-" if x.ready_s is None else f"{x.ready_s:.2f}s"
        ok = "all" if x.keys_on_new == r.keys else f"ONLY {x.keys_on_new}/{r.keys}"
        lines.append(
            f"{'':<9}   round {i + 1}: {x.catchup_s:.2f}s (first Status answer {ready}), {ok} keys; "
            f"peak RSS leader {x.leader_rss_peak_bytes / MIB:.1f} MiB "
            f"(was {x.leader_rss_before_bytes / MIB:.1f}), new {x.new_rss_peak_bytes / MIB:.1f} MiB; "
            f"heap max leader {x.leader_anon_max_bytes / MIB:.1f} MiB "
            f"(was {x.leader_anon_before_bytes / MIB:.1f}), new {x.new_anon_max_bytes / MIB:.1f} MiB")
    return lines
