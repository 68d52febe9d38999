"""Raft entry payloads round-trip every request type, including nested txns and enums."""

from __future__ import annotations

import msgpack
import pytest

from api.server import codec
from kvstore import types as kt


def _txn() -> kt.TxnRequest:
    inner = kt.TxnRequest(
        compare=(kt.Compare(kt.CompareResult.GREATER, kt.CompareTarget.VALUE, b"k", b"v"),),
        success=(kt.DeleteRangeRequest(b"a", b"b", prev_kv=True),),
    )
    return kt.TxnRequest(
        compare=(kt.Compare(kt.CompareResult.EQUAL, kt.CompareTarget.MOD, b"k", 0, b"z"),),
        success=(kt.PutRequest(b"k", b"v", lease=7), inner),
        failure=(kt.RangeRequest(b"k", sort_order=kt.SortOrder.DESCEND,
                                 sort_target=kt.SortTarget.MOD),),
    )


@pytest.mark.parametrize(
    "request_",
    [
        kt.PutRequest(b"key", b"\x00value", lease=3, prev_kv=True),
        kt.DeleteRangeRequest(b"a", b"\x00"),
        kt.CompactionRequest(5, physical=True),
        kt.LeaseGrantRequest(ttl=10, id=0),
        kt.LeaseRevokeRequest(id=99),
        kt.LeaseCheckpointRequest(id=1, remaining_ttl=4),
        codec.AlarmRequest(action=1, member_id=2, alarm=1),
        codec.MemberAttributes(member_id=1, name="n1", client_urls=("http://a:1",)),
        _txn(),
    ],
)
def test_round_trip(request_: object) -> None:
    proposal_id, decoded = codec.decode(codec.encode(12345, request_))
    assert proposal_id == 12345
    assert decoded == request_


def test_enums_are_restored() -> None:
    _, decoded = codec.decode(codec.encode(1, _txn()))
    assert isinstance(decoded, kt.TxnRequest)
    assert decoded.compare[0].target is kt.CompareTarget.MOD
    failure = decoded.failure[0]
    assert isinstance(failure, kt.RangeRequest) and failure.sort_order is kt.SortOrder.DESCEND


def test_unknown_version_and_code_are_refused() -> None:
    with pytest.raises(codec.CodecError, match="version"):
        codec.decode(msgpack.packb([99, 1, None]))
    with pytest.raises(codec.CodecError, match="type code"):
        codec.decode(msgpack.packb([1, 1, msgpack.ExtType(100, b"\x90")]))
    with pytest.raises(codec.CodecError):
        codec.decode(b"\xc1garbage")
    with pytest.raises(TypeError):
        codec.encode(1, object())
