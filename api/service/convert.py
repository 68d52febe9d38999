"""Translation between etcd's protobuf messages (api/proto) and kvstore's records (kvstore.types).

Requests go proto -> kvstore (`request_from_pb`, `request_op_from_pb`) on the server, and
kvstore -> proto (`request_to_pb`) in clients and in the differential test that replays one
request sequence against real etcd and against our store. Responses go both ways for the same
reasons. Field names match one to one (kvstore.types follows etcd's names); the only shape
changes are:

* `Compare.target_union` (a oneof) <-> `Compare.target_value`. etcd reads the union member
  that belongs to the compare's target and treats any other member as unset, so
  `compare_from_pb` takes that member or its zero value (0, or b"" for VALUE).
* Every kvstore response carries `revision`, which is `header.revision` on the wire; the rest
  of the header (cluster_id, member_id, raft_term) is the server's, passed to `*_to_pb`.
* Lease IDs are `id` in kvstore.types and `ID` on the wire.
* Enums are passed by name (kvstore's enum names and numbers equal the proto's).
"""

from __future__ import annotations

from api.proto import kv_pb2, rpc_pb2
from kvstore import types as t

__all__ = [
    "compare_from_pb",
    "compare_to_pb",
    "event_from_pb",
    "event_to_pb",
    "kv_from_pb",
    "kv_to_pb",
    "request_from_pb",
    "request_op_from_pb",
    "request_op_to_pb",
    "request_to_pb",
    "response_from_pb",
    "response_op_from_pb",
    "response_op_to_pb",
    "response_to_pb",
]

_PbRequest = (
    rpc_pb2.RangeRequest
    | rpc_pb2.PutRequest
    | rpc_pb2.DeleteRangeRequest
    | rpc_pb2.TxnRequest
    | rpc_pb2.CompactionRequest
    | rpc_pb2.LeaseGrantRequest
    | rpc_pb2.LeaseRevokeRequest
)
_PbResponse = (
    rpc_pb2.RangeResponse
    | rpc_pb2.PutResponse
    | rpc_pb2.DeleteRangeResponse
    | rpc_pb2.TxnResponse
    | rpc_pb2.CompactionResponse
    | rpc_pb2.LeaseGrantResponse
    | rpc_pb2.LeaseRevokeResponse
)

# Compare target -> name of the target_union member etcd reads for it.
_UNION_FIELD = {
    t.CompareTarget.VERSION: "version",
    t.CompareTarget.CREATE: "create_revision",
    t.CompareTarget.MOD: "mod_revision",
    t.CompareTarget.VALUE: "value",
    t.CompareTarget.LEASE: "lease",
}


# --- KeyValue and Event -----------------------------------------------------------------------


def kv_to_pb(kv: t.KeyValue) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        value=kv.value,
        lease=kv.lease,
    )


def kv_from_pb(pb: kv_pb2.KeyValue) -> t.KeyValue:
    return t.KeyValue(
        key=pb.key,
        create_revision=pb.create_revision,
        mod_revision=pb.mod_revision,
        version=pb.version,
        value=pb.value,
        lease=pb.lease,
    )


def event_to_pb(ev: t.Event) -> kv_pb2.Event:
    out = kv_pb2.Event(type=ev.type.name, kv=kv_to_pb(ev.kv))
    if ev.prev_kv is not None:
        out.prev_kv.CopyFrom(kv_to_pb(ev.prev_kv))
    return out


def event_from_pb(pb: kv_pb2.Event) -> t.Event:
    return t.Event(
        type=t.EventType(pb.type),
        kv=kv_from_pb(pb.kv),
        prev_kv=kv_from_pb(pb.prev_kv) if pb.HasField("prev_kv") else None,
    )


# --- requests -----------------------------------------------------------------------------------


def compare_to_pb(c: t.Compare) -> rpc_pb2.Compare:
    out = rpc_pb2.Compare(
        result=c.result.name,
        target=c.target.name,
        key=c.key,
        range_end=c.range_end,
    )
    value_is_bytes = isinstance(c.target_value, bytes)
    if value_is_bytes == (c.target is t.CompareTarget.VALUE):
        setattr(out, _UNION_FIELD[c.target], c.target_value)
    # else: a value of the wrong type means "unset", which etcd compares as 0 or b"".
    return out


def compare_from_pb(pb: rpc_pb2.Compare) -> t.Compare:
    target = t.CompareTarget(pb.target)
    name = _UNION_FIELD[target]
    value: int | bytes
    if pb.WhichOneof("target_union") == name:
        value = getattr(pb, name)
    else:
        value = b"" if target is t.CompareTarget.VALUE else 0
    return t.Compare(
        result=t.CompareResult(pb.result),
        target=target,
        key=pb.key,
        target_value=value,
        range_end=pb.range_end,
    )


def _range_to_pb(r: t.RangeRequest) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(
        key=r.key,
        range_end=r.range_end,
        limit=r.limit,
        revision=r.revision,
        sort_order=r.sort_order.name,
        sort_target=r.sort_target.name,
        serializable=r.serializable,
        keys_only=r.keys_only,
        count_only=r.count_only,
        min_mod_revision=r.min_mod_revision,
        max_mod_revision=r.max_mod_revision,
        min_create_revision=r.min_create_revision,
        max_create_revision=r.max_create_revision,
    )


def _range_from_pb(pb: rpc_pb2.RangeRequest) -> t.RangeRequest:
    return t.RangeRequest(
        key=pb.key,
        range_end=pb.range_end,
        limit=pb.limit,
        revision=pb.revision,
        sort_order=t.SortOrder(pb.sort_order),
        sort_target=t.SortTarget(pb.sort_target),
        serializable=pb.serializable,
        keys_only=pb.keys_only,
        count_only=pb.count_only,
        min_mod_revision=pb.min_mod_revision,
        max_mod_revision=pb.max_mod_revision,
        min_create_revision=pb.min_create_revision,
        max_create_revision=pb.max_create_revision,
    )


def _put_to_pb(r: t.PutRequest) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(
        key=r.key,
        value=r.value,
        lease=r.lease,
        prev_kv=r.prev_kv,
        ignore_value=r.ignore_value,
        ignore_lease=r.ignore_lease,
    )


def _put_from_pb(pb: rpc_pb2.PutRequest) -> t.PutRequest:
    return t.PutRequest(
        key=pb.key,
        value=pb.value,
        lease=pb.lease,
        prev_kv=pb.prev_kv,
        ignore_value=pb.ignore_value,
        ignore_lease=pb.ignore_lease,
    )


def _txn_to_pb(r: t.TxnRequest) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(
        compare=[compare_to_pb(c) for c in r.compare],
        success=[request_op_to_pb(op) for op in r.success],
        failure=[request_op_to_pb(op) for op in r.failure],
    )


def _txn_from_pb(pb: rpc_pb2.TxnRequest) -> t.TxnRequest:
    return t.TxnRequest(
        compare=tuple(compare_from_pb(c) for c in pb.compare),
        success=tuple(request_op_from_pb(op) for op in pb.success),
        failure=tuple(request_op_from_pb(op) for op in pb.failure),
    )


def request_op_to_pb(op: t.RequestOp) -> rpc_pb2.RequestOp:
    if isinstance(op, t.RangeRequest):
        return rpc_pb2.RequestOp(request_range=_range_to_pb(op))
    if isinstance(op, t.PutRequest):
        return rpc_pb2.RequestOp(request_put=_put_to_pb(op))
    if isinstance(op, t.DeleteRangeRequest):
        return rpc_pb2.RequestOp(
            request_delete_range=rpc_pb2.DeleteRangeRequest(
                key=op.key, range_end=op.range_end, prev_kv=op.prev_kv
            )
        )
    return rpc_pb2.RequestOp(request_txn=_txn_to_pb(op))


def request_op_from_pb(pb: rpc_pb2.RequestOp) -> t.RequestOp:
    which = pb.WhichOneof("request")
    if which == "request_range":
        return _range_from_pb(pb.request_range)
    if which == "request_put":
        return _put_from_pb(pb.request_put)
    if which == "request_delete_range":
        d = pb.request_delete_range
        return t.DeleteRangeRequest(key=d.key, range_end=d.range_end, prev_kv=d.prev_kv)
    if which == "request_txn":
        return _txn_from_pb(pb.request_txn)
    # etcd rejects an empty RequestOp the same way: as a request that does nothing useful.
    raise ValueError("RequestOp carries no request")


def request_to_pb(req: t.Request) -> _PbRequest:
    """A kvstore request as the message its KV or Lease RPC takes."""
    if isinstance(req, t.CompactionRequest):
        return rpc_pb2.CompactionRequest(revision=req.revision, physical=req.physical)
    if isinstance(req, t.LeaseGrantRequest):
        return rpc_pb2.LeaseGrantRequest(TTL=req.ttl, ID=req.id)
    if isinstance(req, t.LeaseRevokeRequest):
        return rpc_pb2.LeaseRevokeRequest(ID=req.id)
    if isinstance(req, t.LeaseCheckpointRequest):
        raise ValueError("LeaseCheckpointRequest is internal and has no client RPC")
    op = request_op_to_pb(req)
    inner: _PbRequest = getattr(op, op.WhichOneof("request") or "")
    return inner


def request_from_pb(pb: _PbRequest) -> t.Request:
    if isinstance(pb, rpc_pb2.RangeRequest):
        return _range_from_pb(pb)
    if isinstance(pb, rpc_pb2.PutRequest):
        return _put_from_pb(pb)
    if isinstance(pb, rpc_pb2.DeleteRangeRequest):
        return t.DeleteRangeRequest(key=pb.key, range_end=pb.range_end, prev_kv=pb.prev_kv)
    if isinstance(pb, rpc_pb2.TxnRequest):
        return _txn_from_pb(pb)
    if isinstance(pb, rpc_pb2.CompactionRequest):
        return t.CompactionRequest(revision=pb.revision, physical=pb.physical)
    if isinstance(pb, rpc_pb2.LeaseGrantRequest):
        return t.LeaseGrantRequest(ttl=pb.TTL, id=pb.ID)
    return t.LeaseRevokeRequest(id=pb.ID)


# --- responses -----------------------------------------------------------------------------------


def _header(revision: int, base: rpc_pb2.ResponseHeader | None) -> rpc_pb2.ResponseHeader:
    header = rpc_pb2.ResponseHeader()
    if base is not None:
        header.CopyFrom(base)
    header.revision = revision
    return header


def response_op_to_pb(
    resp: t.ResponseOp, header: rpc_pb2.ResponseHeader | None = None
) -> rpc_pb2.ResponseOp:
    if isinstance(resp, t.RangeResponse):
        return rpc_pb2.ResponseOp(response_range=_range_response_to_pb(resp, header))
    if isinstance(resp, t.PutResponse):
        return rpc_pb2.ResponseOp(response_put=_put_response_to_pb(resp, header))
    if isinstance(resp, t.DeleteRangeResponse):
        return rpc_pb2.ResponseOp(response_delete_range=_delete_response_to_pb(resp, header))
    return rpc_pb2.ResponseOp(response_txn=_txn_response_to_pb(resp, header))


def _range_response_to_pb(
    resp: t.RangeResponse, header: rpc_pb2.ResponseHeader | None
) -> rpc_pb2.RangeResponse:
    return rpc_pb2.RangeResponse(
        header=_header(resp.revision, header),
        kvs=[kv_to_pb(kv) for kv in resp.kvs],
        more=resp.more,
        count=resp.count,
    )


def _put_response_to_pb(
    resp: t.PutResponse, header: rpc_pb2.ResponseHeader | None
) -> rpc_pb2.PutResponse:
    out = rpc_pb2.PutResponse(header=_header(resp.revision, header))
    if resp.prev_kv is not None:
        out.prev_kv.CopyFrom(kv_to_pb(resp.prev_kv))
    return out


def _delete_response_to_pb(
    resp: t.DeleteRangeResponse, header: rpc_pb2.ResponseHeader | None
) -> rpc_pb2.DeleteRangeResponse:
    return rpc_pb2.DeleteRangeResponse(
        header=_header(resp.revision, header),
        deleted=resp.deleted,
        prev_kvs=[kv_to_pb(kv) for kv in resp.prev_kvs],
    )


def _txn_response_to_pb(
    resp: t.TxnResponse, header: rpc_pb2.ResponseHeader | None
) -> rpc_pb2.TxnResponse:
    # Nested responses carry only their revision; IDs and term belong to the top-level header.
    return rpc_pb2.TxnResponse(
        header=_header(resp.revision, header),
        succeeded=resp.succeeded,
        responses=[response_op_to_pb(r) for r in resp.responses],
    )


def response_to_pb(resp: t.Response, header: rpc_pb2.ResponseHeader | None = None) -> _PbResponse:
    """A kvstore response as its RPC's response; `header` supplies the server's IDs and term."""
    if isinstance(resp, t.RangeResponse):
        return _range_response_to_pb(resp, header)
    if isinstance(resp, t.PutResponse):
        return _put_response_to_pb(resp, header)
    if isinstance(resp, t.DeleteRangeResponse):
        return _delete_response_to_pb(resp, header)
    if isinstance(resp, t.TxnResponse):
        return _txn_response_to_pb(resp, header)
    h = _header(resp.revision, header)
    if isinstance(resp, t.CompactionResponse):
        return rpc_pb2.CompactionResponse(header=h)
    if isinstance(resp, t.LeaseGrantResponse):
        return rpc_pb2.LeaseGrantResponse(header=h, ID=resp.id, TTL=resp.ttl)
    if isinstance(resp, t.LeaseRevokeResponse):
        return rpc_pb2.LeaseRevokeResponse(header=h)
    raise ValueError(f"no RPC response for {type(resp).__name__}")


def response_op_from_pb(pb: rpc_pb2.ResponseOp) -> t.ResponseOp:
    which = pb.WhichOneof("response")
    if which is None:
        raise ValueError("ResponseOp carries no response")
    inner = response_from_pb(getattr(pb, which))
    if not isinstance(inner, t.RangeResponse | t.PutResponse | t.DeleteRangeResponse | t.TxnResponse):
        raise ValueError(f"{which} is not a txn response")
    return inner


def response_from_pb(pb: _PbResponse) -> t.Response:
    revision = pb.header.revision
    if isinstance(pb, rpc_pb2.RangeResponse):
        return t.RangeResponse(
            kvs=tuple(kv_from_pb(kv) for kv in pb.kvs),
            more=pb.more,
            count=pb.count,
            revision=revision,
        )
    if isinstance(pb, rpc_pb2.PutResponse):
        return t.PutResponse(
            prev_kv=kv_from_pb(pb.prev_kv) if pb.HasField("prev_kv") else None, revision=revision
        )
    if isinstance(pb, rpc_pb2.DeleteRangeResponse):
        return t.DeleteRangeResponse(
            deleted=pb.deleted, prev_kvs=tuple(kv_from_pb(kv) for kv in pb.prev_kvs), revision=revision
        )
    if isinstance(pb, rpc_pb2.TxnResponse):
        return t.TxnResponse(
            succeeded=pb.succeeded,
            responses=tuple(response_op_from_pb(r) for r in pb.responses),
            revision=revision,
        )
    if isinstance(pb, rpc_pb2.CompactionResponse):
        return t.CompactionResponse(revision=revision)
    if isinstance(pb, rpc_pb2.LeaseGrantResponse):
        return t.LeaseGrantResponse(id=pb.ID, ttl=pb.TTL, revision=revision)
    return t.LeaseRevokeResponse(revision=revision)
