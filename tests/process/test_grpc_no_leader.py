"""hasleader=true on a member that has no leader (2 of its 3 members never start).

Real etcd cannot be the oracle here: it serves clients only after it has published itself
through a quorum, so a leaderless etcd does not answer at all. The expected answers are
etcd's interceptor's (v3rpc/interceptor.go: "etcdserver: no leader", UNAVAILABLE) and its
watch stream's leader monitor, which ends the stream with the same error.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from api.proto import rpc_pb2
from tests.process.grpc_helpers import Stubs, WatchStream, status_of
from tests.process.servers import run_server

pytestmark = pytest.mark.slow

NO_LEADER = (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
HASLEADER = (("hasleader", "true"),)


@pytest.fixture(scope="module", params=["kvstore"])
def stubs(request: pytest.FixtureRequest) -> Iterator[Stubs]:
    with run_server(request.param, absent_peers=2, wait_for_leader=False) as server:
        s = Stubs.connect(server.endpoint)
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
