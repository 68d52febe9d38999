"""Differential end-to-end test: the same etcdctl 3.4 session against real etcd and against us.

Each server starts fresh on free loopback ports; the session (tests/compat/etcdctl_session.py)
runs ~120 etcdctl invocations covering every single-member command of ETCD_FEATURES 2.2 in
simple, json, fields, table and protobuf output, plus bad input. After normalising IDs,
ports, timings and storage-dependent numbers (see that module), stdout, stderr and the exit
code of every step must be identical. A failure lists every differing step.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from api.proto import rpc_pb2
from tests.compat.etcdctl_session import Ids, Outcome, run_session
from tests.process.grpc_helpers import Stubs
from tests.process.servers import needs_etcdctl, run_server

pytestmark = [pytest.mark.etcd, pytest.mark.slow, needs_etcdctl]

SUBJECTS = [
    pytest.param("kvstore", id="kvstore"),
]


def _session(kind: str, workdir: Path) -> list[Outcome]:
    etcdctl = shutil.which("etcdctl")
    assert etcdctl is not None
    with run_server(kind) as server:
        stubs = Stubs.connect(server.endpoint)
        try:
            header = stubs.maintenance.Status(rpc_pb2.StatusRequest(), timeout=5).header
        finally:
            stubs.close()
        ids = Ids(header.cluster_id, header.member_id, server.endpoint, server.peer_url)
        return run_session(etcdctl, ids, workdir)


@pytest.fixture(scope="module")
def etcd_outcomes(tmp_path_factory: pytest.TempPathFactory) -> list[Outcome]:
    return _session("etcd", tmp_path_factory.mktemp("etcd-session"))


def _by_label(outcomes: list[Outcome], label: str) -> Outcome:
    return next(o for o in outcomes if o.label == label)


def test_session_exercises_what_it_claims(etcd_outcomes: list[Outcome]) -> None:
    # Guards the oracle run itself: a session that silently failed to connect, or whose
    # normalisation erased everything, would make the comparison meaningless.
    assert _by_label(etcd_outcomes, "put /demo/a 1") == Outcome("put /demo/a 1", "OK\n", "", "0")
    assert "too many operations in txn request" in _by_label(etcd_outcomes, "txn with 129 ops").stderr
    assert "request is too large" in _by_label(etcd_outcomes, "put oversize value").stderr
    watch = _by_label(etcd_outcomes, "watch --prefix --rev=1 /demo/w/")
    assert watch.stdout.startswith("PUT\n/demo/w/1\nx\n") and watch.exit == "timeout"
    compacted = _by_label(etcd_outcomes, "watch --rev=2 /demo/a")
    assert compacted.exit == "5" and "required revision has been compacted" in compacted.stderr
    assert _by_label(etcd_outcomes, "snapshot save {workdir}/snap.db").stdout == (
        "Snapshot saved at <WORK>/snap.db"
    )
    assert sum(o.exit == "0" for o in etcd_outcomes) > 80


@pytest.mark.parametrize("kind", SUBJECTS)
def test_etcdctl_session_matches_etcd(
    kind: str, etcd_outcomes: list[Outcome], tmp_path: Path
) -> None:
    ours = _session(kind, tmp_path)
    assert len(ours) == len(etcd_outcomes)
    diffs = []
    for want, got in zip(etcd_outcomes, ours, strict=True):
        if want == got:
            continue
        lines = [f"$ etcdctl {want.label}"]
        for field in ("stdout", "stderr", "exit"):
            if getattr(want, field) != getattr(got, field):
                lines.append(f"  {field}:\n    etcd:   {getattr(want, field)!r}\n    {kind}: {getattr(got, field)!r}")
        diffs.append("\n".join(lines))
    assert not diffs, f"{len(diffs)} etcdctl steps differ from etcd:\n" + "\n".join(diffs)
