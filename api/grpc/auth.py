"""etcdserverpb.Auth for a server whose authentication is disabled (and cannot be enabled).

What etcd answers with auth off and no users (auth/store.go): Authenticate fails with
"authentication is not enabled"; AuthEnable fails with "root user does not exist" (there is
no root user to enable it with); AuthDisable succeeds (a no-op); AuthStatus says disabled;
the list calls return empty lists; the get/delete/grant/revoke calls on a user or role
fail with "user name not found" / "role name not found". Adding users or roles would need
replicated auth state, which kvstore does not have: those answer UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any

from api.errors import (
    AuthNotEnabledError,
    NotSupportedError,
    RoleNotFoundError,
    RootUserNotExistError,
    UserNotFoundError,
)
from api.grpc._common import ServiceLimits, header_pb, unary_rpc
from api.proto import rpc_pb2, rpc_pb2_grpc
from api.service.backend import Backend

__all__ = ["AuthServicer"]

_AUTH_UNSUPPORTED = "etcdserver: authentication is not supported by this server"


class AuthServicer(rpc_pb2_grpc.AuthServicer):
    SERVICE = "etcdserverpb.Auth"

    def __init__(self, backend: Backend, limits: ServiceLimits) -> None:
        self.backend = backend
        self.limits = limits

    @unary_rpc
    async def AuthEnable(self, request: Any, context: Any) -> Any:
        raise RootUserNotExistError()

    @unary_rpc
    async def AuthDisable(self, request: Any, context: Any) -> Any:
        return rpc_pb2.AuthDisableResponse(header=header_pb(self.backend))

    @unary_rpc
    async def AuthStatus(self, request: Any, context: Any) -> Any:
        return rpc_pb2.AuthStatusResponse(header=header_pb(self.backend), enabled=False)

    @unary_rpc
    async def Authenticate(self, request: Any, context: Any) -> Any:
        raise AuthNotEnabledError()

    @unary_rpc
    async def UserAdd(self, request: Any, context: Any) -> Any:
        raise NotSupportedError(_AUTH_UNSUPPORTED)

    @unary_rpc
    async def RoleAdd(self, request: Any, context: Any) -> Any:
        raise NotSupportedError(_AUTH_UNSUPPORTED)

    @unary_rpc
    async def UserList(self, request: Any, context: Any) -> Any:
        return rpc_pb2.AuthUserListResponse(header=header_pb(self.backend))

    @unary_rpc
    async def RoleList(self, request: Any, context: Any) -> Any:
        return rpc_pb2.AuthRoleListResponse(header=header_pb(self.backend))

    @unary_rpc
    async def UserGet(self, request: Any, context: Any) -> Any:
        raise UserNotFoundError()

    @unary_rpc
    async def UserDelete(self, request: Any, context: Any) -> Any:
        raise UserNotFoundError()

    @unary_rpc
    async def UserChangePassword(self, request: Any, context: Any) -> Any:
        raise UserNotFoundError()

    @unary_rpc
    async def UserGrantRole(self, request: Any, context: Any) -> Any:
        raise UserNotFoundError()

    @unary_rpc
    async def UserRevokeRole(self, request: Any, context: Any) -> Any:
        raise UserNotFoundError()

    @unary_rpc
    async def RoleGet(self, request: Any, context: Any) -> Any:
        raise RoleNotFoundError()

    @unary_rpc
    async def RoleDelete(self, request: Any, context: Any) -> Any:
        raise RoleNotFoundError()

    @unary_rpc
    async def RoleGrantPermission(self, request: Any, context: Any) -> Any:
        raise RoleNotFoundError()

    @unary_rpc
    async def RoleRevokePermission(self, request: Any, context: Any) -> Any:
        raise RoleNotFoundError()
