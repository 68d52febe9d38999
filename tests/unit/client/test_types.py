"""protobuf responses -> frozen result records."""

from __future__ import annotations

import dataclasses

import pytest

from api.client import (
    Alarm,
    AlarmType,
    DeleteResult,
    Event,
    EventType,
    GetResult,
    KeyValue,
    LeaseTimeToLive,
    Member,
    PutResult,
    Status,
    TxnResult,
)
from api.client._client import _read_only_txn
from api.client._ops import Get, Put, Txn
from api.proto import kv_pb2, rpc_pb2

HDR = rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4)
KV = kv_pb2.KeyValue(key=b"k", value=b"v", create_revision=2, mod_revision=3, version=2, lease=9)


def test_key_value_and_event() -> None:
    kv = KeyValue.from_pb(KV)
    assert kv == KeyValue(b"k", b"v", 2, 3, 2, 9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        kv.value = b"x"  # type: ignore[misc]
    ev = Event.from_pb(kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=KV))
    assert ev.type is EventType.DELETE and ev.prev_kv is None
    ev = Event.from_pb(kv_pb2.Event(type=kv_pb2.Event.PUT, kv=KV, prev_kv=KV))
    assert ev.type is EventType.PUT and ev.prev_kv == kv


def test_get_put_delete_results() -> None:
    g = GetResult.from_pb(rpc_pb2.RangeResponse(header=HDR, kvs=[KV], more=True, count=5))
    assert (g.header.revision, g.count, g.more, g.value) == (3, 5, True, b"v")
    assert GetResult.from_pb(rpc_pb2.RangeResponse(header=HDR)).value is None
    assert PutResult.from_pb(rpc_pb2.PutResponse(header=HDR)).prev_kv is None
    assert PutResult.from_pb(rpc_pb2.PutResponse(header=HDR, prev_kv=KV)).prev_kv is not None
    d = DeleteResult.from_pb(rpc_pb2.DeleteRangeResponse(header=HDR, deleted=1, prev_kvs=[KV]))
    assert d.deleted == 1 and d.prev_kvs[0].key == b"k"


def test_nested_txn_result() -> None:
    inner = rpc_pb2.TxnResponse(header=HDR, succeeded=False, responses=[
        rpc_pb2.ResponseOp(response_delete_range=rpc_pb2.DeleteRangeResponse(deleted=2))
    ])
    r = TxnResult.from_pb(rpc_pb2.TxnResponse(header=HDR, succeeded=True, responses=[
        rpc_pb2.ResponseOp(response_range=rpc_pb2.RangeResponse(kvs=[KV])),
        rpc_pb2.ResponseOp(response_put=rpc_pb2.PutResponse()),
        rpc_pb2.ResponseOp(response_txn=inner),
    ]))
    assert r.succeeded
    assert [type(x).__name__ for x in r.responses] == ["GetResult", "PutResult", "TxnResult"]
    nested = r.responses[2]
    assert isinstance(nested, TxnResult) and isinstance(nested.responses[0], DeleteResult)
    assert nested.responses[0].deleted == 2


def test_lease_member_status_alarm() -> None:
    t = LeaseTimeToLive.from_pb(rpc_pb2.LeaseTimeToLiveResponse(
        header=HDR, ID=7, TTL=-1, grantedTTL=0, keys=[b"a"]))
    assert (t.lease_id, t.ttl_s, t.keys) == (7, -1, (b"a",))
    m = Member.from_pb(rpc_pb2.Member(ID=5, name="n", peerURLs=["p"], clientURLs=["c"],
                                      isLearner=True))
    assert m == Member(5, "n", ("p",), ("c",), True)
    s = Status.from_pb(rpc_pb2.StatusResponse(header=HDR, version="3.4.23", dbSize=10, leader=2,
                                              raftIndex=8, raftTerm=4, raftAppliedIndex=8,
                                              dbSizeInUse=9, isLearner=False, errors=["e"]))
    assert (s.version, s.db_size, s.db_size_in_use, s.errors) == ("3.4.23", 10, 9, ("e",))
    a = Alarm.from_pb(rpc_pb2.AlarmMember(memberID=3, alarm=rpc_pb2.NOSPACE))
    assert a == Alarm(3, AlarmType.NOSPACE)


def test_read_only_txn_classification() -> None:
    assert _read_only_txn(Txn((), (Get(b"a"),), (Txn((), (Get(b"b"),)),)))
    assert not _read_only_txn(Txn((), (Get(b"a"),), (Txn((), (Put(b"b"),)),)))
