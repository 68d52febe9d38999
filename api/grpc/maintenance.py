"""etcdserverpb.Maintenance: Status, Alarm, Defragment, Hash, HashKV, Snapshot, MoveLeader.

Snapshot follows etcd's maintenanceServer.Snapshot: the store copy in chunks of at most
32 KiB, each message's `remaining_bytes` = total size - bytes sent so far (so the last data
chunk says 0; the total is the backend's size hint, taken before the copy starts, and
one chunk of lookahead keeps the last data message at exactly 0), then one more message whose blob is the SHA-256 of all the data, which
`etcdctl snapshot restore` checks. Like etcd 3.4, snapshot messages carry no header.
Downgrade (3.5) is left to the generated base class (UNIMPLEMENTED), as in etcd 3.4.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

from api.grpc._common import ServiceLimits, header_pb, stream_rpc, unary_rpc
from api.proto import rpc_pb2, rpc_pb2_grpc
from api.service.backend import Backend

__all__ = ["SNAPSHOT_CHUNK_BYTES", "MaintenanceServicer"]

SNAPSHOT_CHUNK_BYTES = 32 * 1024


class MaintenanceServicer(rpc_pb2_grpc.MaintenanceServicer):
    SERVICE = "etcdserverpb.Maintenance"

    def __init__(self, backend: Backend, limits: ServiceLimits) -> None:
        self.backend = backend
        self.limits = limits

    @unary_rpc
    async def Status(self, request: rpc_pb2.StatusRequest, context: Any) -> Any:
        s = self.backend.status()
        return rpc_pb2.StatusResponse(
            header=header_pb(self.backend),
            version=s.version,
            dbSize=s.db_size,
            leader=s.leader,
            raftIndex=s.raft_index,
            raftTerm=s.raft_term,
            raftAppliedIndex=s.raft_applied_index,
            errors=list(s.errors),
            dbSizeInUse=s.db_size_in_use,
            isLearner=s.is_learner,
        )

    @unary_rpc
    async def Alarm(self, request: rpc_pb2.AlarmRequest, context: Any) -> Any:
        alarms = await self.backend.alarm(request.action, request.memberID, request.alarm)
        members = [rpc_pb2.AlarmMember(memberID=a.member_id, alarm=a.alarm) for a in alarms]  # type: ignore[arg-type]
        # No header: etcd returns the applier's AlarmResponse as is (`-w json alarm list`
        # prints `{}` with no alarm, `{"alarms":[...]}` with one).
        return rpc_pb2.AlarmResponse(alarms=members)

    @unary_rpc
    async def Defragment(self, request: rpc_pb2.DefragmentRequest, context: Any) -> Any:
        await self.backend.defragment()
        return rpc_pb2.DefragmentResponse(header=header_pb(self.backend))

    @unary_rpc
    async def Hash(self, request: rpc_pb2.HashRequest, context: Any) -> Any:
        value = await self.backend.hash()
        return rpc_pb2.HashResponse(header=header_pb(self.backend), hash=value & 0xFFFFFFFF)

    @unary_rpc
    async def HashKV(self, request: rpc_pb2.HashKVRequest, context: Any) -> Any:
        resp = await self.backend.hash_kv(request.revision)
        return rpc_pb2.HashKVResponse(
            header=header_pb(self.backend, resp.revision),
            hash=resp.hash & 0xFFFFFFFF,
            compact_revision=resp.compact_revision,
        )

    @stream_rpc("server_stream")
    async def Snapshot(
        self, request: rpc_pb2.SnapshotRequest, context: Any
    ) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
        total = self.backend.snapshot_size_hint()
        digest = hashlib.sha256()
        sent = 0
        chunks = aiter(self.backend.snapshot_chunks(SNAPSHOT_CHUNK_BYTES))
        try:
            chunk = await anext(chunks, None)
            while chunk is not None:
                # One chunk of lookahead: the last data message says 0 as in etcd even when
                # the hint is off, and no earlier one says 0 (or less than is still coming).
                following = await anext(chunks, None)
                sent += len(chunk)
                digest.update(chunk)
                remaining = 0 if following is None else max(total - sent, len(following))
                yield rpc_pb2.SnapshotResponse(remaining_bytes=remaining, blob=chunk)
                chunk = following
        finally:
            # A client that leaves mid-stream must not leave the backend's copy behind.
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        yield rpc_pb2.SnapshotResponse(remaining_bytes=0, blob=digest.digest())

    @unary_rpc
    async def MoveLeader(self, request: rpc_pb2.MoveLeaderRequest, context: Any) -> Any:
        await self.backend.move_leader(request.targetID)
        return rpc_pb2.MoveLeaderResponse(header=header_pb(self.backend))
