"""Endpoints, channels, failover and the retry rule for unary calls.

Theory of operation. The client keeps one grpc.aio channel per endpoint, created lazily, and
one *current* endpoint. A unary call runs on the current endpoint; when it fails with an
UNAVAILABLE error that the retry rule accepts, the connection moves to the next endpoint
(round robin) and tries again, until the call's deadline or `attempts_max` attempts.

The retry rule (`may_retry`) is the client's safety argument:

* Reads (Range, a txn whose ops are all reads, Status, MemberList, LeaseTimeToLive, ...) are
  retried on any UnavailableError: re-running a read changes nothing.
* Writes are retried only when the request provably never reached the apply path:
  - ConnectionFailedError: gRPC could not connect ("failed to connect to all addresses",
    "connection refused"): the request bytes were never sent.
  - NoLeaderError: every call carries the `hasleader=true` metadata (clientv3's
    WithRequireLeader), and etcd's interceptor answers "etcdserver: no leader" *before*
    handing the request to the server, so nothing was proposed.
  Any other failure of a write (a timeout, "leader changed", a connection reset after the
  request was sent) is ambiguous: the write may or may not have been applied, so it is
  raised to the caller, never repeated.
* The client's own deadline (DeadlineExceededError) is never retried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio

from api.client._errors import (
    ConnectionFailedError,
    DeadlineExceededError,
    EtcdError,
    NoLeaderError,
    UnavailableError,
    from_rpc_error,
)
from api.proto import rpc_pb2_grpc

__all__ = ["Connection", "TLSConfig", "may_retry", "parse_endpoint"]

T = TypeVar("T")

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.max_send_message_length", 2**31 - 1),
    # Fail fast on a dead endpoint so failover happens well within a call's deadline.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # HTTP/2 pings notice a dead peer under a long-lived stream (a watch on a frozen or
    # partitioned server). 10 s stays above etcd's --grpc-keepalive-min-time (5 s), which
    # would otherwise answer GOAWAY too_many_pings.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
]
REQUIRE_LEADER = (("hasleader", "true"),)
RETRY_BACKOFF_S = 0.05
RETRY_BACKOFF_MAX_S = 0.5


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """PEM file paths; `ca_file` alone gives server-verified TLS, cert+key add a client cert."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(p: str | None) -> bytes | None:
            return Path(p).read_bytes() if p else None

        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file), private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


def parse_endpoint(endpoint: str) -> tuple[str, bool]:
    """("host:port", tls) from "host:port", "http://host:port" or "https://host:port"."""
    tls = False
    for scheme, is_tls in (("http://", False), ("https://", True), ("unix://", False)):
        if endpoint.startswith(scheme):
            if scheme == "unix://":
                return endpoint, False
            endpoint, tls = endpoint[len(scheme):], is_tls
            break
    endpoint = endpoint.rstrip("/")
    if not endpoint or ":" not in endpoint:
        raise ValueError(f"endpoint needs host:port, got {endpoint!r}")
    return endpoint, tls


def may_retry(err: EtcdError, *, read_only: bool) -> bool:
    """The retry rule of the module docstring."""
    if read_only:
        return isinstance(err, UnavailableError)
    return isinstance(err, ConnectionFailedError | NoLeaderError)


class Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.kv = rpc_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
        self.watch = rpc_pb2_grpc.WatchStub(channel)  # type: ignore[no-untyped-call]
        self.lease = rpc_pb2_grpc.LeaseStub(channel)  # type: ignore[no-untyped-call]
        self.cluster = rpc_pb2_grpc.ClusterStub(channel)  # type: ignore[no-untyped-call]
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(channel)  # type: ignore[no-untyped-call]


class Connection:
    """Channels to every endpoint, the current one, and `call` with failover."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        tls: TLSConfig | None,
        timeout_s: float,
        attempts_max: int,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        self.endpoints = [parse_endpoint(e) for e in endpoints]
        self.tls = tls
        self.timeout_s = timeout_s
        self.attempts_max = attempts_max
        self.current = 0
        self._channels: dict[int, tuple[grpc.aio.Channel, Stubs]] = {}

    def _open(self, i: int) -> tuple[grpc.aio.Channel, Stubs]:
        if i not in self._channels:
            target, tls = self.endpoints[i]
            if tls or self.tls is not None:
                creds = (self.tls or TLSConfig()).credentials()
                ch = grpc.aio.secure_channel(target, creds, options=_CHANNEL_OPTIONS)
            else:
                ch = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
            self._channels[i] = (ch, Stubs(ch))
        return self._channels[i]

    def stubs(self, endpoint: str | None = None) -> Stubs:
        """Stubs of the current endpoint, or of a named one (for per-member maintenance)."""
        if endpoint is None:
            return self._open(self.current)[1]
        target, _ = parse_endpoint(endpoint)
        for i, (t, _tls) in enumerate(self.endpoints):
            if t == target:
                return self._open(i)[1]
        self.endpoints.append(parse_endpoint(endpoint))
        return self._open(len(self.endpoints) - 1)[1]

    def failover(self, from_index: int) -> None:
        """Move to the next endpoint, unless another task already moved away from `from_index`."""
        if self.current == from_index:
            self.current = (from_index + 1) % len(self.endpoints)

    async def call(
        self,
        fn: Callable[[Stubs], Callable[..., Awaitable[T]]],
        request: Any,
        *,
        read_only: bool,
        timeout_s: float | None = None,
        endpoint: str | None = None,
        require_leader: bool = True,
    ) -> T:
        """Run one unary RPC with the retry rule; raises a typed EtcdError."""
        budget = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        metadata = REQUIRE_LEADER if require_leader else ()
        attempt = 0
        while True:
            attempt += 1
            index = self.current
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceededError("DEADLINE_EXCEEDED", "context deadline exceeded")
            try:
                return await fn(self.stubs(endpoint))(request, timeout=remaining, metadata=metadata)
            except grpc.RpcError as e:
                err = from_rpc_error(e)
            # A pinned endpoint (maintenance of one member) has nowhere to fail over to.
            if endpoint is not None or attempt >= self.attempts_max:
                raise err
            if not may_retry(err, read_only=read_only):
                raise err
            self.failover(index)
            # Exponential backoff, capped: a restarting member (and grpc's own reconnect
            # backoff on its channel) needs a second or two, not a tight loop.
            pause = min(RETRY_BACKOFF_S * 2 ** (attempt - 1), RETRY_BACKOFF_MAX_S)
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))

    async def close(self) -> None:
        channels = list(self._channels.values())
        self._channels.clear()
        for ch, _ in channels:
            await ch.close()
