"""etcdserverpb.Cluster: MemberList from the backend; membership changes answered as etcd
answers what this member cannot do yet.

Cluster responses carry a header without a revision (etcd's ClusterServer fills only
cluster_id, member_id and raft_term; `etcdctl -w json member list` shows no revision).

Until the cluster issue lands, MemberAdd/Update/Promote/Remove do not change membership:
an ID that is not a member gets etcd's "member not found", promoting a voter gets
"can only promote a learner member", and anything else UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any

from api.errors import MemberNotLearnerError, NotSupportedError
from api.grpc._common import ServiceLimits, unary_rpc
from api.proto import rpc_pb2, rpc_pb2_grpc
from api.service.backend import Backend, MemberInfo, MemberNotFoundError

__all__ = ["ClusterServicer", "member_pb"]

_RECONFIG_UNSUPPORTED = "etcdserver: membership reconfiguration is not supported yet"


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

    def _member(self, member_id: int) -> MemberInfo:
        for m in self.backend.members():
            if m.id == member_id:
                return m
        raise MemberNotFoundError()

    @unary_rpc
    async def MemberList(self, request: rpc_pb2.MemberListRequest, context: Any) -> Any:
        return rpc_pb2.MemberListResponse(
            header=self._header(), members=[member_pb(m) for m in self.backend.members()]
        )

    @unary_rpc
    async def MemberAdd(self, request: rpc_pb2.MemberAddRequest, context: Any) -> Any:
        raise NotSupportedError(_RECONFIG_UNSUPPORTED)

    @unary_rpc
    async def MemberRemove(self, request: rpc_pb2.MemberRemoveRequest, context: Any) -> Any:
        self._member(request.ID)
        raise NotSupportedError(_RECONFIG_UNSUPPORTED)

    @unary_rpc
    async def MemberUpdate(self, request: rpc_pb2.MemberUpdateRequest, context: Any) -> Any:
        self._member(request.ID)
        raise NotSupportedError(_RECONFIG_UNSUPPORTED)

    @unary_rpc
    async def MemberPromote(self, request: rpc_pb2.MemberPromoteRequest, context: Any) -> Any:
        if not self._member(request.ID).is_learner:
            raise MemberNotLearnerError()
        raise NotSupportedError(_RECONFIG_UNSUPPORTED)
