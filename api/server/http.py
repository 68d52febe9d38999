"""The small HTTP/1.1 server on --listen-metrics-urls: /health, /version, /metrics.

Plain asyncio streams: one request per connection (`Connection: close`), GET or HEAD only,
a bounded request head (8 KiB) and a read timeout, so a slow or hostile client costs one
task for a few seconds at most. No routing library: three paths.

* GET /health -> 200 `{"health":"true"}`, or 503 `{"health":"false","reason":"..."}` (the
  etcd 3.5 shape) when an alarm is active (`?exclude=NOSPACE` ignores that alarm), when
  the member has no leader, or when a linearizable read of key "health" fails in time.
* GET /version -> `{"etcdserver":"<version>","etcdcluster":"<major.minor>.0"}` with the
  version the backend's status reports.
* GET /metrics -> the Prometheus text format of the registry; the leader and db-size
  gauges are refreshed from the backend first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from api.server.metrics import DEFAULT_REGISTRY, METRICS, EtcdMetrics, Registry
from api.service.backend import Backend
from kvstore.types import RangeRequest

__all__ = ["HttpServer", "health_check", "http1_protocol_factory", "start_http_server"]

log = logging.getLogger(__name__)

HEAD_BYTES_MAX = 8 * 1024
READ_TIMEOUT_S = 5.0
HEALTH_READ_TIMEOUT_S = 2.0
ALARM_NAMES = {1: "NOSPACE", 2: "CORRUPT"}
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}


async def health_check(backend: Backend, *, exclude: Sequence[str] = ()) -> tuple[bool, str]:
    """(healthy, reason) as etcd's /health decides it; reason is "" when healthy."""
    alarms = await backend.alarm(0, 0, 0)  # AlarmRequest GET
    for a in alarms:
        name = ALARM_NAMES.get(a.alarm, str(a.alarm))
        if name not in exclude:
            return False, f"ALARM {name}"
    if backend.status().leader == 0:
        return False, "RAFT NO LEADER"
    try:
        await asyncio.wait_for(backend.range(RangeRequest(key=b"health")), HEALTH_READ_TIMEOUT_S)
    except Exception as exc:  # any failure of the quorum read makes the member unhealthy
        log.warning("health check read failed: %s", exc)
        return False, "QGET ERROR"
    return True, ""


def _version_body(version: str) -> bytes:
    major_minor = ".".join(version.split(".")[:2])
    return json.dumps(
        {"etcdserver": version, "etcdcluster": f"{major_minor}.0"}, separators=(",", ":")
    ).encode()


@dataclass
class HttpServer:
    servers: list[asyncio.Server]

    @property
    def ports(self) -> list[int]:
        return [s.sockets[0].getsockname()[1] for s in self.servers if s.sockets]

    def close(self) -> None:
        """Stop accepting connections (asyncio.Server's shape: then await wait_closed())."""
        for s in self.servers:
            s.close()

    async def wait_closed(self) -> None:
        for s in self.servers:
            with contextlib.suppress(Exception):
                await s.wait_closed()


class _Handler:
    def __init__(self, backend: Backend, registry: Registry, metrics: EtcdMetrics) -> None:
        self.backend = backend
        self.registry = registry
        self.metrics = metrics

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            status, ctype, body = await self._route(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, ctype, body = 400, "text/plain", b"bad request\n"
        except ConnectionError:
            writer.close()
            return
        except Exception:
            log.exception("http handler failed")
            status, ctype, body = 503, "text/plain", b"internal error\n"
        method = head.split(b" ", 1)[0]
        out = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        if method != b"HEAD":
            out += body
        try:
            writer.write(out)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _route(self, head: bytes) -> tuple[int, str, bytes]:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return 400, "text/plain", b"bad request\n"
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        url = urlsplit(target)
        if url.path == "/health":
            exclude = parse_qs(url.query).get("exclude", [])
            ok, reason = await health_check(self.backend, exclude=exclude)
            doc = {"health": "true"} if ok else {"health": "false", "reason": reason}
            return (200 if ok else 503), "application/json", json.dumps(
                doc, separators=(",", ":")
            ).encode()
        if url.path == "/version":
            return 200, "application/json", _version_body(self.backend.status().version)
        if url.path == "/metrics":
            self._refresh()
            return 200, "text/plain; version=0.0.4; charset=utf-8", self.registry.render().encode()
        return 404, "text/plain", b"404 page not found\n"

    def _refresh(self) -> None:
        s = self.backend.status()
        self.metrics.has_leader.set(1 if s.leader else 0)
        self.metrics.db_total_size_in_bytes.set(s.db_size)
        self.metrics.db_total_size_in_use_in_bytes.set(s.db_size_in_use)


def http1_protocol_factory(
    backend: Backend, *, registry: Registry = DEFAULT_REGISTRY, metrics: EtcdMetrics = METRICS
) -> Callable[[], asyncio.Protocol]:
    """The same three paths for HTTP/1.1 connections the client port's HTTP/2 server hands
    over (etcd answers /health, /version and /metrics on its client URLs as well)."""
    handler = _Handler(backend, registry, metrics)

    def factory() -> asyncio.Protocol:
        reader = asyncio.StreamReader(limit=HEAD_BYTES_MAX)
        return asyncio.StreamReaderProtocol(reader, handler)

    return factory


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"cannot listen on {url!r}")
    return parts.hostname, parts.port


async def start_http_server(
    backend: Backend,
    urls: str | Sequence[str],
    *,
    registry: Registry = DEFAULT_REGISTRY,
    metrics: EtcdMetrics = METRICS,
) -> HttpServer:
    """Listen on each address: "http://host:port" or "host:port" (port 0 picks a free one);
    one address may be given as a plain string."""
    handler = _Handler(backend, registry, metrics)
    servers = []
    for url in [urls] if isinstance(urls, str) else urls:
        host, port = _host_port(url)
        servers.append(
            await asyncio.start_server(handler, host, port, limit=HEAD_BYTES_MAX)
        )
    return HttpServer(servers)
