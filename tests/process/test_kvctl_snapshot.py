"""kvctl snapshot save / status / restore end to end, with real kvstore processes.

A kvstore member with data (keys, overwrites, a deletion, a leased key, a compaction) is
snapshotted with `kvctl snapshot save`; `snapshot status` must report the server's revision;
`snapshot restore` builds new data dirs (one member, then a 3-member layout with a new
token), real kvstore processes start on them, and every key reads back with its revisions.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from api.server.config import compute_cluster_id, compute_member_id
from tests.compat.kvctl_harness import run_in_process, run_subprocess
from tests.process.cluster import TOKEN, Cluster
from tests.process.servers import ServerProcess, run_server

pytestmark = [pytest.mark.slow]


def kvctl(endpoint: str | None, *args: str, stdin: bytes | None = None, process: bool = False) -> tuple[str, str, int]:
    argv = ([f"--endpoints={endpoint}"] if endpoint else []) + list(args)
    run = run_subprocess if process else run_in_process
    out, err, code = run(argv, stdin, 30.0, Path.cwd())
    return out.decode(), err.decode(), int(code)


def _ok(endpoint: str | None, *args: str, process: bool = False) -> str:
    out, err, code = kvctl(endpoint, *args, process=process)
    assert code == 0, (args, out, err)
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    """(snapshot file, `get --prefix` json of the data, server revision at save time)."""
    work = tmp_path_factory.mktemp("kvctl-snap")
    with run_server("kvstore") as server:
        ep = server.endpoint
        for i in range(20):
            _ok(ep, "put", f"/app/k{i:02d}", f"v{i}")
        _ok(ep, "put", "/app/k00", "overwritten")
        _ok(ep, "del", "/app/k19")
        lease = _ok(ep, "lease", "grant", "600").split()[1]
        _ok(ep, "put", f"--lease={lease}", "/app/leased", "x")
        _ok(ep, "compaction", "5")
        data = _ok(ep, "-w", "json", "get", "--prefix", "/app/")
        revision = json.loads(data)["header"]["revision"]
        path = work / "snap.db"
        assert _ok(ep, "snapshot", "save", str(path)) == f"Snapshot saved at {path}\n"
    return path, data, revision


def _kvs(get_json: str) -> list[dict[str, object]]:
    return list(json.loads(get_json)["kvs"])


def test_snapshot_status(saved: tuple[Path, str, int]) -> None:
    path, _, revision = saved
    status = json.loads(_ok(None, "-w", "json", "snapshot", "status", str(path)))
    assert status["revision"] == revision
    assert status["totalKey"] > 20
    assert status["totalSize"] == path.stat().st_size - 32  # the SHA-256 trailer is not the db
    simple = _ok(None, "snapshot", "status", str(path)).strip().split(", ")
    assert simple[0] == f"{status['hash']:x}" and simple[1] == str(revision)
    table = _ok(None, "-w", "table", "snapshot", "status", str(path))
    assert "TOTAL KEYS" in table and f"| {revision} |" in table.replace("  ", "")


def test_restore_refuses_bad_input(saved: tuple[Path, str, int], tmp_path: Path) -> None:
    path, _, _ = saved
    out, err, code = kvctl(None, "snapshot", "restore", str(path), "--data-dir", str(tmp_path))
    assert (out, err, code) == ("", f'Error: data-dir "{tmp_path}" exists\n', 1)
    broken = tmp_path / "broken.db"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    broken.write_bytes(bytes(raw))
    out, err, code = kvctl(None, "snapshot", "restore", str(broken), "--data-dir", str(tmp_path / "d"))
    assert code == 1 and "hash" in err and not (tmp_path / "d").exists()
    out, err, code = kvctl(None, "snapshot", "restore")
    assert (err, code) == ("Error: snapshot restore requires exactly one argument\n", 128)


def test_restore_single_member_serves_the_data(saved: tuple[Path, str, int]) -> None:
    path, data, revision = saved
    with tempfile.TemporaryDirectory(prefix="kvctl-restore-") as tmp:
        server = ServerProcess("kvstore", Path(tmp), ())
        _, err, code = kvctl(
            None, "snapshot", "restore", str(path), "--data-dir", str(server.data_dir),
            "--name", server.name, "--initial-cluster", f"{server.name}={server.peer_url}",
            "--initial-advertise-peer-urls", server.peer_url, process=True,
        )
        assert code == 0, err
        member_id = compute_member_id([server.peer_url], "etcd-cluster")
        assert f"member {member_id:x} of cluster {compute_cluster_id([member_id]):x}" in err
        try:
            server.start()
            got = _ok(server.endpoint, "-w", "json", "get", "--prefix", "/app/")
            assert _kvs(got) == _kvs(data)
            assert json.loads(got)["header"]["member_id"] == member_id
            # The restored store keeps its history and its lease; new writes continue after it.
            assert _ok(server.endpoint, "lease", "list").startswith("found 1 leases")
            put = json.loads(_ok(server.endpoint, "-w", "json", "put", "/app/new", "1"))
            assert put["header"]["revision"] == revision + 1
            assert _ok(server.endpoint, "get", "/app/k00") == "/app/k00\noverwritten\n"
        finally:
            server.kill()


def test_restore_three_member_layout(saved: tuple[Path, str, int]) -> None:
    path, data, _ = saved
    with tempfile.TemporaryDirectory(prefix="kvctl-restore3-") as tmp:
        cluster = Cluster("kvstore", 3, Path(tmp))
        initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members)
        for m in cluster.members:
            _ok(None, "snapshot", "restore", str(path), "--data-dir", str(m.data_dir), "--name", m.name,
                "--initial-cluster", initial, "--initial-cluster-token", TOKEN,
                "--initial-advertise-peer-urls", m.peer_url)
        try:
            cluster.start()
            for m in cluster.members:
                got = _ok(m.endpoint, "-w", "json", "get", "--prefix", "--consistency=l", "/app/")
                assert _kvs(got) == _kvs(data)
            members = _ok(cluster.members[0].endpoint, "member", "list")
            assert sorted(line.split(", ")[2] for line in members.splitlines()) == ["n1", "n2", "n3"]
        finally:
            cluster.close()
