"""etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact.

Each method follows etcd's v3rpc order: validate the request as `checkRangeRequest` /
`checkPutRequest` / `checkTxnRequest` do (kvstore.txn.check_request, the same pure function
apply runs again), refuse a request whose encoding exceeds --max-request-bytes, then read
(Range, read-only Txn) or propose through Raft and translate the result back. The header
revision comes from the result (the revision the request saw or produced); IDs and term
from the backend.
"""

from __future__ import annotations

from typing import Any

from api.grpc._common import ServiceLimits, check_request_size, header_pb, unary_rpc
from api.proto import rpc_pb2, rpc_pb2_grpc
from api.service.backend import Backend
from api.service.convert import request_from_pb, response_to_pb
from kvstore.txn import check_request
from kvstore.types import RangeRequest, Request, Response

__all__ = ["KVServicer"]


class KVServicer(rpc_pb2_grpc.KVServicer):
    SERVICE = "etcdserverpb.KV"

    def __init__(self, backend: Backend, limits: ServiceLimits) -> None:
        self.backend = backend
        self.limits = limits

    def _decode(self, request: Any) -> Request:
        req = request_from_pb(request)
        check_request(req, max_txn_ops=self.limits.max_txn_ops)
        check_request_size(request, self.limits)
        return req

    def _encode(self, response: Response) -> Any:
        return response_to_pb(response, header_pb(self.backend))

    @unary_rpc
    async def Range(self, request: rpc_pb2.RangeRequest, context: Any) -> Any:
        req = self._decode(request)
        if not isinstance(req, RangeRequest):  # pragma: no cover - convert maps Range to Range
            raise TypeError("RangeRequest did not decode to a range")
        return self._encode(await self.backend.range(req))

    @unary_rpc
    async def Put(self, request: rpc_pb2.PutRequest, context: Any) -> Any:
        result = await self.backend.propose(self._decode(request))
        return self._encode(result.response)

    @unary_rpc
    async def DeleteRange(self, request: rpc_pb2.DeleteRangeRequest, context: Any) -> Any:
        result = await self.backend.propose(self._decode(request))
        return self._encode(result.response)

    @unary_rpc
    async def Txn(self, request: rpc_pb2.TxnRequest, context: Any) -> Any:
        # A read-only txn is also handed to propose: the backend serves it as a
        # linearizable read without a raft entry (Backend.propose's contract).
        result = await self.backend.propose(self._decode(request))
        return self._encode(result.response)

    @unary_rpc
    async def Compact(self, request: rpc_pb2.CompactionRequest, context: Any) -> Any:
        result = await self.backend.propose(self._decode(request))
        return self._encode(result.response)
