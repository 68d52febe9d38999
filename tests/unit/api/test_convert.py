"""api/service/convert.py: kvstore records <-> etcd protobuf messages, without a server.

Round trips cover every request and response shape; wire bytes of a hand-built message pin
the enum and oneof mapping that a round trip alone could get consistently wrong.
"""

from __future__ import annotations

import pytest

from api.proto import rpc_pb2
from api.service import convert
from kvstore import types as t

KV = t.KeyValue(key=b"k", create_revision=2, mod_revision=5, version=3, value=b"v", lease=7)

REQUESTS: list[t.Request] = [
    t.RangeRequest(
        key=b"a",
        range_end=b"b",
        limit=3,
        revision=9,
        sort_order=t.SortOrder.DESCEND,
        sort_target=t.SortTarget.MOD,
        serializable=True,
        keys_only=True,
        count_only=True,
        min_mod_revision=1,
        max_mod_revision=2,
        min_create_revision=3,
        max_create_revision=4,
    ),
    t.PutRequest(key=b"k", value=b"v", lease=5, prev_kv=True, ignore_value=True, ignore_lease=True),
    t.DeleteRangeRequest(key=b"a", range_end=b"\x00", prev_kv=True),
    t.TxnRequest(
        compare=tuple(
            t.Compare(result=r, target=target, key=b"k", target_value=value, range_end=b"z")
            for r in t.CompareResult
            for target, value in (
                (t.CompareTarget.VERSION, 1),
                (t.CompareTarget.CREATE, 2),
                (t.CompareTarget.MOD, 3),
                (t.CompareTarget.VALUE, b"x"),
                (t.CompareTarget.LEASE, 4),
            )
        ),
        success=(t.PutRequest(key=b"a"), t.TxnRequest(failure=(t.RangeRequest(key=b"b"),))),
        failure=(t.DeleteRangeRequest(key=b"c"),),
    ),
    t.CompactionRequest(revision=4, physical=True),
    t.LeaseGrantRequest(ttl=60, id=99),
    t.LeaseRevokeRequest(id=99),
]

RESPONSES: list[t.Response] = [
    t.RangeResponse(kvs=(KV,), more=True, count=4, revision=9),
    t.PutResponse(prev_kv=KV, revision=6),
    t.PutResponse(prev_kv=None, revision=6),
    t.DeleteRangeResponse(deleted=1, prev_kvs=(KV,), revision=7),
    t.TxnResponse(
        succeeded=False,
        responses=(
            t.RangeResponse(kvs=(), more=False, count=0, revision=7),
            t.TxnResponse(succeeded=True, responses=(), revision=0),
        ),
        revision=7,
    ),
    t.CompactionResponse(revision=8),
    t.LeaseGrantResponse(id=99, ttl=60, revision=8),
    t.LeaseRevokeResponse(revision=8),
]


@pytest.mark.parametrize("req", REQUESTS, ids=lambda r: type(r).__name__)
def test_request_round_trip(req: t.Request) -> None:
    pb = convert.request_to_pb(req)
    again = type(pb).FromString(pb.SerializeToString())
    assert convert.request_from_pb(again) == req


@pytest.mark.parametrize("resp", RESPONSES, ids=lambda r: type(r).__name__)
def test_response_round_trip(resp: t.Response) -> None:
    header = rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, raft_term=3)
    pb = convert.response_to_pb(resp, header)
    assert (pb.header.cluster_id, pb.header.member_id, pb.header.raft_term) == (1, 2, 3)
    assert pb.header.revision == resp.revision
    assert convert.response_from_pb(type(pb).FromString(pb.SerializeToString())) == resp


def test_events_round_trip() -> None:
    put = t.Event(type=t.EventType.PUT, kv=KV, prev_kv=None)
    delete = t.Event(
        type=t.EventType.DELETE, kv=t.KeyValue(b"k", 0, 9, 0, b"", 0), prev_kv=KV
    )
    for ev in (put, delete):
        assert convert.event_from_pb(convert.event_to_pb(ev)) == ev
    assert not convert.event_to_pb(put).HasField("prev_kv")


def test_compare_union_follows_the_target() -> None:
    c = t.Compare(t.CompareResult.LESS, t.CompareTarget.MOD, b"k", target_value=5)
    pb = convert.compare_to_pb(c)
    assert pb.WhichOneof("target_union") == "mod_revision" and pb.mod_revision == 5
    # A union member that does not belong to the target reads as unset, as in etcd.
    other = rpc_pb2.Compare(result="EQUAL", target="VALUE", key=b"k", version=3)
    assert convert.compare_from_pb(other).target_value == b""
    other = rpc_pb2.Compare(result="EQUAL", target="LEASE", key=b"k", value=b"x")
    assert convert.compare_from_pb(other).target_value == 0
    # And a kvstore value of the wrong type goes on the wire as unset.
    wrong = t.Compare(t.CompareResult.EQUAL, t.CompareTarget.VALUE, b"k", target_value=0)
    assert convert.compare_to_pb(wrong).WhichOneof("target_union") is None


def test_wire_bytes_of_a_range_request() -> None:
    pb = convert.request_to_pb(
        t.RangeRequest(key=b"a", sort_order=t.SortOrder.DESCEND, sort_target=t.SortTarget.VALUE)
    )
    # field 1 (key) "a", field 5 (sort_order) 2, field 6 (sort_target) 4
    assert pb.SerializeToString() == bytes.fromhex("0a0161" "2802" "3004")


def test_empty_ops_are_refused() -> None:
    with pytest.raises(ValueError):
        convert.request_op_from_pb(rpc_pb2.RequestOp())
    with pytest.raises(ValueError):
        convert.response_op_from_pb(rpc_pb2.ResponseOp())
    with pytest.raises(ValueError):
        convert.request_to_pb(t.LeaseCheckpointRequest(id=1, remaining_ttl=5))
