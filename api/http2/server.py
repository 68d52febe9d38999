"""The HTTP/2 gRPC server: listeners, handler lookup by method name, graceful stop.

It takes the same registrations as a grpc.aio server (`add_generic_rpc_handlers` with the
handlers grpc's generated code and `grpc.method_handlers_generic_handler` build), so the
servicers run unchanged under either front.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import grpc

from api.http2.call import Call, end_with_status
from api.http2.connection import Connection, Stream
from api.http2.headers import RequestHeaders

log = logging.getLogger(__name__)

__all__ = ["Http2Server"]


class _CallDetails(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, Any], ...]


class Http2Server:
    def __init__(self, *, max_receive_bytes: int,
                 http1: Callable[[], asyncio.Protocol] | None = None) -> None:
        self._http1 = http1
        self._handlers: list[grpc.GenericRpcHandler] = []
        self._by_path: dict[str, grpc.RpcMethodHandler] = {}
        self._max_receive = max_receive_bytes
        self._sockets: list[socket.socket] = []
        self._unix_paths: list[str] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[Connection] = set()
        self._calls: set[Call] = set()
        self._stopped: asyncio.Event | None = None

    # ------------------------------------------------------------------ set-up (grpc-like)

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._handlers.extend(handlers)
        self._by_path.clear()

    def add_insecure_port(self, address: str) -> int:
        """Bind now (so a taken port fails here, as with grpc); returns the bound port."""
        if address.startswith("unix:"):
            path = address[len("unix:"):]
            if os.path.exists(path):
                os.unlink(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            sock.listen(1024)
            sock.setblocking(False)
            self._sockets.append(sock)
            self._unix_paths.append(path)
            return 1
        host, _, port_text = address.rpartition(":")
        host = host.strip("[]")
        port = int(port_text)
        bound = 0
        errors: list[OSError] = []
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        seen: set[tuple[Any, ...]] = set()
        for family, kind, proto, _, sockaddr in infos:
            if sockaddr in seen:
                continue
            seen.add(sockaddr)
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(sockaddr if bound == 0 or port else (sockaddr[0], bound,
                                                               *sockaddr[2:]))
                sock.listen(1024)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                errors.append(exc)
                continue
            bound = sock.getsockname()[1]
            self._sockets.append(sock)
        if not bound:
            raise errors[0] if errors else OSError(f"cannot listen on {address}")
        return bound

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        for sock in self._sockets:
            server = await loop.create_server(self._new_connection, sock=sock, backlog=1024)
            self._servers.append(server)

    async def stop(self, grace: float | None) -> None:
        """GOAWAY to every connection, let running calls finish for `grace` seconds, then
        cancel what is left and close."""
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            conn.goaway()
        if grace:
            # Running calls, and responses still waiting for the client's flow-control
            # window, get `grace` seconds.
            deadline = asyncio.get_running_loop().time() + grace
            while (self._calls or any(c.has_pending_output for c in self._connections)) \
                    and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
        for call in list(self._calls):
            call.cancel()
        await asyncio.sleep(0)
        for conn in list(self._connections):
            conn.close()
        for path in self._unix_paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if self._stopped is not None:
            self._stopped.set()

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        if self._stopped is None:
            return True
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ connections, calls

    def _new_connection(self) -> Connection:
        conn = Connection(self._start_call, self._connections.discard, self._http1)
        self._connections.add(conn)
        return conn

    def _lookup(self, path: str, metadata: tuple[tuple[str, Any], ...]) -> Any:
        try:
            return self._by_path[path]
        except KeyError:
            pass
        details = _CallDetails(path, metadata)
        for generic in self._handlers:
            found = generic.service(details)  # type: ignore[arg-type]
            if found is not None:
                self._by_path[path] = found  # only known methods: clients choose paths
                return found
        return None

    def _start_call(self, conn: Connection, stream: Stream, headers: RequestHeaders) -> Call | None:
        handler = self._lookup(headers.path, headers.metadata)
        if handler is None:
            end_with_status(conn, stream, grpc.StatusCode.UNIMPLEMENTED, _unknown(headers.path))
            return None
        if not headers.content_type.startswith("application/grpc"):
            end_with_status(conn, stream, grpc.StatusCode.INTERNAL,
                            f"invalid gRPC request content-type {headers.content_type!r}")
            return None
        call = Call(conn, stream, headers, handler, self._max_receive, self._calls)
        if stream.remote_closed:
            call.on_data(b"", True)
        return call


def _unknown(path: str) -> str:
    service, _, method = path.lstrip("/").rpartition("/")
    if not service:
        return f"malformed method name: {path!r}"
    return f"unknown method {method} for service {service}"
