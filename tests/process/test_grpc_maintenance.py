"""Maintenance, Cluster, Auth and Health over real gRPC, and the HTTP endpoints."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from api.grpc.health import HealthCheckRequest, HealthCheckResponse
from api.proto import rpc_pb2
from tests.process.grpc_helpers import Stubs, status_of
from tests.process.servers import KINDS, ServerProcess, run_server

pytestmark = pytest.mark.slow

FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with run_server(request.param) as s:
        yield s


@pytest.fixture
def stubs(server: ServerProcess) -> Iterator[Stubs]:
    s = Stubs.connect(server.endpoint)
    yield s
    s.close()


def test_status(stubs: Stubs) -> None:
    s = stubs.maintenance.Status(rpc_pb2.StatusRequest(), timeout=5)
    assert s.leader == s.header.member_id != 0
    assert s.raftIndex >= s.raftAppliedIndex > 0 and s.raftTerm >= 1
    assert s.dbSize >= s.dbSizeInUse > 0 and not s.errors and not s.isLearner
    assert s.version.count(".") == 2


def test_member_list_header_has_no_revision(server: ServerProcess, stubs: Stubs) -> None:
    resp = stubs.cluster.MemberList(rpc_pb2.MemberListRequest(), timeout=5)
    assert resp.header.revision == 0 and resp.header.member_id != 0
    [m] = resp.members
    assert m.ID == resp.header.member_id and m.name == server.name
    assert list(m.peerURLs) == [server.peer_url] and list(m.clientURLs) == [server.client_url]


def test_membership_errors(stubs: Stubs) -> None:
    assert status_of(lambda: stubs.cluster.MemberRemove(rpc_pb2.MemberRemoveRequest(ID=5), timeout=5)) == (
        grpc.StatusCode.NOT_FOUND, "etcdserver: member not found")
    me = stubs.cluster.MemberList(rpc_pb2.MemberListRequest(), timeout=5).header.member_id
    assert status_of(lambda: stubs.cluster.MemberPromote(rpc_pb2.MemberPromoteRequest(ID=me), timeout=5)) == (
        FAILED_PRECONDITION, "etcdserver: can only promote a learner member")


def test_alarm_list_empty_and_disarm_nothing(stubs: Stubs) -> None:
    assert not stubs.maintenance.Alarm(rpc_pb2.AlarmRequest(action=0), timeout=5).alarms
    assert not stubs.maintenance.Alarm(rpc_pb2.AlarmRequest(action=2), timeout=5).alarms


def test_hashkv_defrag_and_move_leader(stubs: Stubs) -> None:
    stubs.kv.Put(rpc_pb2.PutRequest(key=b"m/h", value=b"1"), timeout=5)
    a = stubs.maintenance.HashKV(rpc_pb2.HashKVRequest(), timeout=5)
    b = stubs.maintenance.HashKV(rpc_pb2.HashKVRequest(), timeout=5)
    assert a.hash == b.hash and a.compact_revision == -1
    stubs.maintenance.Defragment(rpc_pb2.DefragmentRequest(), timeout=10)
    assert stubs.maintenance.HashKV(rpc_pb2.HashKVRequest(), timeout=5).hash == a.hash
    me = a.header.member_id
    stubs.maintenance.MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=me), timeout=5)
    assert status_of(lambda: stubs.maintenance.MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=5), timeout=5)) == (
        FAILED_PRECONDITION, "etcdserver: bad leader transferee")


def test_snapshot_stream_ends_with_sha256(stubs: Stubs) -> None:
    stubs.kv.Put(rpc_pb2.PutRequest(key=b"m/s", value=b"x" * 100_000), timeout=5)
    parts = list(stubs.maintenance.Snapshot(rpc_pb2.SnapshotRequest(), timeout=10))
    data = b"".join(p.blob for p in parts[:-1])
    assert parts[-1].blob == hashlib.sha256(data).digest() and parts[-1].remaining_bytes == 0
    assert len(parts) >= 3 and all(len(p.blob) <= 32 * 1024 for p in parts)
    remaining = [p.remaining_bytes for p in parts[:-1]]
    assert remaining == sorted(remaining, reverse=True)
    assert remaining[-1] == 0 and all(r > 0 for r in remaining[:-1])


def test_auth_answers_with_auth_disabled(stubs: Stubs) -> None:
    assert status_of(lambda: stubs.auth.Authenticate(rpc_pb2.AuthenticateRequest(name="a", password="b"), timeout=5)) == (
        FAILED_PRECONDITION, "etcdserver: authentication is not enabled")
    assert status_of(lambda: stubs.auth.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=5)) == (
        FAILED_PRECONDITION, "etcdserver: root user does not exist")
    assert status_of(lambda: stubs.auth.UserGet(rpc_pb2.AuthUserGetRequest(name="nobody"), timeout=5)) == (
        FAILED_PRECONDITION, "etcdserver: user name not found")
    assert status_of(lambda: stubs.auth.RoleGet(rpc_pb2.AuthRoleGetRequest(role="nobody"), timeout=5)) == (
        FAILED_PRECONDITION, "etcdserver: role name not found")
    assert stubs.auth.AuthDisable(rpc_pb2.AuthDisableRequest(), timeout=5).header.member_id != 0


def test_grpc_health_check(stubs: Stubs) -> None:
    check = stubs.channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=HealthCheckRequest.SerializeToString,
        response_deserializer=HealthCheckResponse.FromString,
    )
    assert check(HealthCheckRequest(service=""), timeout=5).status == 1  # SERVING


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_http_health_and_metrics(server: ServerProcess) -> None:
    status, body = _get(server.metrics_url + "/health")
    assert status == 200 and json.loads(body)["health"] == "true"
    status, body = _get(server.metrics_url + "/metrics")
    assert status == 200
    text = body.decode()
    for family in ("etcd_server_has_leader", "etcd_mvcc_db_total_size_in_bytes",
                   "etcd_disk_wal_fsync_duration_seconds", "etcd_server_proposals_committed_total",
                   "grpc_server_handled_total"):
        assert f"# TYPE {family} " in text, family
    assert "\netcd_server_has_leader 1\n" in text


def test_http_version(server: ServerProcess) -> None:
    if server.kind == "etcd":
        pytest.skip("etcd serves /version on its client URL only (test_http_on_the_client_url)")
    status, body = _get(server.metrics_url + "/version")
    doc = json.loads(body)
    assert status == 200 and set(doc) == {"etcdserver", "etcdcluster"}
    assert doc["etcdcluster"].endswith(".0") and doc["etcdserver"].startswith(doc["etcdcluster"][:3])


def test_http_on_the_client_url(server: ServerProcess) -> None:
    """etcd answers HTTP/1.1 on the gRPC port too (kvstore: api/http2 hands such a
    connection to the same handler as the metrics URL)."""
    status, body = _get(f"http://{server.endpoint}/health")
    assert status == 200 and json.loads(body)["health"] == "true"
    status, body = _get(f"http://{server.endpoint}/version")
    assert status == 200 and "etcdserver" in json.loads(body)
    status, body = _get(f"http://{server.endpoint}/metrics")
    assert status == 200 and b"\netcd_server_has_leader 1\n" in body


def _raw_http(server: ServerProcess, request: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", server.metrics_port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_http_error_paths(server: ServerProcess) -> None:
    if server.kind == "etcd":
        pytest.skip("etcd's Go HTTP server answers these differently (not a compatibility surface)")
    assert _get(server.metrics_url + "/nope")[0] == 404
    assert _raw_http(server, b"POST /health HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    assert _raw_http(server, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    head = _raw_http(server, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")


def test_alarm_makes_health_false_until_disarmed(server: ServerProcess, stubs: Stubs) -> None:
    me = stubs.maintenance.Status(rpc_pb2.StatusRequest(), timeout=5).header.member_id
    activate = rpc_pb2.AlarmRequest(action=1, memberID=me, alarm=1)  # ACTIVATE NOSPACE
    try:
        resp = stubs.maintenance.Alarm(activate, timeout=5)
        assert [(a.memberID, a.alarm) for a in resp.alarms] == [(me, 1)]
        listed = stubs.maintenance.Alarm(rpc_pb2.AlarmRequest(action=0), timeout=5)
        assert [(a.memberID, a.alarm) for a in listed.alarms] == [(me, 1)]
        assert not listed.HasField("header")  # etcd returns the applier's response as is
        assert status_of(lambda: stubs.kv.Put(rpc_pb2.PutRequest(key=b"m/nospace", value=b"x"), timeout=5)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")
        status, body = _get(server.metrics_url + "/health")
        assert status == 503 and json.loads(body)["health"] == "false"
        if server.kind != "etcd":  # etcd 3.4 gives no reason; we use the 3.5 shape
            assert json.loads(body)["reason"] == "ALARM NOSPACE"
        status, body = _get(server.metrics_url + "/health?exclude=NOSPACE")
        if server.kind != "etcd":  # 3.4 has no ?exclude
            assert status == 200 and json.loads(body) == {"health": "true"}
    finally:
        disarm = rpc_pb2.AlarmRequest(action=2, memberID=me, alarm=1)
        cleared = stubs.maintenance.Alarm(disarm, timeout=5)
    assert [(a.memberID, a.alarm) for a in cleared.alarms] == [(me, 1)]
    assert _get(server.metrics_url + "/health")[0] == 200
    stubs.kv.Put(rpc_pb2.PutRequest(key=b"m/after", value=b"x"), timeout=5)
