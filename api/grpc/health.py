"""grpc.health.v1.Health without the grpcio-health-checking package.

The two messages are tiny (`HealthCheckRequest{string service = 1}`,
`HealthCheckResponse{ServingStatus status = 1}`), so their descriptors are built here in a
private descriptor pool: no .proto file, no generated code, and no clash with the real
package's descriptors if another library imports them into the default pool. The wire
bytes are those of the standard service, so any gRPC health client works.

Like etcd, the server reports SERVING for the overall service "" and answers NOT_FOUND
for any other service name.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["HEALTH_SERVICE", "HealthServicer", "health_handler"]

HEALTH_SERVICE = "grpc.health.v1.Health"
SERVING = 1


def _build_messages() -> tuple[type[Any], type[Any]]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="kvstore/grpc_health_v1.proto", package="grpc.health.v1", syntax="proto3"
    )
    req = fdp.message_type.add(name="HealthCheckRequest")
    req.field.add(
        name="service",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    resp = fdp.message_type.add(name="HealthCheckResponse")
    enum = resp.enum_type.add(name="ServingStatus")
    for number, name in enumerate(("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")):
        enum.value.add(name=name, number=number)
    resp.field.add(
        name="status",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
        type_name=".grpc.health.v1.HealthCheckResponse.ServingStatus",
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    file_desc = pool.FindFileByName(fdp.name)
    request_cls = message_factory.GetMessageClass(
        file_desc.message_types_by_name["HealthCheckRequest"]
    )
    response_cls = message_factory.GetMessageClass(
        file_desc.message_types_by_name["HealthCheckResponse"]
    )
    return request_cls, response_cls


HealthCheckRequest, HealthCheckResponse = _build_messages()


class HealthServicer:
    """Check (unary) and Watch (server stream: the current status, then held open)."""

    def __init__(self) -> None:
        self._status: dict[str, int] = {"": SERVING}

    def set_status(self, service: str, status: int) -> None:
        self._status[service] = status

    async def Check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return HealthCheckResponse(status=status)

    async def Watch(
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        yield HealthCheckResponse(status=self._status.get(request.service, 3))
        # The status never changes in this server; hold the stream until the client leaves.
        await asyncio.Event().wait()


def health_handler(servicer: HealthServicer) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        HEALTH_SERVICE,
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                servicer.Check,
                request_deserializer=HealthCheckRequest.FromString,
                response_serializer=HealthCheckResponse.SerializeToString,
            ),
            "Watch": grpc.unary_stream_rpc_method_handler(
                servicer.Watch,
                request_deserializer=HealthCheckRequest.FromString,
                response_serializer=HealthCheckResponse.SerializeToString,
            ),
        },
    )
