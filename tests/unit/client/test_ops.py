"""Request values and the txn builder -> etcd protobufs (pure, no server)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.client import (
    Compare,
    Delete,
    Get,
    Put,
    SortOrder,
    SortTarget,
    Txn,
    TxnBuilder,
    prefix_range_end,
)
from api.proto import rpc_pb2


def test_prefix_range_end_examples() -> None:
    assert prefix_range_end(b"a") == b"b"
    assert prefix_range_end(b"a\xff") == b"b"
    assert prefix_range_end(b"\xff\xff") == b"\0"
    assert prefix_range_end(b"") == b"\0"


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=6), st.binary(max_size=6))
def test_prefix_range_end_bounds_exactly_the_prefixed_keys(prefix: bytes, suffix: bytes) -> None:
    end = prefix_range_end(prefix)
    key = prefix + suffix
    # Every key with the prefix is inside [prefix, end) ...
    assert prefix <= key and (end == b"\0" or key < end)
    # ... and end itself (when bounded) does not have the prefix.
    if end != b"\0":
        assert not end.startswith(prefix)


def test_get_carries_every_range_option() -> None:
    pb = Get(
        b"k", prefix=True, limit=3, revision=9, sort_order=SortOrder.DESCEND,
        sort_target=SortTarget.MOD, serializable=True, keys_only=True, count_only=True,
        min_mod_revision=1, max_mod_revision=2, min_create_revision=3, max_create_revision=4,
    ).to_pb()
    assert pb == rpc_pb2.RangeRequest(
        key=b"k", range_end=b"l", limit=3, revision=9, sort_order=rpc_pb2.RangeRequest.DESCEND,
        sort_target=rpc_pb2.RangeRequest.MOD, serializable=True, keys_only=True,
        count_only=True, min_mod_revision=1, max_mod_revision=2, min_create_revision=3,
        max_create_revision=4,
    )
    assert Get(b"k", from_key=True).to_pb().range_end == b"\0"
    assert Get(b"a", range_end=b"c").to_pb().range_end == b"c"
    assert Get(b"a").to_pb().range_end == b""


def test_conflicting_range_options_are_refused() -> None:
    with pytest.raises(ValueError):
        Get(b"k", prefix=True, from_key=True).to_pb()
    with pytest.raises(ValueError):
        Delete(b"k", range_end=b"z", prefix=True).to_pb()


def test_put_and_delete() -> None:
    assert Put(b"k", b"v", lease_id=7, prev_kv=True, ignore_lease=True).to_pb() == (
        rpc_pb2.PutRequest(key=b"k", value=b"v", lease=7, prev_kv=True, ignore_lease=True)
    )
    assert Delete(b"p", prefix=True, prev_kv=True).to_pb() == rpc_pb2.DeleteRangeRequest(
        key=b"p", range_end=b"q", prev_kv=True
    )


def test_compare_operators_build_etcd_compares() -> None:
    c = (Compare.mod(b"k") == 0).to_pb()
    assert c == rpc_pb2.Compare(key=b"k", target=rpc_pb2.Compare.MOD,
                                result=rpc_pb2.Compare.EQUAL, mod_revision=0)
    assert c.WhichOneof("target_union") == "mod_revision"
    c = (Compare.value(b"k") != b"x").to_pb()
    assert (c.result, c.target, c.value) == (rpc_pb2.Compare.NOT_EQUAL,
                                             rpc_pb2.Compare.VALUE, b"x")
    c = (Compare.version(b"k", prefix=True) > 2).to_pb()
    assert (c.result, c.version, c.range_end) == (rpc_pb2.Compare.GREATER, 2, b"l")
    c = (Compare.create(b"k") < 5).to_pb()
    assert (c.result, c.create_revision) == (rpc_pb2.Compare.LESS, 5)
    c = (Compare.lease(b"k") == 42).to_pb()
    assert (c.target, c.lease) == (rpc_pb2.Compare.LEASE, 42)


def test_compare_operand_types_are_checked() -> None:
    with pytest.raises(TypeError):
        (Compare.value(b"k") == 3).to_pb()
    with pytest.raises(TypeError):
        (Compare.mod(b"k") == b"3").to_pb()
    with pytest.raises(TypeError):
        _ = Compare.mod(b"k") == True  # noqa: E712 - bools are not revisions
    with pytest.raises(TypeError):
        hash(Compare.mod(b"k"))


def test_builder_nested_txn_round_trip() -> None:
    inner = Txn((Compare.version(b"b") == 0,), (Put(b"b", b"1"),), (Delete(b"b"),))
    built = TxnBuilder(lambda t: t).if_(Compare.mod(b"k") == 0).then(
        Put(b"k", b"v"), inner
    ).else_(Get(b"k")).commit()
    pb = built.to_pb()
    assert len(pb.compare) == 1
    assert [op.WhichOneof("request") for op in pb.success] == ["request_put", "request_txn"]
    assert pb.success[1].request_txn.failure[0].request_delete_range.key == b"b"
    assert pb.failure[0].request_range.key == b"k"


def test_builder_clause_order_is_enforced() -> None:
    b = TxnBuilder(lambda t: t).then(Put(b"k"))
    with pytest.raises(ValueError):
        b.if_()
    b.else_(Get(b"k"))
    with pytest.raises(ValueError):
        b.then(Put(b"x"))
    with pytest.raises(ValueError):
        b.else_(Get(b"k"))
    assert TxnBuilder(lambda t: t).commit() == Txn()
