"""The real etcdctl (v3 API) against a 3-member kvstore and a 3-member etcd 3.4: same shape.

Each command runs against both clusters; outputs are normalised (member IDs, URLs and
ports, versions, sizes, durations and other numbers, table column widths) and compared
line for line after sorting (row order follows member IDs, which differ), together with
the number of lines and the exit code. What survives normalisation is the shape etcdctl
prints: columns, names, `true`/`false` fields, messages and their order of words.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from tests.process.cluster import Cluster, run_cluster
from tests.process.servers import needs_etcdctl

pytestmark = [pytest.mark.slow, needs_etcdctl]

_RULES = [
    (re.compile(r"https?://127\.0\.0\.1:\d+"), "<URL>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "<ADDR>"),
    (re.compile(r"\b\d+\.\d+\.\d+\b"), "<VER>"),
    (re.compile(r"\b\d+(\.\d+)? ?(B|kB|MB|GB)\b"), "<SIZE>"),
    (re.compile(r"\b\d+(\.\d+)?(ns|µs|us|ms|s|m)\b"), "<DUR>"),
    (re.compile(r"\b[0-9a-f]{10,16}\b"), "<ID>"),
    (re.compile(r"\b\d+\b"), "<N>"),
    (re.compile(r"-{2,}"), "-"),
    (re.compile(r" {2,}"), " "),
]


def normalise(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        for pattern, repl in _RULES:
            line = pattern.sub(repl, line)
        out.append(line.strip())
    return out


@dataclass(frozen=True, slots=True)
class Run:
    rc: int
    stdout: list[str]
    stderr: list[str]
    raw: str


def etcdctl(cluster: Cluster, *args: str, endpoints: list[str] | None = None) -> Run:
    binary = shutil.which("etcdctl")
    assert binary is not None
    eps = ",".join(endpoints if endpoints is not None else cluster.endpoints[:1])
    env = {**os.environ, "ETCDCTL_API": "3"}
    r = subprocess.run(
        [binary, "--endpoints", eps, *args], env=env, capture_output=True, text=True, timeout=60
    )
    # clientv3's own retry warnings (JSON log lines) are not part of the command's output.
    stderr = "\n".join(x for x in r.stderr.splitlines() if not x.startswith('{"level"'))
    return Run(r.returncode, normalise(r.stdout), normalise(stderr),
               f"rc={r.returncode}\n{r.stdout}\n{r.stderr}")


def assert_same_shape(etcd: Run, ours: Run) -> None:
    detail = f"\n--- etcd\n{etcd.raw}\n--- kvstore\n{ours.raw}"
    assert ours.rc == etcd.rc, "exit codes differ" + detail
    assert len(ours.stdout) == len(etcd.stdout), "stdout line counts differ" + detail
    assert len(ours.stderr) == len(etcd.stderr), "stderr line counts differ" + detail
    assert sorted(ours.stdout) == sorted(etcd.stdout), "stdout shapes differ" + detail
    assert sorted(ours.stderr) == sorted(etcd.stderr), "stderr shapes differ" + detail


@pytest.fixture(scope="module")
def clusters() -> Iterator[dict[str, Cluster]]:
    with ExitStack() as stack:
        out = {kind: stack.enter_context(run_cluster(kind)) for kind in ("etcd", "kvstore")}
        for c in out.values():
            c.put(0, b"some", b"data")
            c.wait_converged()
        yield out


def both(clusters: dict[str, Cluster], *args: str, all_endpoints: bool = False) -> tuple[Run, Run]:
    runs = []
    for kind in ("etcd", "kvstore"):
        c = clusters[kind]
        runs.append(etcdctl(c, *args, endpoints=c.endpoints if all_endpoints else None))
    return runs[0], runs[1]


def test_member_list(clusters: dict[str, Cluster]) -> None:
    for fmt in ("simple", "table"):
        etcd, ours = both(clusters, "member", "list", "-w", fmt)
        assert etcd.rc == 0 and len(etcd.stdout) >= 3
        assert_same_shape(etcd, ours)


def test_member_list_ids_and_urls(clusters: dict[str, Cluster]) -> None:
    """Beyond the shape: kvstore lists exactly its members' IDs, names and URLs."""
    c = clusters["kvstore"]
    binary = shutil.which("etcdctl")
    assert binary is not None
    r = subprocess.run([binary, "--endpoints", c.endpoints[1], "member", "list"],
                       env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, text=True, timeout=30)
    rows = sorted(tuple(f.strip() for f in line.split(",")) for line in r.stdout.splitlines())
    want = sorted((f"{m.member_id:x}", "started", m.name, m.peer_url, m.client_url, "false")
                  for m in c.members)
    assert rows == want


def test_endpoint_status_cluster_table(clusters: dict[str, Cluster]) -> None:
    etcd, ours = both(clusters, "endpoint", "status", "--cluster", "-w", "table")
    assert etcd.rc == 0
    assert_same_shape(etcd, ours)
    # One leader row (IS LEADER true) and two followers, in both.
    assert sum(" true " in line for line in ours.stdout) == 1


def test_endpoint_health_cluster(clusters: dict[str, Cluster]) -> None:
    # Several runs: a health check is one linearizable Get on every member at once, so
    # concurrent reads on different members are exercised each time.
    for _ in range(5):
        etcd, ours = both(clusters, "endpoint", "health", "--cluster")
        assert etcd.rc == 0
        assert_same_shape(etcd, ours)


def test_move_leader(clusters: dict[str, Cluster]) -> None:
    for kind in ("etcd", "kvstore"):
        clusters[kind].wait_leader()
    runs = []
    for kind in ("etcd", "kvstore"):
        c = clusters[kind]
        old = c.leader()
        target = (old + 1) % 3
        runs.append(etcdctl(c, "move-leader", f"{c.members[target].member_id:x}", endpoints=c.endpoints))
        deadline = time.monotonic() + 10
        while c.leader() != target:
            assert time.monotonic() < deadline, f"{kind}: leadership did not move to {target}"
            time.sleep(0.05)
        raw = runs[-1].raw
        assert f"{c.members[old].member_id:x} to {c.members[target].member_id:x}" in raw
    assert runs[0].rc == 0
    assert_same_shape(runs[0], runs[1])


def test_move_leader_errors(clusters: dict[str, Cluster]) -> None:
    # An unknown transferee, sent to the leader.
    etcd, ours = both(clusters, "move-leader", "abcdef0123456789", all_endpoints=True)
    assert etcd.rc != 0
    assert_same_shape(etcd, ours)
    # Only a follower's endpoint: etcdctl refuses on its own ("no leader endpoint given").
    runs = []
    for kind in ("etcd", "kvstore"):
        c = clusters[kind]
        follower = (c.leader() + 1) % 3
        target = (c.leader() + 2) % 3
        runs.append(etcdctl(c, "move-leader", f"{c.members[target].member_id:x}",
                            endpoints=[c.endpoints[follower]]))
    assert runs[0].rc != 0
    assert_same_shape(runs[0], runs[1])
