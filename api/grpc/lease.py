"""etcdserverpb.Lease: Grant, Revoke, KeepAlive (bidi stream), TimeToLive, Leases.

Grant and Revoke are replicated requests (kvstore applies them; TTL floor and the
"too large lease TTL" check live there). KeepAlive and TimeToLive are answered by the
leader's lessor through the backend: an unknown lease is not an error on the wire but
TTL 0 (keep-alive) or TTL -1 (time-to-live), exactly as etcd's LeaseServer answers; the
client library turns those into "requested lease not found" / "already expired".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from api.grpc._common import ServiceLimits, header_pb, stream_rpc, unary_rpc
from api.proto import rpc_pb2, rpc_pb2_grpc
from api.service.backend import Backend
from api.service.convert import response_to_pb
from kvstore.types import LeaseGrantRequest, LeaseRevokeRequest

__all__ = ["LeaseServicer"]


class LeaseServicer(rpc_pb2_grpc.LeaseServicer):
    SERVICE = "etcdserverpb.Lease"

    def __init__(self, backend: Backend, limits: ServiceLimits) -> None:
        self.backend = backend
        self.limits = limits

    @unary_rpc
    async def LeaseGrant(self, request: rpc_pb2.LeaseGrantRequest, context: Any) -> Any:
        result = await self.backend.propose(LeaseGrantRequest(ttl=request.TTL, id=request.ID))
        return response_to_pb(result.response, header_pb(self.backend))

    @unary_rpc
    async def LeaseRevoke(self, request: rpc_pb2.LeaseRevokeRequest, context: Any) -> Any:
        result = await self.backend.propose(LeaseRevokeRequest(id=request.ID))
        return response_to_pb(result.response, header_pb(self.backend))

    @stream_rpc("bidi_stream")
    async def LeaseKeepAlive(
        self, request_iterator: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest], context: Any
    ) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        # One answer per request, in order; a backend error (no leader, stopped) ends the
        # stream with that status, as etcd's keep-alive loop returns its error.
        async for request in request_iterator:
            ttl = await self.backend.lease_keep_alive(request.ID)
            yield rpc_pb2.LeaseKeepAliveResponse(
                header=header_pb(self.backend), ID=request.ID, TTL=max(ttl, 0)
            )

    @unary_rpc
    async def LeaseTimeToLive(self, request: rpc_pb2.LeaseTimeToLiveRequest, context: Any) -> Any:
        resp = await self.backend.lease_time_to_live(request.ID, keys=request.keys)
        return rpc_pb2.LeaseTimeToLiveResponse(
            header=header_pb(self.backend, resp.revision or None),
            ID=request.ID,
            TTL=resp.ttl,
            grantedTTL=resp.granted_ttl,
            keys=list(resp.keys),
        )

    @unary_rpc
    async def LeaseLeases(self, request: rpc_pb2.LeaseLeasesRequest, context: Any) -> Any:
        resp = await self.backend.lease_leases()
        return rpc_pb2.LeaseLeasesResponse(
            header=header_pb(self.backend, resp.revision or None),
            leases=[rpc_pb2.LeaseStatus(ID=lease_id) for lease_id in resp.leases],
        )
