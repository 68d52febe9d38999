"""Wire identity of our protos: the names and numbers etcd clients depend on.

These facts come from etcd's public API; if any of them changes, real etcd clients break
(gRPC addresses methods by full name, protobuf decodes fields by number).
"""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import Descriptor

from api.proto import (
    auth_pb2,
    kv_pb2,
    rpc_pb2,
    rpc_pb2_grpc,
    v3election_pb2,
    v3lock_pb2,
)


def numbers(desc: Descriptor) -> dict[str, int]:
    return {f.name: f.number for f in desc.fields}


def full_methods() -> set[str]:
    out: set[str] = set()
    for module in (rpc_pb2, v3lock_pb2, v3election_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                out.add(f"/{service.full_name}/{method.name}")
    return out


def test_packages() -> None:
    assert rpc_pb2.DESCRIPTOR.package == "etcdserverpb"
    assert kv_pb2.DESCRIPTOR.package == "mvccpb"
    assert auth_pb2.DESCRIPTOR.package == "authpb"
    assert v3lock_pb2.DESCRIPTOR.package == "v3lockpb"
    assert v3election_pb2.DESCRIPTOR.package == "v3electionpb"


def test_method_count_and_names() -> None:
    methods = full_methods()
    # 39 RPCs in etcd 3.4's six services, + AuthStatus and Downgrade (3.5), + 2 lock + 5 election.
    assert len(methods) == 39 + 2 + 2 + 5
    for name in (
        "/etcdserverpb.KV/Range",
        "/etcdserverpb.KV/Put",
        "/etcdserverpb.KV/DeleteRange",
        "/etcdserverpb.KV/Txn",
        "/etcdserverpb.KV/Compact",
        "/etcdserverpb.Watch/Watch",
        "/etcdserverpb.Lease/LeaseGrant",
        "/etcdserverpb.Lease/LeaseKeepAlive",
        "/etcdserverpb.Cluster/MemberPromote",
        "/etcdserverpb.Maintenance/Status",
        "/etcdserverpb.Maintenance/Downgrade",
        "/etcdserverpb.Auth/AuthStatus",
        "/etcdserverpb.Auth/UserChangePassword",
        "/v3lockpb.Lock/Lock",
        "/v3electionpb.Election/Observe",
    ):
        assert name in methods, name


def test_streaming_shapes() -> None:
    services = rpc_pb2.DESCRIPTOR.services_by_name
    watch = services["Watch"].methods_by_name["Watch"]
    keepalive = services["Lease"].methods_by_name["LeaseKeepAlive"]
    snapshot = services["Maintenance"].methods_by_name["Snapshot"]
    assert watch.client_streaming and watch.server_streaming
    assert keepalive.client_streaming and keepalive.server_streaming
    assert snapshot.server_streaming and not snapshot.client_streaming
    observe = v3election_pb2.DESCRIPTOR.services_by_name["Election"].methods_by_name["Observe"]
    assert observe.server_streaming and not observe.client_streaming


def test_stub_uses_full_method_names() -> None:
    # The generated stub is what our client sends on the wire.
    class Recorder:
        def __init__(self) -> None:
            self.paths: list[str] = []

        def unary_unary(self, path: str, **_: object) -> None:
            self.paths.append(path)

    recorder = Recorder()
    rpc_pb2_grpc.KVStub(recorder)
    assert recorder.paths == [
        "/etcdserverpb.KV/Range",
        "/etcdserverpb.KV/Put",
        "/etcdserverpb.KV/DeleteRange",
        "/etcdserverpb.KV/Txn",
        "/etcdserverpb.KV/Compact",
    ]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            rpc_pb2.ResponseHeader,
            {"cluster_id": 1, "member_id": 2, "revision": 3, "raft_term": 4},
        ),
        (
            rpc_pb2.RangeRequest,
            {
                "key": 1, "range_end": 2, "limit": 3, "revision": 4, "sort_order": 5,
                "sort_target": 6, "serializable": 7, "keys_only": 8, "count_only": 9,
                "min_mod_revision": 10, "max_mod_revision": 11, "min_create_revision": 12,
                "max_create_revision": 13,
            },
        ),
        (
            rpc_pb2.PutRequest,
            {"key": 1, "value": 2, "lease": 3, "prev_kv": 4, "ignore_value": 5, "ignore_lease": 6},
        ),
        (
            rpc_pb2.WatchCreateRequest,
            {
                "key": 1, "range_end": 2, "start_revision": 3, "progress_notify": 4,
                "filters": 5, "prev_kv": 6, "watch_id": 7, "fragment": 8,
            },
        ),
        (
            rpc_pb2.WatchResponse,
            {
                "header": 1, "watch_id": 2, "created": 3, "canceled": 4,
                "compact_revision": 5, "cancel_reason": 6, "fragment": 7, "events": 11,
            },
        ),
        (
            rpc_pb2.Compare,
            {
                "result": 1, "target": 2, "key": 3, "version": 4, "create_revision": 5,
                "mod_revision": 6, "value": 7, "lease": 8, "range_end": 64,
            },
        ),
        (
            rpc_pb2.StatusResponse,
            {
                "header": 1, "version": 2, "dbSize": 3, "leader": 4, "raftIndex": 5,
                "raftTerm": 6, "raftAppliedIndex": 7, "errors": 8, "dbSizeInUse": 9,
                "isLearner": 10,
            },
        ),
        (rpc_pb2.MemberListRequest, {"linearizable": 1}),
        (
            kv_pb2.KeyValue,
            {
                "key": 1, "create_revision": 2, "mod_revision": 3, "version": 4, "value": 5,
                "lease": 6,
            },
        ),
        (kv_pb2.Event, {"type": 1, "kv": 2, "prev_kv": 3}),
    ],
    ids=lambda v: v.DESCRIPTOR.full_name if hasattr(v, "DESCRIPTOR") else "",
)
def test_field_numbers(message: type, expected: dict[str, int]) -> None:
    assert numbers(message.DESCRIPTOR) == expected  # type: ignore[attr-defined]


def test_enum_values() -> None:
    assert kv_pb2.Event.PUT == 0 and kv_pb2.Event.DELETE == 1
    assert rpc_pb2.Compare.EQUAL == 0 and rpc_pb2.Compare.NOT_EQUAL == 3
    assert rpc_pb2.Compare.LEASE == 4
    assert rpc_pb2.WatchCreateRequest.NOPUT == 0 and rpc_pb2.WatchCreateRequest.NODELETE == 1
    assert rpc_pb2.RangeRequest.DESCEND == 2 and rpc_pb2.RangeRequest.VALUE == 4
    assert rpc_pb2.NOSPACE == 1 and rpc_pb2.CORRUPT == 2
    assert auth_pb2.Permission.READWRITE == 2


def test_known_bytes_round_trip() -> None:
    # PutRequest{key:"a", value:"b", lease:7, prev_kv:true} as etcd's Go code marshals it.
    wire = bytes.fromhex("0a0161" "120162" "1807" "2001")
    msg = rpc_pb2.PutRequest.FromString(wire)
    assert (msg.key, msg.value, msg.lease, msg.prev_kv) == (b"a", b"b", 7, True)
    assert msg.SerializeToString() == wire


ETCD_35_MESSAGES = """
ResponseHeader RangeRequest RangeResponse PutRequest PutResponse DeleteRangeRequest
DeleteRangeResponse RequestOp ResponseOp Compare TxnRequest TxnResponse CompactionRequest
CompactionResponse HashRequest HashKVRequest HashKVResponse HashResponse SnapshotRequest
SnapshotResponse WatchRequest WatchCreateRequest WatchCancelRequest WatchProgressRequest
WatchResponse LeaseGrantRequest LeaseGrantResponse LeaseRevokeRequest LeaseRevokeResponse
LeaseCheckpoint LeaseCheckpointRequest LeaseCheckpointResponse LeaseKeepAliveRequest
LeaseKeepAliveResponse LeaseTimeToLiveRequest LeaseTimeToLiveResponse LeaseLeasesRequest
LeaseStatus LeaseLeasesResponse Member MemberAddRequest MemberAddResponse MemberRemoveRequest
MemberRemoveResponse MemberUpdateRequest MemberUpdateResponse MemberListRequest
MemberListResponse MemberPromoteRequest MemberPromoteResponse DefragmentRequest
DefragmentResponse MoveLeaderRequest MoveLeaderResponse AlarmRequest AlarmMember AlarmResponse
DowngradeRequest DowngradeResponse StatusRequest StatusResponse AuthEnableRequest
AuthDisableRequest AuthStatusRequest AuthenticateRequest AuthUserAddRequest AuthUserGetRequest
AuthUserDeleteRequest AuthUserChangePasswordRequest AuthUserGrantRoleRequest
AuthUserRevokeRoleRequest AuthRoleAddRequest AuthRoleGetRequest AuthUserListRequest
AuthRoleListRequest AuthRoleDeleteRequest AuthRoleGrantPermissionRequest
AuthRoleRevokePermissionRequest AuthEnableResponse AuthDisableResponse AuthStatusResponse
AuthenticateResponse AuthUserAddResponse AuthUserGetResponse AuthUserDeleteResponse
AuthUserChangePasswordResponse AuthUserGrantRoleResponse AuthUserRevokeRoleResponse
AuthRoleAddResponse AuthRoleGetResponse AuthRoleListResponse AuthUserListResponse
AuthRoleDeleteResponse AuthRoleGrantPermissionResponse AuthRoleRevokePermissionResponse
""".split()


def test_every_etcd_35_message_is_declared() -> None:
    assert set(rpc_pb2.DESCRIPTOR.message_types_by_name) == set(ETCD_35_MESSAGES)
    assert set(kv_pb2.DESCRIPTOR.message_types_by_name) == {"KeyValue", "Event"}
    assert set(auth_pb2.DESCRIPTOR.message_types_by_name) == {
        "UserAddOptions", "User", "Permission", "Role"
    }


def test_every_rpc_takes_and_returns_its_etcd_messages() -> None:
    # etcd's pattern: Xxx(XxxRequest) returns (XxxResponse), with these documented exceptions.
    exceptions = {"Compact": ("CompactionRequest", "CompactionResponse")}
    for service in rpc_pb2.DESCRIPTOR.services_by_name.values():
        for m in service.methods:
            if m.name in exceptions:
                assert (m.input_type.name, m.output_type.name) == exceptions[m.name]
            elif service.name == "Auth" and m.name.startswith(("User", "Role")):
                assert m.input_type.name == f"Auth{m.name}Request"
                assert m.output_type.name == f"Auth{m.name}Response"
            else:
                assert m.input_type.name == f"{m.name}Request", m.full_name
                assert m.output_type.name == f"{m.name}Response", m.full_name
