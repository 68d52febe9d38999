"""Calls a follower makes to the leader's client URL on a client's behalf.

Only the leader counts lease TTLs and knows how far a learner got, so a follower asks it
(etcd's followers do the same). The leader's answer, error code and message included, goes
back to the client unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import grpc

from api.proto import rpc_pb2, rpc_pb2_grpc
from api.service.backend import NodeError, RequestTimeoutError
from kvstore.types import LeaseTimeToLiveResponse


class LeaderClient:
    """`leader_url()` gives the leader's first client URL or raises (no leader, not yet
    published); one gRPC channel is kept per URL."""

    def __init__(self, leader_url: Callable[[], str], timeout_s: Callable[[], float]) -> None:
        self._leader_url = leader_url
        self._timeout_s = timeout_s
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self) -> grpc.aio.Channel:
        url = self._leader_url()
        channel = self._channels.get(url)
        if channel is None:
            channel = grpc.aio.insecure_channel(listen_target(url))
            self._channels[url] = channel
        return channel

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def member_promote(self, member_id: int) -> None:
        stub = rpc_pb2_grpc.ClusterStub(self._channel())
        try:
            await stub.MemberPromote(rpc_pb2.MemberPromoteRequest(ID=member_id), timeout=self._timeout_s())
        except grpc.aio.AioRpcError as exc:
            raise forwarded_error(exc) from None

    async def lease_keep_alive(self, lease_id: int) -> int:
        stub = rpc_pb2_grpc.LeaseStub(self._channel())
        call = stub.LeaseKeepAlive(timeout=self._timeout_s())
        try:
            await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
            resp = await call.read()
            await call.done_writing()
        except grpc.aio.AioRpcError as exc:
            raise forwarded_error(exc) from None
        finally:
            call.cancel()
        if resp is grpc.aio.EOF:
            raise RequestTimeoutError()
        return int(resp.TTL)

    async def lease_time_to_live(self, lease_id: int, *, keys: bool) -> LeaseTimeToLiveResponse:
        stub = rpc_pb2_grpc.LeaseStub(self._channel())
        try:
            resp = await stub.LeaseTimeToLive(
                rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys), timeout=self._timeout_s()
            )
        except grpc.aio.AioRpcError as exc:
            raise forwarded_error(exc) from None
        return LeaseTimeToLiveResponse(
            id=resp.ID, ttl=resp.TTL, granted_ttl=resp.grantedTTL, keys=tuple(resp.keys),
            revision=resp.header.revision,
        )


def listen_target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def forwarded_error(exc: grpc.aio.AioRpcError) -> NodeError:
    """What the leader answered, with the same code and message."""
    error = NodeError(exc.details() or "etcdserver: request timed out")
    error.grpc_code = exc.code().name
    return error
