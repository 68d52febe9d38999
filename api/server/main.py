"""`kvstore`: start one member (etcd's flags), serve until SIGTERM/SIGINT, then stop cleanly.

Start-up order: flags are parsed and checked before anything touches the data dir (bad
flags exit with status 2); then recovery (newest valid snapshot + WAL replay) and the node;
then the client gRPC listeners and the metrics/health HTTP listeners. Shutdown reverses it:
listeners stop taking requests, the node drains and syncs the store, the WAL closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from api.server.config import ConfigError, ServerConfig, parse_config

log = logging.getLogger("kvstore")

_LOG_LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
    "error": logging.ERROR, "panic": logging.CRITICAL, "fatal": logging.CRITICAL,
}


def listen_address(url: str) -> str:
    """host:port for a listen URL (http://127.0.0.1:2379 -> 127.0.0.1:2379)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}"


async def serve(config: ServerConfig) -> None:
    from api.server.grpc_server import start_grpc_server
    from api.server.node import Node

    node = await Node.start(config)
    await node.published.wait()
    log.info(
        "member %x of cluster %x serving clients on %s (data dir %s)",
        # The node's IDs: a member that joined has those the cluster gave it, not the ones
        # its own flags derive.
        node.member_id, node.cluster_id, ",".join(config.listen_client_urls), config.data_dir,
    )
    # The URLs themselves: start_grpc_server keeps unix:// ones unix sockets (etcd's
    # unix://localhost:2379 is the socket file "localhost:2379"); listen_address would
    # make them TCP ports.
    server = await start_grpc_server(node, config, config.listen_client_urls)
    http_servers = []
    if config.listen_metrics_urls:
        from api.server.http import start_http_server

        for url in config.listen_metrics_urls:
            http_servers.append(await start_http_server(node, listen_address(url)))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready to serve client requests", file=sys.stderr, flush=True)
    stopping = asyncio.create_task(stop.wait())
    removed = asyncio.create_task(node.removed.wait())
    await asyncio.wait([stopping, removed], return_when=asyncio.FIRST_COMPLETED)
    if node.removed.is_set():
        log.warning("the member has been permanently removed from the cluster; exiting")
    else:
        log.info("received a stop signal, shutting down")
    await server.stop(grace=1.0)
    for http in http_servers:
        http.close()
        with contextlib.suppress(Exception):
            await http.wait_closed()
    await node.stop()
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-version"]):
        from api.server.version import CLUSTER_VERSION, SERVER_VERSION

        print(f"kvstore Version: {SERVER_VERSION}\nAPI Version: {CLUSTER_VERSION[:3]}")
        return 0
    try:
        config = parse_config(args, os.environ)
    except ConfigError as exc:
        print(f"kvstore: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=_LOG_LEVELS[config.log_level],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for key in config.unrecognized_env:
        log.warning("unrecognized environment variable %s", key)
    from api.server.failpoints import FailpointSpecError, install_from_env

    try:
        armed = install_from_env(os.environ)
    except FailpointSpecError as exc:
        print(f"kvstore: {exc}", file=sys.stderr)
        return 2
    if armed:
        log.warning("failpoints armed: %s", ", ".join(armed))
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        uvloop = None
    try:
        if uvloop is not None:
            uvloop.run(serve(config))
        else:
            asyncio.run(serve(config))
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        log.critical("kvstore stopped: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
