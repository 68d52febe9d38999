"""What clients see through followers of a real 3-member kvstore cluster (issue 5).

Every test also runs against a real 3-member etcd 3.4 cluster, the oracle.

* A put sent to a follower is forwarded and applied exactly once: its revision appears once
  in a watch from revision 1, and the history has one event per acknowledged put.
* A linearizable read on a follower sees a write the leader has just acknowledged
  (ReadIndex: the follower waits until it has applied up to the leader's commit index).
* Watches on the leader and on each follower deliver the same events in the same order.
* Linearizable reads arriving at the same moment on different members all complete
  promptly (this is what `etcdctl endpoint health --cluster` does).
* Leases work through a follower (keep-alive and time-to-live are forwarded to the leader).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from api.proto import rpc_pb2
from tests.process.cluster import Cluster, run_cluster
from tests.process.grpc_helpers import WatchStream
from tests.process.servers import KINDS

pytestmark = pytest.mark.slow


# Real etcd runs the same tests as the oracle: a test that etcd fails is a wrong test.
@pytest.fixture(scope="module", params=KINDS)
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with run_cluster(request.param) as c:
        yield c


def followers(cluster: Cluster) -> list[int]:
    leader = cluster.leader()
    return [i for i in range(3) if i != leader]


def event_tuple(ev: object) -> tuple[int, bytes, bytes, int, int, int]:
    kv = ev.kv  # type: ignore[attr-defined]
    return (ev.type, kv.key, kv.value, kv.mod_revision, kv.create_revision, kv.version)  # type: ignore[attr-defined]


def test_put_to_follower_is_applied_once(cluster: Cluster) -> None:
    acked: dict[int, bytes] = {}
    for n in range(20):
        for f in followers(cluster):
            key = f"once/{f}/{n}".encode()
            acked[cluster.put(f, key, b"v").header.revision] = key
    last = max(acked)
    stream = WatchStream(cluster.stubs(cluster.leader()))
    try:
        stream.create(b"once/", range_end=b"once0", start_revision=1)
        assert stream.next().created
        events = stream.events(len(acked))
        # Nothing more: a duplicate apply would show up as an extra event.
        assert stream.nothing_within(0.5)
    finally:
        stream.close()
    revs = [ev.kv.mod_revision for ev in events]
    assert revs == sorted(acked), "each acked revision exactly once, in order"
    assert all(ev.kv.key == acked[ev.kv.mod_revision] and ev.kv.version == 1 for ev in events)
    assert revs[-1] == last


def test_linearizable_read_on_follower_sees_leader_ack(cluster: Cluster) -> None:
    for n in range(40):
        leader = cluster.leader()
        rev = cluster.put(leader, b"lin", str(n).encode()).header.revision
        for f in followers(cluster):
            got = cluster.get(f, b"lin")
            assert got.header.revision >= rev
            assert [kv.value for kv in got.kvs] == [str(n).encode()], f"follower {f} read stale data"


def test_concurrent_linearizable_reads_on_all_members(cluster: Cluster) -> None:
    # Regression: ReadIndex contexts once repeated across members and one read hung.
    cluster.put(0, b"health", b"x")
    for rnd in range(20):
        barrier = threading.Barrier(3)
        outcome: dict[int, str] = {}

        def read(i: int, barrier: threading.Barrier, outcome: dict[int, str]) -> None:
            barrier.wait()
            t0 = time.monotonic()
            try:
                cluster.get(i, b"health", timeout=1.0)
                outcome[i] = f"ok in {time.monotonic() - t0:.3f}s"
            except grpc.RpcError as exc:
                outcome[i] = f"{exc.code().name} after {time.monotonic() - t0:.3f}s"

        threads = [threading.Thread(target=read, args=(i, barrier, outcome)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        leader = cluster.leader()
        assert all(v.startswith("ok") for v in outcome.values()), (
            f"round {rnd}, leader {leader}: {outcome}"
        )


def test_watch_on_followers_matches_leader(cluster: Cluster) -> None:
    start = cluster.put(0, b"w-start", b"").header.revision + 1
    streams = []
    for i in range(3):
        s = WatchStream(cluster.stubs(i))
        s.create(b"cmp/", range_end=b"cmp0", start_revision=start, prev_kv=True)
        assert s.next().created
        streams.append(s)
    try:
        # Writers through every member at once: puts, overwrites, deletes, a txn.
        def write(i: int) -> None:
            for n in range(15):
                key = f"cmp/{n % 5}".encode()
                if n % 7 == 6:
                    cluster.stubs(i).kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=key), timeout=5)
                elif n % 5 == 4:
                    put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"txn"))
                    cluster.stubs(i).kv.Txn(rpc_pb2.TxnRequest(success=[put]), timeout=5)
                else:
                    cluster.put(i, key, f"{i}-{n}".encode())

        threads = [threading.Thread(target=write, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        end = cluster.get(0, b"cmp/", range_end=b"cmp0").header.revision
        # Deleting a key that does not exist makes no event, so count by revision.
        hist = []
        for s in streams:
            got: list[Any] = []
            while not got or got[-1].kv.mod_revision < end:
                got.extend(s.next(timeout=10).events)
            hist.append([event_tuple(e) + (e.prev_kv.value,) for e in got])
        assert hist[0], "no events"
        assert hist[1] == hist[0]
        assert hist[2] == hist[0]
    finally:
        for s in streams:
            s.close()


def test_leases_through_a_follower(cluster: Cluster) -> None:
    """Grant, attach, keep-alive, time-to-live and revoke, all sent to a follower: only the
    leader counts TTLs, so a follower forwards keep-alives and TTL queries to it."""
    f = followers(cluster)[0]
    stubs = cluster.stubs(f)
    lease_id = stubs.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30), timeout=5).ID
    stubs.kv.Put(rpc_pb2.PutRequest(key=b"lease/k", value=b"v", lease=lease_id), timeout=5)

    def keep_alive() -> Iterator[rpc_pb2.LeaseKeepAliveRequest]:
        yield rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)

    answers = list(stubs.lease.LeaseKeepAlive(keep_alive(), timeout=5))
    assert [(a.ID, a.TTL) for a in answers] == [(lease_id, 30)]
    ttl = stubs.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=True), timeout=5)
    assert (ttl.grantedTTL, list(ttl.keys)) == (30, [b"lease/k"]) and 25 <= ttl.TTL <= 30
    stubs.lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease_id), timeout=5)
    for i in range(3):
        assert cluster.get(i, b"lease/k").count == 0
    gone = stubs.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id), timeout=5)
    assert gone.TTL == -1
