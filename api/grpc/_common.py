"""What every servicer shares: limits, headers, request checks and the error/metrics wrapper.

A servicer method is written as plain `async def` (or an async generator for a stream) and
wrapped by `unary_rpc` or `stream_rpc`. The wrapper

1. counts `grpc_server_started_total` and, at the end, `grpc_server_handled_total` with
   the status code (the go-grpc-prometheus names etcd exports);
2. honours the `hasleader=true` metadata that clientv3's WithRequireLeader sends: with no
   leader the call fails at once with UNAVAILABLE "etcdserver: no leader" (etcd's
   interceptor), instead of waiting for a proposal to time out;
3. maps any exception through `api.errors.to_status` and aborts the call with etcd's code
   and message. Cancellation by the client propagates untouched (it is counted Canceled).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc

from api.errors import RequestTooLargeApiError, to_status
from api.proto import rpc_pb2
from api.server.metrics import METRICS
from api.service.backend import Backend, LearnerNotSupportedError, NoLeaderError

__all__ = [
    "ServiceLimits",
    "check_request_size",
    "header_pb",
    "require_leader",
    "stream_rpc",
    "unary_rpc",
]

DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """The request limits and timers the servicers enforce (etcd's flag defaults)."""

    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_txn_ops: int = 128
    watch_progress_notify_interval_s: float = 600.0
    # How often an open watch stream with hasleader=true re-checks that a leader exists.
    leader_check_interval_s: float = 1.0

    @classmethod
    def from_config(cls, config: Any) -> ServiceLimits:
        """From an api.server.config.ServerConfig (duck-typed to keep this module light)."""
        return cls(
            max_request_bytes=int(config.max_request_bytes),
            max_txn_ops=int(config.max_txn_ops),
            watch_progress_notify_interval_s=float(config.watch_progress_notify_interval_s),
        )


class _Servicer(Protocol):
    SERVICE: str
    backend: Backend


def header_pb(backend: Backend, revision: int | None = None) -> rpc_pb2.ResponseHeader:
    """The response header: the member's IDs and term, the given or current revision."""
    h = backend.header()
    return rpc_pb2.ResponseHeader(
        cluster_id=h.cluster_id,
        member_id=h.member_id,
        revision=h.revision if revision is None else revision,
        raft_term=h.raft_term,
    )


def check_request_size(request: Any, limits: ServiceLimits) -> None:
    """etcd refuses a proposal whose encoding exceeds --max-request-bytes (before raft)."""
    if request.ByteSize() > limits.max_request_bytes:
        raise RequestTooLargeApiError()


# What a learner serves (etcd's learner rules): Status, and Range when serializable.
def reject_learner(backend: Backend, method: str, request: Any) -> None:
    is_learner = getattr(backend, "is_learner", None)
    if is_learner is None or not is_learner():
        return
    if method == "Status":
        return
    if method == "Range" and getattr(request, "serializable", False):
        return
    raise LearnerNotSupportedError()


def require_leader(backend: Backend, context: Any) -> bool:
    """True when the call carries hasleader=true; raises NoLeaderError if there is none."""
    metadata = context.invocation_metadata() or ()
    wants = any(k == "hasleader" and v == "true" for k, v in metadata)
    if wants and backend.status().leader == 0:
        raise NoLeaderError()
    return wants


def _code_label(code: grpc.StatusCode) -> str:
    # go-grpc-prometheus uses codes.Code.String(): "OK", "InvalidArgument", ...
    if code is grpc.StatusCode.OK:
        return "OK"
    return "".join(part.capitalize() for part in code.name.split("_"))


Req = TypeVar("Req")
Resp = TypeVar("Resp")
S = TypeVar("S", bound=_Servicer)


def unary_rpc(
    fn: Callable[[S, Req, Any], Awaitable[Resp]],
) -> Callable[[S, Req, Any], Awaitable[Resp]]:
    """Wrap a unary (or client-stream) method: leader check, error table, metrics."""
    method = fn.__name__

    @functools.wraps(fn)
    async def wrapper(self: S, request: Req, context: Any) -> Resp:
        service = self.SERVICE
        METRICS.grpc_started_total.labels("unary", service, method).inc()
        try:
            reject_learner(self.backend, method, request)
            require_leader(self.backend, context)
            response = await fn(self, request, context)
        except asyncio.CancelledError:
            METRICS.grpc_handled_total.labels("unary", service, method, "Canceled").inc()
            raise
        except Exception as exc:
            code, message = to_status(exc)
            METRICS.grpc_handled_total.labels("unary", service, method, _code_label(code)).inc()
            await context.abort(code, message)
            raise  # unreachable: abort raises; keeps type checkers honest
        METRICS.grpc_handled_total.labels("unary", service, method, "OK").inc()
        return response

    return wrapper


def stream_rpc(
    grpc_type: str,
) -> Callable[
    [Callable[[S, Req, Any], AsyncIterator[Resp]]], Callable[[S, Req, Any], AsyncIterator[Resp]]
]:
    """Wrap a server-stream ("server_stream") or bidi ("bidi_stream") async generator."""

    def decorate(
        fn: Callable[[S, Req, Any], AsyncIterator[Resp]],
    ) -> Callable[[S, Req, Any], AsyncIterator[Resp]]:
        method = fn.__name__

        @functools.wraps(fn)
        async def wrapper(self: S, request: Req, context: Any) -> AsyncIterator[Resp]:
            service = self.SERVICE
            METRICS.grpc_started_total.labels(grpc_type, service, method).inc()
            try:
                reject_learner(self.backend, method, None)
                require_leader(self.backend, context)
                async for response in fn(self, request, context):
                    yield response
            except asyncio.CancelledError:
                METRICS.grpc_handled_total.labels(grpc_type, service, method, "Canceled").inc()
                raise
            except Exception as exc:
                code, message = to_status(exc)
                METRICS.grpc_handled_total.labels(
                    grpc_type, service, method, _code_label(code)
                ).inc()
                await context.abort(code, message)
                raise
            METRICS.grpc_handled_total.labels(grpc_type, service, method, "OK").inc()

        return wrapper

    return decorate
