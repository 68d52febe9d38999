"""Leader failure and whole-cluster restart on a real 3-member kvstore cluster (issue 5).

A write loop (several threads, unique keys, every put spread over the live members) runs
while the leader is SIGKILLed or SIGSTOPped for longer than the election timeout. We
measure the time from the fault to the first acknowledged write *sent after* the fault
(so a write already in flight to the old leader does not count), then bring the old leader
back and check that no acknowledged write is lost: every member ends at the same applied
index and the same HashKV, and holds every acked key with its value at the acked revision.

Each test also runs against a real 3-member etcd 3.4 cluster with the same flags, the
oracle for the test itself (and a reference figure for the failover time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import pytest

from api.proto import rpc_pb2
from tests.process.cluster import Cluster, run_cluster
from tests.process.servers import KINDS

pytestmark = pytest.mark.slow

WRITERS = 4
PREFIX = b"w/"
# Scheduling slack on a loaded 2-core machine, on top of 3 election timeouts.
SLACK_S = 1.0


@dataclass(frozen=True, slots=True)
class Ack:
    key: bytes
    value: bytes
    revision: int
    sent: float
    acked: float


@dataclass
class WriteLoop:
    """WRITERS threads putting unique keys round-robin over the members not in `avoid`."""

    cluster: Cluster
    avoid: set[int] = field(default_factory=set)
    acks: list[Ack] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for w in range(WRITERS):
            t = threading.Thread(target=self._run, args=(w,), daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, w: int) -> None:
        seq = 0
        turn = w
        n = len(self.cluster.members)
        while not self._stop.is_set():
            turn += 1
            i = turn % n
            if i in self.avoid:
                continue
            key = PREFIX + f"{w}-{seq}".encode()
            value = f"value-{w}-{seq}".encode()
            seq += 1
            sent = time.monotonic()
            try:
                resp = self.cluster.stubs(i).kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=1.0)
            except grpc.RpcError:
                with self._lock:
                    self.errors += 1
                time.sleep(0.01)
                continue
            with self._lock:
                self.acks.append(Ack(key, value, resp.header.revision, sent, time.monotonic()))

    def stop(self) -> list[Ack]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        with self._lock:
            return list(self.acks)

    def first_ack_sent_after(self, t: float, timeout: float) -> Ack:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                after = [a for a in self.acks if a.sent >= t]
            if after:
                return min(after, key=lambda a: a.acked)
            time.sleep(0.02)
        raise AssertionError(f"no write acknowledged within {timeout}s of the fault")

    def count(self) -> int:
        with self._lock:
            return len(self.acks)


def wait_for_acks(loop: WriteLoop, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while loop.count() < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {loop.count()} acks in {timeout}s (errors {loop.errors})")
        time.sleep(0.02)


def check_no_acked_write_lost(cluster: Cluster, acks: list[Ack]) -> None:
    revisions = [a.revision for a in acks]
    assert len(set(revisions)) == len(revisions), "two acknowledged puts share a revision"
    rev, _ = cluster.wait_converged()
    assert rev >= max(revisions)
    for i in range(len(cluster.members)):
        resp = cluster.stubs(i).kv.Range(
            rpc_pb2.RangeRequest(key=PREFIX, range_end=b"w0", serializable=True), timeout=10
        )
        assert resp.header.revision == rev
        held = {kv.key: (kv.value, kv.mod_revision) for kv in resp.kvs}
        lost = [a for a in acks if held.get(a.key) != (a.value, a.revision)]
        assert not lost, f"member {i}: {len(lost)} acked writes lost or changed, e.g. {lost[:3]}"


def run_leader_fault(kind: str, fault: Callable[[Cluster, int], None],
                     recover: Callable[[Cluster, int], None], label: str) -> None:
    with run_cluster(kind) as cluster:
        loop = WriteLoop(cluster)
        loop.start()
        try:
            wait_for_acks(loop, 50)
            old = cluster.leader()
            loop.avoid.add(old)
            t_fault = time.monotonic()
            fault(cluster, old)
            budget = 3 * cluster.election_ms / 1000 + SLACK_S
            first = loop.first_ack_sent_after(t_fault, timeout=budget + 5)
            took = first.acked - t_fault
            print(f"\n{kind} {label}: first write acknowledged {took * 1000:.0f} ms after the fault "
                  f"(budget {budget * 1000:.0f} ms)")
            new = cluster.leader(among=[i for i in range(3) if i != old])
            assert new != old
            n = loop.count()
            wait_for_acks(loop, n + 50)
            recover(cluster, old)
            loop.avoid.discard(old)
            wait_for_acks(loop, loop.count() + 50)
        finally:
            acks = loop.stop()
        assert took <= budget, f"{label}: writes resumed after {took:.2f}s > {budget:.2f}s"
        check_no_acked_write_lost(cluster, acks)
        # The old leader is a full member again: its Status agrees with the others' leader.
        cluster.wait_leader()


@pytest.mark.parametrize("kind", KINDS)
def test_sigkill_leader_during_writes(kind: str) -> None:
    run_leader_fault(
        kind,
        lambda c, i: c.kill(i),
        lambda c, i: c.restart(i),
        "SIGKILL leader",
    )


@pytest.mark.parametrize("kind", KINDS)
def test_sigstop_leader_longer_than_election_timeout(kind: str) -> None:
    def fault(c: Cluster, i: int) -> None:
        c.stop_sigstop(i)

    def recover(c: Cluster, i: int) -> None:
        # Keep it frozen well past the election timeout before it comes back as a stale leader.
        time.sleep(max(0.0, 2 * c.election_ms / 1000))
        c.cont(i)

    run_leader_fault(kind, fault, recover, "SIGSTOP leader")


@pytest.mark.parametrize("kind", KINDS)
def test_whole_cluster_restart_from_disk(kind: str) -> None:
    with run_cluster(kind) as cluster:
        written: dict[bytes, tuple[bytes, int]] = {}
        for n in range(60):
            key = f"r/{n:03d}".encode()
            value = f"v{n}".encode() * (n % 5 + 1)
            resp = cluster.put(n % 3, key, value)
            written[key] = (value, resp.header.revision)
        deleted = cluster.stubs(0).kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"r/000"), timeout=5)
        assert deleted.deleted == 1
        del written[b"r/000"]
        last_rev = deleted.header.revision
        before, before_hash = cluster.wait_converged()
        assert before == last_rev
        cluster.kill_all()
        for m in cluster.members:
            m.spawn()
        cluster.wait_leader()
        rev, h = cluster.wait_converged()
        assert rev == last_rev
        assert h == before_hash
        for i in range(3):
            resp = cluster.get(i, b"r/", range_end=b"r0", serializable=True)
            assert {kv.key: (kv.value, kv.mod_revision) for kv in resp.kvs} == written
        # And the restarted cluster takes writes again.
        assert cluster.put(1, b"r/after", b"x").header.revision == last_rev + 1
