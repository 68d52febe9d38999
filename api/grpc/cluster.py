"""etcdserverpb.Cluster: member list and membership changes, each one call on the node.

Cluster responses carry a header without a revision (etcd's ClusterServer fills only
cluster_id, member_id and raft_term; `etcdctl -w json member list` shows no revision).
The node makes etcd's checks (peer URL taken, one learner, learner in sync, strict
reconfiguration) and raises its errors; see api/server/membership.py.
"""

from __future__ import annotations

from typing import Any

from api.errors import NotSupportedError
from api.grpc._common import ServiceLimits, unary_rpc
from api.proto import rpc_pb2, rpc_pb2_grpc
from api.service.backend import Backend, MemberInfo, MembershipBackend

__all__ = ["ClusterServicer", "member_pb"]



def member_pb(m: MemberInfo) -> rpc_pb2.Member:
    return rpc_pb2.Member(
        ID=m.id,
        name=m.name,
        peerURLs=list(m.peer_urls),
        clientURLs=list(m.client_urls),
        isLearner=m.is_learner,
    )


class ClusterServicer(rpc_pb2_grpc.ClusterServicer):
    SERVICE = "etcdserverpb.Cluster"

    def __init__(self, backend: Backend, limits: ServiceLimits) -> None:
        self.backend = backend
        self.limits = limits

    def _header(self) -> rpc_pb2.ResponseHeader:
        h = self.backend.header()
        return rpc_pb2.ResponseHeader(
            cluster_id=h.cluster_id, member_id=h.member_id, raft_term=h.raft_term
        )

    @unary_rpc
    async def MemberList(self, request: rpc_pb2.MemberListRequest, context: Any) -> Any:
        return rpc_pb2.MemberListResponse(
            header=self._header(), members=[member_pb(m) for m in self.backend.members()]
        )

    @unary_rpc
    async def MemberAdd(self, request: rpc_pb2.MemberAddRequest, context: Any) -> Any:
        added, members = await self._membership().member_add(
            list(request.peerURLs), is_learner=request.isLearner
        )
        return rpc_pb2.MemberAddResponse(
            header=self._header(), member=member_pb(added), members=[member_pb(m) for m in members]
        )

    @unary_rpc
    async def MemberRemove(self, request: rpc_pb2.MemberRemoveRequest, context: Any) -> Any:
        members = await self._membership().member_remove(request.ID)
        return rpc_pb2.MemberRemoveResponse(
            header=self._header(), members=[member_pb(m) for m in members]
        )

    @unary_rpc
    async def MemberUpdate(self, request: rpc_pb2.MemberUpdateRequest, context: Any) -> Any:
        members = await self._membership().member_update(request.ID, list(request.peerURLs))
        return rpc_pb2.MemberUpdateResponse(
            header=self._header(), members=[member_pb(m) for m in members]
        )

    @unary_rpc
    async def MemberPromote(self, request: rpc_pb2.MemberPromoteRequest, context: Any) -> Any:
        members = await self._membership().member_promote(request.ID)
        return rpc_pb2.MemberPromoteResponse(
            header=self._header(), members=[member_pb(m) for m in members]
        )

    def _membership(self) -> MembershipBackend:
        if not hasattr(self.backend, "member_add"):
            raise NotSupportedError("etcdserver: membership reconfiguration is not supported")
        return self.backend  # type: ignore[return-value]
