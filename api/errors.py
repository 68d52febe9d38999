"""One table from domain errors to gRPC status codes and etcd's exact messages.

clientv3 turns a gRPC status back into a typed error by matching the *description* string
(`rpctypes.errStringToError`), so the wire layer never invents text: every error that can
reach a client either carries etcd's message as `str(err)` and its status code name as
`grpc_code` (the kvstore error tree, `api.service.backend.NodeError` and `ApiError` below),
or is unexpected and answered as UNKNOWN with its message (and logged, since it is a bug).

    Exception
    |-- kvstore.errors.KvError           str() = etcd's message, grpc_code per class
    |-- api.service.backend.NodeError    str() = etcd's message, grpc_code per class
    `-- ApiError                         decided by the wire layer itself
        |-- RequestTooLargeApiError      INVALID_ARGUMENT    "etcdserver: request is too large"
        |-- AuthNotEnabledError          FAILED_PRECONDITION "etcdserver: authentication is not enabled"
        |-- RootUserNotExistError        FAILED_PRECONDITION "etcdserver: root user does not exist"
        |-- UserNotFoundError            FAILED_PRECONDITION "etcdserver: user name not found"
        |-- RoleNotFoundError            FAILED_PRECONDITION "etcdserver: role name not found"
        `-- NotSupportedError            UNIMPLEMENTED       (message given by the caller)

`to_status(exc)` is the table lookup; `rpc_error_status` is the same for a servicer that
must also count the outcome (api/grpc/_common.py wraps every method with it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

import grpc

from api.service.backend import NodeError
from kvstore.errors import KvError

__all__ = [
    "ApiError",
    "AuthNotEnabledError",
    "NotSupportedError",
    "RequestTooLargeApiError",
    "RoleNotFoundError",
    "RootUserNotExistError",
    "UserNotFoundError",
    "to_status",
]

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer decided by the wire layer; str() is etcd's message."""

    message: ClassVar[str] = "etcdserver: api error"
    grpc_code: ClassVar[str] = "UNKNOWN"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message if message is not None else self.message)


class RequestTooLargeApiError(ApiError):
    # The same text as kvstore's RequestTooLargeError: etcd uses one error for both the
    # proposal-size check and its key-size limits.
    message = "etcdserver: request is too large"
    grpc_code = "INVALID_ARGUMENT"


class AuthNotEnabledError(ApiError):
    message = "etcdserver: authentication is not enabled"
    grpc_code = "FAILED_PRECONDITION"


class RootUserNotExistError(ApiError):
    message = "etcdserver: root user does not exist"
    grpc_code = "FAILED_PRECONDITION"


class UserNotFoundError(ApiError):
    message = "etcdserver: user name not found"
    grpc_code = "FAILED_PRECONDITION"


class RoleNotFoundError(ApiError):
    message = "etcdserver: role name not found"
    grpc_code = "FAILED_PRECONDITION"


class NotSupportedError(ApiError):
    grpc_code = "UNIMPLEMENTED"


def _code(name: str) -> grpc.StatusCode:
    code = getattr(grpc.StatusCode, name, None)
    if not isinstance(code, grpc.StatusCode):
        # A misspelt grpc_code is a programmer error, but the client still deserves an answer.
        log.error("unknown grpc_code %r; answering UNKNOWN", name)
        return grpc.StatusCode.UNKNOWN
    return code


def to_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and description etcd would answer for `exc`."""
    if isinstance(exc, KvError | NodeError | ApiError):
        return _code(exc.grpc_code), str(exc)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        # A deadline the server set for itself (etcd: ErrTimeout on a proposal wait).
        return grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out"
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED, "context canceled"
    log.error("unexpected error in a gRPC handler", exc_info=exc)
    return grpc.StatusCode.UNKNOWN, str(exc) or type(exc).__name__
