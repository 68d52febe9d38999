"""Thin grpc.aio servicers for etcd's v3 API over the `api.service.backend.Backend` seam.

One module per etcd service (kv, watch, lease, cluster, maintenance, auth) plus the
standard grpc.health.v1 service; `_common` holds the limits, headers and the wrapper that
maps errors through `api.errors` and counts grpc_server_* metrics. The server that
registers them all with etcd's settings is `api.server.grpc_server.start_grpc_server`.
"""

from api.grpc._common import ServiceLimits
from api.grpc.auth import AuthServicer
from api.grpc.cluster import ClusterServicer
from api.grpc.health import HealthServicer
from api.grpc.kv import KVServicer
from api.grpc.lease import LeaseServicer
from api.grpc.maintenance import MaintenanceServicer
from api.grpc.watch import WatchServicer

__all__ = [
    "AuthServicer",
    "ClusterServicer",
    "HealthServicer",
    "KVServicer",
    "LeaseServicer",
    "MaintenanceServicer",
    "ServiceLimits",
    "WatchServicer",
]
