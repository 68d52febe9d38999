"""Lease over real gRPC: grant floor, keep-alive stream, time-to-live, list, revoke, expiry."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from api.proto import rpc_pb2
from tests.process.grpc_helpers import Stubs, status_of
from tests.process.servers import KINDS, ServerProcess, run_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with run_server(request.param) as s:
        yield s


@pytest.fixture
def stubs(server: ServerProcess) -> Iterator[Stubs]:
    s = Stubs.connect(server.endpoint)
    yield s
    s.close()


def grant(stubs: Stubs, ttl: int, lease_id: int = 0) -> rpc_pb2.LeaseGrantResponse:
    return stubs.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=lease_id), timeout=5)


def test_grant_raises_ttl_to_the_minimum(stubs: Stubs) -> None:
    assert grant(stubs, 0).TTL == 2
    assert grant(stubs, 1).TTL == 2
    resp = grant(stubs, 60)
    assert resp.TTL == 60 and resp.ID > 0 and resp.header.member_id != 0


def test_grant_with_id_in_use_and_too_large_ttl(stubs: Stubs) -> None:
    lease_id = grant(stubs, 30, 0x1000).ID
    assert lease_id == 0x1000
    assert status_of(lambda: grant(stubs, 30, 0x1000)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: lease already exists")
    assert status_of(lambda: grant(stubs, 10**10)) == (
        grpc.StatusCode.OUT_OF_RANGE, "etcdserver: too large lease TTL")


def test_time_to_live_with_keys_and_unknown_lease(stubs: Stubs) -> None:
    lease_id = grant(stubs, 120).ID
    stubs.kv.Put(rpc_pb2.PutRequest(key=b"l/1", value=b"x", lease=lease_id), timeout=5)
    resp = stubs.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=True), timeout=5)
    assert resp.ID == lease_id and resp.grantedTTL == 120 and 115 <= resp.TTL <= 120
    assert list(resp.keys) == [b"l/1"]
    resp = stubs.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=0x7777), timeout=5)
    assert resp.TTL == -1 and resp.ID == 0x7777 and resp.header.member_id != 0


def test_keep_alive_stream_answers_each_request(stubs: Stubs) -> None:
    lease_id = grant(stubs, 30).ID
    requests = [rpc_pb2.LeaseKeepAliveRequest(ID=lease_id), rpc_pb2.LeaseKeepAliveRequest(ID=0x4242)]
    responses = list(stubs.lease.LeaseKeepAlive(iter(requests), timeout=5))
    assert [(r.ID, r.TTL) for r in responses] == [(lease_id, 30), (0x4242, 0)]


def test_leases_list_and_revoke_deletes_keys(stubs: Stubs) -> None:
    lease_id = grant(stubs, 60).ID
    stubs.kv.Put(rpc_pb2.PutRequest(key=b"l/r", value=b"x", lease=lease_id), timeout=5)
    ids = [s.ID for s in stubs.lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest(), timeout=5).leases]
    assert lease_id in ids
    stubs.lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease_id), timeout=5)
    assert stubs.kv.Range(rpc_pb2.RangeRequest(key=b"l/r"), timeout=5).count == 0
    assert status_of(lambda: stubs.lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease_id), timeout=5)) == (
        grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")


def test_short_lease_expires_and_takes_its_keys(stubs: Stubs) -> None:
    lease_id = grant(stubs, 1).ID
    stubs.kv.Put(rpc_pb2.PutRequest(key=b"l/short", value=b"x", lease=lease_id), timeout=5)
    deadline = time.monotonic() + 6
    while stubs.kv.Range(rpc_pb2.RangeRequest(key=b"l/short"), timeout=5).count:
        assert time.monotonic() < deadline, "lease did not expire"
        time.sleep(0.1)
    resp = stubs.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id), timeout=5)
    assert resp.TTL == -1
