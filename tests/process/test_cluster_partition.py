"""A minority member cut off by the partition file (kvstore's TEST-ONLY flag), issue 5.

The isolated member may be a follower or the leader. Either way, once the majority has
written a new value, a linearizable read on the minority must fail or time out: it must
never answer with the old value (a ReadIndex needs a quorum of heartbeat acks, which the
minority cannot get). Writes there fail too; the majority keeps serving. With
`hasleader=true` metadata the minority answers UNAVAILABLE "etcdserver: no leader" once it
has noticed it lost the leader, and an open hasleader watch stream ends with that error. After healing, every member converges to the same HashKV
and the minority serves the new value.

Real etcd has no partition flag, so these run against kvstore only; the expected answers
are etcd's (v3rpc interceptor for hasleader, ReadIndex for linearizable reads).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from api.proto import rpc_pb2
from tests.process.cluster import Cluster, retry, run_cluster
from tests.process.grpc_helpers import WatchStream

pytestmark = pytest.mark.slow

FAILED = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
HASLEADER = [("hasleader", "true")]


def wait_lost_leader(cluster: Cluster, i: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while cluster.members[i].status().leader != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"member {i} still reports a leader {timeout}s after isolation")
        time.sleep(0.05)


def must_fail(call_name: str, call: Callable[[], object]) -> grpc.StatusCode:
    try:
        resp = call()
    except grpc.RpcError as exc:
        assert exc.code() in FAILED, f"{call_name}: unexpected {exc.code()} {exc.details()}"
        code: grpc.StatusCode = exc.code()
        return code
    raise AssertionError(f"{call_name} on the minority succeeded: {resp}")


@pytest.mark.parametrize("isolated_role", ["follower", "leader"])
def test_minority_never_serves_stale_linearizable_reads(isolated_role: str) -> None:
    with run_cluster("kvstore") as cluster:
        old = cluster.put(0, b"k", b"old").header.revision
        cluster.wait_converged()
        leader = cluster.leader()
        minority = leader if isolated_role == "leader" else (leader + 1) % 3
        majority = [i for i in range(3) if i != minority]
        cluster.partition(minority)
        # A new value through the majority (it may have to elect a new leader first).
        new_rev = retry(lambda: cluster.put(majority[0], b"k", b"new", timeout=1.0), timeout=15).header.revision
        assert new_rev > old
        for i in majority:
            got = retry(lambda i=i: cluster.get(i, b"k", timeout=2.0), timeout=10)  # type: ignore[misc]
            assert [kv.value for kv in got.kvs] == [b"new"]
        # The minority: linearizable reads and writes fail or time out, never old data.
        for _ in range(2):
            must_fail("linearizable Range", lambda: cluster.get(minority, b"k", timeout=1.5))
        must_fail("Put", lambda: cluster.put(minority, b"kmin", b"minority", timeout=1.5))
        # A serializable read is allowed to be stale, and it is: nothing new reached it.
        stale = cluster.get(minority, b"k", serializable=True)
        assert [kv.value for kv in stale.kvs] == [b"old"]
        # The majority keeps serving while the minority is cut off.
        for n, i in enumerate(majority * 5):
            cluster.put(i, f"maj/{n}".encode(), b"x", timeout=3.0)
        cluster.heal()
        rev, _ = cluster.wait_converged(timeout=30)
        assert rev >= new_rev + 10
        cluster.wait_leader()
        got = retry(lambda: cluster.get(minority, b"k", timeout=2.0), timeout=10)
        assert [kv.value for kv in got.kvs] == [b"new"]
        assert cluster.get(minority, b"maj/", range_end=b"maj0").count == 10


def test_hasleader_on_minority_fails_with_no_leader() -> None:
    with run_cluster("kvstore") as cluster:
        cluster.put(0, b"k", b"v")
        leader = cluster.leader()
        minority = (leader + 1) % 3
        # With the leader it answers normally, hasleader or not.
        assert cluster.get(minority, b"k", metadata=HASLEADER).count == 1
        watch = WatchStream(cluster.stubs(minority), metadata=tuple(HASLEADER))
        watch.create(b"k")
        assert watch.next().created
        cluster.partition(minority)
        wait_lost_leader(cluster, minority)
        # An open hasleader watch stream ends with the same error (etcd's leader monitor).
        try:
            watch.next(timeout=5.0)
        except grpc.RpcError as exc:
            assert (exc.code(), exc.details()) == (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
        else:
            raise AssertionError("a hasleader=true watch on a leaderless minority stayed open")
        finally:
            watch.close()
        calls: list[Callable[[], Any]] = [
            lambda: cluster.get(minority, b"k", metadata=HASLEADER, timeout=5.0),
            lambda: cluster.get(minority, b"k", serializable=True, metadata=HASLEADER, timeout=5.0),
            lambda: cluster.stubs(minority).kv.Put(
                rpc_pb2.PutRequest(key=b"k", value=b"x"), metadata=HASLEADER, timeout=5.0
            ),
        ]
        for call in calls:
            t0 = time.monotonic()
            try:
                call()
            except grpc.RpcError as exc:
                assert (exc.code(), exc.details()) == (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
            else:
                raise AssertionError("a hasleader=true call on a leaderless minority succeeded")
            # etcd's interceptor refuses at once; it does not wait for a timeout.
            assert time.monotonic() - t0 < 1.0
        # Without the metadata, a serializable read is still served locally.
        assert cluster.get(minority, b"k", serializable=True).count == 1
        cluster.heal()
        cluster.wait_leader()
        assert retry(lambda: cluster.get(minority, b"k", metadata=HASLEADER, timeout=2.0)).count == 1
