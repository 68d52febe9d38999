"""`watch` outlives a server crash: etcdctl (clientv3) reconnects and resumes each watch from
the revision after the last one it printed, so no event is lost or printed twice. The same
scenario runs etcdctl against etcd (the oracle) and kvctl against kvstore."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import grpc
import pytest

from api.proto import rpc_pb2, rpc_pb2_grpc
from tests.process.cluster import run_cluster
from tests.process.servers import REPO, needs_etcdctl, run_server

pytestmark = pytest.mark.slow

TOOLS = [
    pytest.param("etcd", marks=needs_etcdctl, id="etcdctl-on-etcd"),
    pytest.param("kvstore", id="kvctl-on-kvstore"),
]


class _Output:
    """What a watch process printed, read on a thread as it comes."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.text = b""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 4096):
            with self._lock:
                self.text += chunk

    def wait_for(self, expected: bytes, timeout_s: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.text) >= len(expected):
                    return self.text
            time.sleep(0.05)
        with self._lock:
            return self.text


def _put(endpoint: str, key: bytes, value: bytes) -> None:
    with grpc.insecure_channel(endpoint) as ch:
        rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10,
                                     wait_for_ready=True)


def _spawn_watch(kind: str, endpoints: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ETCDCTL_API": "3"}
    return subprocess.Popen(_watch_command(kind, endpoints, *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _watch_command(kind: str, endpoint: str, *args: str) -> list[str]:
    if kind == "etcd":
        etcdctl = shutil.which("etcdctl")
        assert etcdctl is not None
        return [etcdctl, f"--endpoints={endpoint}", "watch", *args]
    return [sys.executable, "-m", "api.cli.main", f"--endpoints={endpoint}", "watch", *args]


@pytest.mark.parametrize("kind", TOOLS)
def test_watch_resumes_after_server_crash_without_loss_or_duplicates(kind: str) -> None:
    with run_server(kind) as server:
        env = {**os.environ, "PYTHONPATH": str(REPO), "ETCDCTL_API": "3"}
        # --rev 1: the first put is seen however late the watch is created.
        proc = subprocess.Popen(_watch_command(kind, server.endpoint, "w", "--prefix", "--rev", "1"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            out = _Output(proc)
            _put(server.endpoint, b"w/1", b"a")
            first = b"PUT\nw/1\na\n"
            assert out.wait_for(first) == first
            server.restart()  # kill -9, then start on the same data dir and ports
            _put(server.endpoint, b"w/2", b"b")  # likely before the watcher is back
            time.sleep(2.0)
            _put(server.endpoint, b"w/3", b"c")
            want = first + b"PUT\nw/2\nb\nPUT\nw/3\nc\n"
            got = out.wait_for(want)
            assert got == want, (got, proc.poll())
            assert proc.poll() is None  # still watching
        finally:
            proc.kill()
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()


@pytest.mark.parametrize("kind", TOOLS)
def test_watch_moves_to_another_member_when_its_member_dies(kind: str) -> None:
    with run_cluster(kind, 3) as cluster:
        endpoints = ",".join(cluster.endpoints)  # the watch starts on member 0
        proc = _spawn_watch(kind, endpoints, "w", "--prefix", "--rev", "1")
        try:
            out = _Output(proc)
            cluster.put(1, b"w/1", b"a")
            first = b"PUT\nw/1\na\n"
            assert out.wait_for(first) == first
            cluster.kill(0)
            # Members 1 and 2 must agree on a live leader first: a proposal forwarded to the
            # dead one is dropped (etcd answers "request timed out"), and a retry could apply
            # the put twice.
            deadline = time.monotonic() + 30
            while cluster.leader(among=[1, 2]) == 0:
                assert time.monotonic() < deadline, "no new leader"
                time.sleep(0.1)
            cluster.put(1, b"w/2", b"b", timeout=30.0)
            want = first + b"PUT\nw/2\nb\n"
            got = out.wait_for(want)
            assert got == want, (got, proc.poll())
        finally:
            _stop(proc)
