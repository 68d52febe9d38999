"""Both client-port servers (--experimental-grpc-front): api/http2, the default, and
grpc.aio. The real etcdctl gets the same answers from each, errors included."""

from __future__ import annotations

import http.client
import os
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from bench.ports import free_port
from bench.server_process import REPO
from tests.process.servers import ServerProcess, run_server

FRONTS = ("http2", "grpcio")


def _etcdctl(endpoint: str, *args: str, cwd: Path | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        ["etcdctl", "--endpoints", endpoint, "--command-timeout=5s", *args],
        capture_output=True, text=True, timeout=30, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        cwd=cwd,
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _session(endpoint: str) -> list[tuple[int, str]]:
    return [
        _etcdctl(endpoint, "put", "k", "v1"),
        _etcdctl(endpoint, "put", "k", "v2"),
        _etcdctl(endpoint, "get", "k", "--rev", "2"),
        _etcdctl(endpoint, "get", "", "--prefix", "--keys-only"),
        _etcdctl(endpoint, "member", "list"),
        _etcdctl(endpoint, "put", "", "x"),
        _etcdctl(endpoint, "get", "k", "--rev", "99"),
        _etcdctl(endpoint, "lease", "revoke", "1234"),
        _etcdctl(endpoint, "compaction", "2"),
        _etcdctl(endpoint, "get", "k", "--rev", "1"),
    ]


@pytest.mark.parametrize("front", FRONTS)
def test_etcdctl_session_is_the_same_on_both_fronts(front: str) -> None:
    with run_server("kvstore", extra_args=("--experimental-grpc-front", front)) as server:
        results = _session(server.endpoint)
        # HTTP/1.1 on the client port is api/http2's alone: this tells the fronts apart.
        try:
            with urllib.request.urlopen(f"http://{server.endpoint}/health", timeout=5) as r:
                http_ok = r.status == 200
        except (OSError, http.client.HTTPException):  # grpcio answers with HTTP/2 frames
            http_ok = False
    assert http_ok is (front == "http2")
    codes = [code for code, _ in results]
    texts = [text for _, text in results]
    assert codes[:5] == [0, 0, 0, 0, 0], results
    assert texts[0] == texts[1] == "OK"
    assert texts[2] == "k\nv1"
    assert texts[3] == "k"
    assert codes[5] != 0 and "etcdserver: key is not provided" in texts[5]
    assert codes[6] != 0 and "etcdserver: mvcc: required revision is a future revision" in texts[6]
    assert codes[7] != 0 and "etcdserver: requested lease not found" in texts[7]
    assert codes[8] == 0 and texts[8] == "compacted revision 2"
    assert codes[9] != 0 and "etcdserver: mvcc: required revision has been compacted" in texts[9]


@pytest.mark.parametrize("front", FRONTS)
def test_a_unix_client_url_is_a_unix_socket(front: str) -> None:
    """etcd's unix://localhost:N is the socket file "localhost:N" in the member's working
    directory (the repo root for these test servers)."""
    sock = f"localhost:{free_port()}"
    with tempfile.TemporaryDirectory(prefix="kvstore-unix-") as tmp:
        server = ServerProcess("kvstore", Path(tmp), ())
        server.extra_args = ("--experimental-grpc-front", front,
                             "--listen-client-urls", f"{server.client_url},unix://{sock}")
        try:
            server.start()
            assert _etcdctl(f"unix://{sock}", "put", "u", "1", cwd=REPO) == (0, "OK")
            assert _etcdctl(f"unix://{sock}", "get", "u", cwd=REPO) == (0, "u\n1")
        finally:
            server.kill()
            if os.path.exists(REPO / sock):
                os.unlink(REPO / sock)
