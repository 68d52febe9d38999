"""make-mirror: etcdctl on etcd and kvctl on kvstore copy a prefix to a second server (with
the prefix rewritten), then follow puts, deletes and multi-key transactions; both refuse
contradictory prefix flags the same way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import grpc
import pytest

from api.proto import rpc_pb2, rpc_pb2_grpc
from tests.process.servers import REPO, needs_etcdctl, run_server

pytestmark = pytest.mark.slow

TOOLS = [
    pytest.param("etcd", marks=needs_etcdctl, id="etcdctl-on-etcd"),
    pytest.param("kvstore", id="kvctl-on-kvstore"),
]


def _tool(kind: str) -> list[str]:
    if kind == "etcd":
        etcdctl = shutil.which("etcdctl")
        assert etcdctl is not None
        return [etcdctl]
    return [sys.executable, "-m", "api.cli.main"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "ETCDCTL_API": "3"}


def _kv(endpoint: str) -> rpc_pb2_grpc.KVStub:
    return rpc_pb2_grpc.KVStub(grpc.insecure_channel(endpoint))


def _contents(kv: rpc_pb2_grpc.KVStub) -> dict[bytes, bytes]:
    r = kv.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"), timeout=5)
    return {x.key: x.value for x in r.kvs}


def _wait_for(kv: rpc_pb2_grpc.KVStub, want: dict[bytes, bytes], timeout_s: float = 20.0) -> dict[bytes, bytes]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = _contents(kv)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


@pytest.mark.parametrize("kind", TOOLS)
def test_make_mirror_copies_then_follows_with_the_prefix_rewritten(kind: str) -> None:
    with run_server(kind) as src, run_server(kind) as dest:
        skv, dkv = _kv(src.endpoint), _kv(dest.endpoint)
        for k, v in ((b"a/1", b"x"), (b"a/2", b"y"), (b"b/1", b"not mirrored")):
            skv.Put(rpc_pb2.PutRequest(key=k, value=v), timeout=5)
        proc = subprocess.Popen(
            [*_tool(kind), f"--endpoints={src.endpoint}", "make-mirror", "--prefix", "a/",
             "--dest-prefix", "m/", dest.endpoint],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        try:
            base = {b"m/1": b"x", b"m/2": b"y"}
            assert _wait_for(dkv, base) == base
            skv.Put(rpc_pb2.PutRequest(key=b"a/3", value=b"w"), timeout=5)
            skv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"a/1"), timeout=5)
            skv.Txn(rpc_pb2.TxnRequest(success=[
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a/4", value=b"t1")),
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a/5", value=b"t2")),
                rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"a/2")),
            ]), timeout=5)
            skv.Put(rpc_pb2.PutRequest(key=b"b/2", value=b"not mirrored"), timeout=5)
            want = {b"m/3": b"w", b"m/4": b"t1", b"m/5": b"t2"}
            assert _wait_for(dkv, want) == want
            assert proc.poll() is None  # it keeps following
        finally:
            proc.kill()
            _, err = proc.communicate()
        assert b"Error" not in err, err


@pytest.mark.parametrize("kind", TOOLS)
def test_make_mirror_refuses_both_prefix_flags(kind: str) -> None:
    with run_server(kind) as src:
        done = subprocess.run(
            [*_tool(kind), f"--endpoints={src.endpoint}", "make-mirror", "--dest-prefix", "x",
             "--no-dest-prefix", src.endpoint],
            capture_output=True, env=_env(), timeout=30)
        assert done.returncode == 128
        assert done.stderr.decode().splitlines()[-1] == (
            "Error: `--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, "
            "choose one")
