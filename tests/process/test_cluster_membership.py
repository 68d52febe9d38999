"""Membership changes while writes continue (issue 5, acceptance 3), driven through the real
`etcdctl member add/promote/remove`: a 4th member joins as a learner, catches up through a
snapshot (small --snapshot-count), is promoted, an original member is removed, and the
cluster ends as a healthy 3-member cluster whose HashKV agrees, with no acknowledged write
lost. Also etcd's refusals: a second learner, promoting an unknown or a voter member."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from api.proto import rpc_pb2, rpc_pb2_grpc
from bench.ports import free_port
from bench.server_process import MemberProcess

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("etcdctl") is None,
                                                   reason="etcdctl not installed")]


class Member(MemberProcess):
    def __init__(self, tmp: Path, name: str) -> None:
        super().__init__("kvstore", name, tmp / name, tmp / f"{name}.log")

    def start(self, initial_cluster: str, state: str) -> None:
        self.spawn([
            "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
            "--heartbeat-interval", "50", "--election-timeout", "500", "--snapshot-count", "100",
        ])


def etcdctl(endpoints: list[str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [shutil.which("etcdctl") or "etcdctl", "--endpoints", ",".join(endpoints),
         "--command-timeout=10s", *args],
        capture_output=True, text=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"},
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def wait_for(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
            if result:
                return result
        except (grpc.RpcError, AssertionError, StopIteration):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.1)


def member_ids(endpoints: list[str]) -> dict[str, int]:
    out = etcdctl(endpoints, "member", "list").stdout
    ids = {}
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        ids[fields[3]] = int(fields[0], 16)  # peer URL -> ID
    return ids


def test_add_learner_catch_up_by_snapshot_promote_and_remove(tmp_path: Path) -> None:
    members = [Member(tmp_path, f"m{i}") for i in range(1, 4)]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    acked: dict[bytes, bytes] = {}
    stop = threading.Event()
    try:
        for m in members:
            m.start(initial, "new")
        endpoints = [m.endpoint for m in members]
        wait_for(lambda: etcdctl(endpoints, "put", "ready", "1").returncode == 0)

        def writer() -> None:
            # Writes go to every member in turn; followers forward them to the leader.
            channels = [grpc.insecure_channel(m.endpoint) for m in members]
            i = 0
            while not stop.is_set():
                i += 1
                key, value = b"w%06d" % i, b"v%d" % i
                try:
                    rpc_pb2_grpc.KVStub(channels[i % 2 + 1]).Put(
                        rpc_pb2.PutRequest(key=key, value=value), timeout=5)
                    acked[key] = value
                except grpc.RpcError:
                    pass
            for c in channels:
                c.close()

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        wait_for(lambda: len(acked) > 300)  # several snapshots (every 100 entries) taken

        new = Member(tmp_path, "m4")
        out = etcdctl(endpoints, "member", "add", "m4", "--learner", f"--peer-urls={new.peer_url}").stdout
        assert "added to cluster" in out and 'ETCD_INITIAL_CLUSTER_STATE="existing"' in out
        refused = etcdctl(endpoints, "member", "add", "m5", "--learner",
                          f"--peer-urls=http://127.0.0.1:{free_port()}", check=False)
        assert refused.returncode != 0
        assert "too many learner members in cluster" in refused.stderr
        # Joining with an --initial-cluster that is not the cluster's member list is refused
        # before anything is written (etcd: "error validating peerURLs ...").
        stale = Member(tmp_path, "m4")
        stale.peer_port, stale.client_port = new.peer_port, new.client_port
        stale.data_dir, stale.log_path = tmp_path / "m4-stale", tmp_path / "m4-stale.log"
        stale.start(f"m2={members[1].peer_url},m4={new.peer_url}", "existing")
        assert stale.proc is not None and stale.proc.wait(30) != 0
        assert "error validating peerURLs: member count is unequal" in stale.log_path.read_text()
        assert not (stale.data_dir / "member" / "wal").exists()  # no WAL: nothing bootstrapped
        new.start(f"{initial},m4={new.peer_url}", "existing")
        new_id = member_ids(endpoints)[new.peer_url]

        # The learner serves serializable reads only, and catches up.
        def caught_up() -> bool:
            with grpc.insecure_channel(new.endpoint) as ch:
                kv = rpc_pb2_grpc.KVStub(ch)
                resp = kv.Range(rpc_pb2.RangeRequest(key=b"ready", serializable=True), timeout=2)
                return resp.count == 1 and len(acked) > 0
        wait_for(caught_up)
        with grpc.insecure_channel(new.endpoint) as ch:
            with pytest.raises(grpc.RpcError) as info:
                rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"ready"), timeout=2)
        assert info.value.details() == "etcdserver: rpc not supported for learner"
        assert "took a snapshot" in new.log_path.read_text() or \
            "installed a snapshot from the leader" in new.log_path.read_text()
        # It names itself by the ID the cluster gave it, not one derived from its flags.
        assert f"member {new_id:x} of cluster " in new.log_path.read_text()

        wait_for(lambda: etcdctl(endpoints, "member", "promote", f"{new_id:x}",
                                 check=False).returncode == 0)
        voter = etcdctl(endpoints, "member", "promote", f"{new_id:x}", check=False)
        assert "can only promote a learner member" in voter.stderr

        removed = members[0]
        removed_id = member_ids(endpoints)[removed.peer_url]
        etcdctl(endpoints[1:] + [new.endpoint], "member", "remove", f"{removed_id:x}")
        wait_for(lambda: removed.proc is not None and removed.proc.poll() is not None, 15)
        stop.set()
        thread.join(10)

        final = [members[1].endpoint, members[2].endpoint, new.endpoint]
        listed = etcdctl(final, "member", "list").stdout.strip().splitlines()
        assert len(listed) == 3 and all(", started, " in ln and ln.endswith("false") for ln in listed)
        health = etcdctl(final, "endpoint", "health", "--cluster", check=False)
        report = health.stdout + health.stderr  # etcdctl 3.4 prints health to stderr
        assert report.count("is healthy") == 3, report

        def hashes_agree() -> bool:
            lines = etcdctl(final, "endpoint", "hashkv").stdout.strip().splitlines()
            return len({ln.split(",")[1] for ln in lines}) == 1
        wait_for(hashes_agree)
        for endpoint in final:
            with grpc.insecure_channel(endpoint) as ch:
                resp = rpc_pb2_grpc.KVStub(ch).Range(
                    rpc_pb2.RangeRequest(key=b"w", range_end=b"x", serializable=True), timeout=5)
            stored = {kv.key: kv.value for kv in resp.kvs}
            assert all(stored.get(k) == v for k, v in acked.items()), endpoint
    finally:
        stop.set()
        for m in members:
            m.kill()
        if "new" in locals():
            new.kill()
