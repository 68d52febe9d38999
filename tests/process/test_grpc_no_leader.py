"""hasleader=true on a member that has lost its leader (2 of its 3 members were killed).

A member serves clients only after it has published itself through a quorum (as etcd), so
the cluster starts whole and then loses its quorum. The expected answers are etcd's
interceptor's ("etcdserver: no leader", UNAVAILABLE) and its watch stream's leader monitor,
which ends the stream with the same error; real etcd runs the same tests as the oracle.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from api.proto import rpc_pb2
from tests.process.cluster import run_cluster
from tests.process.grpc_helpers import Stubs, WatchStream, status_of

pytestmark = pytest.mark.slow

NO_LEADER = (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
HASLEADER = (("hasleader", "true"),)


LOSE_LEADER_TIMEOUT_S = 20.0


@pytest.fixture(scope="module", params=["kvstore", "etcd"])
def stubs(request: pytest.FixtureRequest) -> Iterator[Stubs]:
    with run_cluster(request.param, 3) as cluster:
        cluster.kill(1)
        cluster.kill(2)
        s = Stubs.connect(cluster.members[0].endpoint)
        deadline = time.monotonic() + LOSE_LEADER_TIMEOUT_S
        while s.maintenance.Status(rpc_pb2.StatusRequest(), timeout=5).leader != 0:
            assert time.monotonic() < deadline, "the survivor still reports a leader"
            time.sleep(0.1)
        yield s
        s.close()


def test_status_answers_without_a_leader(stubs: Stubs) -> None:
    assert stubs.maintenance.Status(rpc_pb2.StatusRequest(), timeout=5).leader == 0


def test_unary_with_hasleader_fails_at_once(stubs: Stubs) -> None:
    call = lambda: stubs.kv.Range(rpc_pb2.RangeRequest(key=b"a"), timeout=5, metadata=HASLEADER)  # noqa: E731
    assert status_of(call) == NO_LEADER


def test_watch_with_hasleader_ends_with_no_leader(stubs: Stubs) -> None:
    stream = WatchStream(stubs, metadata=HASLEADER)
    try:
        stream.create(b"a")
        with pytest.raises(grpc.RpcError) as info:
            for _ in range(3):
                stream.next(timeout=10)
        assert (info.value.code(), info.value.details()) == NO_LEADER
    finally:
        stream.close()
