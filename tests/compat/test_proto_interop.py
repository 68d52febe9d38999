"""Our generated stubs talk to a real etcd 3.4: the protos carry etcd's wire identity.

Each call goes through api/proto stubs to a private etcd started on free loopback ports;
a wrong package, method name or field number shows up as UNIMPLEMENTED or as a field that
etcd ignores (e.g. a lost prev_kv or a missing count).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from api.proto import (
    kv_pb2,
    rpc_pb2,
    rpc_pb2_grpc,
    v3election_pb2,
    v3election_pb2_grpc,
    v3lock_pb2,
    v3lock_pb2_grpc,
)
from tests.compat.etcd_server import EtcdServer, etcd_binary, run_etcd

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.slow,
    pytest.mark.skipif(etcd_binary() is None, reason="real etcd not installed (make debs)"),
]


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with run_etcd() as server:
        yield server


@pytest.fixture()
def channel(etcd: EtcdServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(etcd.endpoint) as ch:
        yield ch


def test_put_range_txn(channel: grpc.Channel) -> None:
    kv = rpc_pb2_grpc.KVStub(channel)
    put = kv.Put(rpc_pb2.PutRequest(key=b"interop/a", value=b"1"))
    rev = put.header.revision
    assert rev >= 2 and put.header.cluster_id != 0 and put.header.member_id != 0
    again = kv.Put(rpc_pb2.PutRequest(key=b"interop/a", value=b"2", prev_kv=True))
    assert again.prev_kv.value == b"1" and again.prev_kv.mod_revision == rev
    kv.Put(rpc_pb2.PutRequest(key=b"interop/b", value=b"3"))

    got = kv.Range(rpc_pb2.RangeRequest(key=b"interop/", range_end=b"interop0", limit=1))
    assert got.count == 2 and got.more
    assert [(x.key, x.value, x.version) for x in got.kvs] == [(b"interop/a", b"2", 2)]

    txn = kv.Txn(
        rpc_pb2.TxnRequest(
            compare=[
                rpc_pb2.Compare(
                    key=b"interop/a",
                    target=rpc_pb2.Compare.VALUE,
                    result=rpc_pb2.Compare.EQUAL,
                    value=b"2",
                )
            ],
            success=[
                rpc_pb2.RequestOp(
                    request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"interop/b", prev_kv=True)
                )
            ],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"interop/a"))],
        )
    )
    assert txn.succeeded
    deleted = txn.responses[0].response_delete_range
    assert deleted.deleted == 1 and deleted.prev_kvs[0].value == b"3"


def test_errors_carry_etcd_strings(channel: grpc.Channel) -> None:
    kv = rpc_pb2_grpc.KVStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        kv.Range(rpc_pb2.RangeRequest(key=b"x", revision=10**9))
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert info.value.details() == "etcdserver: mvcc: required revision is a future revision"


def test_lease_and_status(channel: grpc.Channel) -> None:
    lease = rpc_pb2_grpc.LeaseStub(channel)
    granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60))
    assert granted.ID != 0 and granted.TTL == 60
    kv = rpc_pb2_grpc.KVStub(channel)
    kv.Put(rpc_pb2.PutRequest(key=b"interop/leased", value=b"x", lease=granted.ID))
    ttl = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=granted.ID, keys=True))
    assert ttl.grantedTTL == 60 and list(ttl.keys) == [b"interop/leased"]
    leases = lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest())
    assert granted.ID in [s.ID for s in leases.leases]

    status = rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest())
    assert status.version.startswith("3.4.")
    assert status.leader == status.header.member_id
    assert status.raftAppliedIndex >= 1 and status.dbSize > 0 and status.dbSizeInUse > 0
    members = rpc_pb2_grpc.ClusterStub(channel).MemberList(rpc_pb2.MemberListRequest())
    assert [m.name for m in members.members] == ["oracle"]


def test_watch_stream(channel: grpc.Channel) -> None:
    kv = rpc_pb2_grpc.KVStub(channel)
    start = kv.Put(rpc_pb2.PutRequest(key=b"watch/a", value=b"1")).header.revision
    kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"watch/a"))

    requests = [
        rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(
                key=b"watch/", range_end=b"watch0", start_revision=start, prev_kv=True,
                watch_id=7,
            )
        ),
        rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()),
    ]
    call = rpc_pb2_grpc.WatchStub(channel).Watch(iter(requests), timeout=10)
    responses: list[rpc_pb2.WatchResponse] = []
    events: list[kv_pb2.Event] = []
    for response in call:
        responses.append(response)
        events.extend(response.events)
        if len(events) >= 2:
            break
    call.cancel()
    assert responses[0].created and responses[0].watch_id == 7
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in events] == [
        (kv_pb2.Event.PUT, b"watch/a", start),
        (kv_pb2.Event.DELETE, b"watch/a", start + 1),
    ]
    assert events[1].prev_kv.value == b"1"


def test_lock_and_election_services(channel: grpc.Channel) -> None:
    lease_id = rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60)).ID
    lock = v3lock_pb2_grpc.LockStub(channel)
    held = lock.Lock(v3lock_pb2.LockRequest(name=b"interop-lock", lease=lease_id), timeout=10)
    # etcd's lock key is "<name>/<lease ID in hex>".
    assert held.key == b"interop-lock/" + format(lease_id, "x").encode()
    lock.Unlock(v3lock_pb2.UnlockRequest(key=held.key), timeout=10)

    election = v3election_pb2_grpc.ElectionStub(channel)
    won = election.Campaign(
        v3election_pb2.CampaignRequest(name=b"interop-elect", lease=lease_id, value=b"me"),
        timeout=10,
    )
    assert won.leader.name == b"interop-elect" and won.leader.lease == lease_id
    leader = election.Leader(v3election_pb2.LeaderRequest(name=b"interop-elect"), timeout=10)
    assert leader.kv.value == b"me" and leader.kv.create_revision == won.leader.rev
    election.Resign(v3election_pb2.ResignRequest(leader=won.leader), timeout=10)
