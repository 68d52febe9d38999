"""Differential test: kvctl and the real etcdctl 3.4, same arguments, same kind of server.

Two fresh real etcd 3.4 servers are started; etcdctl runs the session against one and kvctl
the same session against the other (two servers, so that each tool sees the revisions a
fresh member produces; they run concurrently to keep the test fast). The session is the
existing etcdctl session (tests/compat/etcdctl_session.py: every single-member command in
every output format, bad input, compaction) plus KVCTL_STEPS below (membership changes,
--cluster, exec forms, interactive watch and txn, lock/elect, bad flags and arguments).
After normalising IDs, ports, timings and sizes, stdout, stderr and exit code of every
step must be identical.

The same kvctl session then runs against kvstore, compared with etcdctl against kvstore,
so what kvctl adds is checked on our server too (independently of how far kvstore is from
etcd, which test_etcdctl_e2e.py judges).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from api.proto import rpc_pb2
from tests.compat.etcdctl_session import SESSION, Ids, Outcome, Step
from tests.compat.kvctl_harness import diff_outcomes, etcdctl_runner, kvctl_runner, run_steps
from tests.process.grpc_helpers import Stubs
from tests.process.servers import ServerProcess, needs_etcdctl, run_server

pytestmark = [pytest.mark.etcd, pytest.mark.slow, needs_etcdctl]


def _s(*args: str, **kw: object) -> Step:
    return Step(tuple(args), **kw)  # type: ignore[arg-type]


def _txn(*lines: str) -> str:
    return "\n".join(lines) + "\n"


EXEC_ECHO = 'echo "rev=$ETCD_WATCH_REVISION type=$ETCD_WATCH_EVENT_TYPE key=$ETCD_WATCH_KEY value=$ETCD_WATCH_VALUE"'

KVCTL_STEPS: list[Step] = [
    # --- bad flags and arguments (cobra's messages and usage, etcdctl's exit codes) -----------
    _s("get", "--foo", "/demo/a"),
    _s("get", "--limit", "x", "/demo/a"),
    _s("get"),
    _s("get", "a", "b", "c"),
    _s("get", "--prefix", "--from-key", "/demo/"),
    _s("get", "--order=FOO", "/demo/a"),
    _s("get", "--sort-by=FOO", "/demo/a"),
    _s("get", "--consistency=x", "/demo/a"),
    _s("-w", "yaml", "get", "/demo/a"),
    _s("bogus"),
    _s("put"),
    _s("put", "--ignore-value", "/demo/a", "v"),
    _s("put", "--lease=zz", "/demo/a", "v"),
    _s("del"),
    _s("compaction"),
    _s("compaction", "abc"),
    _s("lease", "grant"),
    _s("lease", "grant", "abc"),
    _s("lease", "revoke", "zz"),
    _s("lease", "timetolive", "1234abcd"),
    _s("member", "remove", "xyz"),
    _s("watch"),
    _s("move-leader"),
    _s("txn", "extra"),
    _s("lease", "--help"),
    _s("txn", stdin=_txn("", "foo bar", "", "")),
    _s("txn", stdin=_txn("", "get", "", "")),
    _s("txn", stdin=_txn('ver("/demo/a") > "x"', "", "", "")),
    # --- more output shapes ----------------------------------------------------------------
    _s("put", "/demo/q", 'with "quotes" and\ttab'),
    _s("-w", "fields", "get", "/demo/q"),
    _s("--hex", "-w", "fields", "get", "/demo/q"),
    _s("-w", "protobuf", "put", "/demo/p", "v", protobuf=rpc_pb2.PutResponse),
    _s("-w", "fields", "endpoint", "hashkv"),
    _s("-w", "fields", "endpoint", "health"),
    _s("-w", "table", "endpoint", "health"),
    _s("-w", "table", "endpoint", "hashkv"),
    _s("endpoint", "status", "--cluster"),
    _s("endpoint", "health", "--cluster"),
    _s("-w", "json", "endpoint", "hashkv", "--cluster"),
    _s("get", "--prefix", "--print-value-only", "--keys-only", "/demo/"),
    _s("-w", "json", "put", "--prev-kv", "/demo/q", "again"),
    _s("-w", "json", "del", "/demo/q"),
    _s("-w", "json", "txn", stdin=_txn('mod("/demo/p") > "0"', "", "get /demo/p", "del /demo/p",
                                       "put /demo/p 2", "", "", "")),
    _s("-w", "fields", "lease", "grant", "100"),
    _s("-w", "fields", "lease", "timetolive", "--keys", "{last_lease}"),
    _s("-w", "fields", "lease", "keep-alive", "--once", "{last_lease}"),
    _s("-w", "fields", "lease", "revoke", "{last_lease}"),
    _s("txn", "-i", stdin=_txn('mod("/demo/a") > "0"', "", "get /demo/a", "", "", "")),
    # --- membership (a learner keeps the one-member quorum) ------------------------------------
    _s("member", "add", "learner1", "--learner", "--peer-urls=http://127.0.0.1:1"),
    _s("member", "list"),
    _s("-w", "json", "member", "list"),
    _s("member", "add", "learner2", "--learner", "--peer-urls=http://127.0.0.1:2"),
    _s("member", "promote", "{added1}"),
    _s("member", "update", "{added1}", "--peer-urls=http://127.0.0.1:3"),
    _s("-w", "fields", "member", "update", "{added1}", "--peer-urls=http://127.0.0.1:4"),
    _s("member", "remove", "{added1}"),
    _s("-w", "json", "member", "add", "learner3", "--learner", "--peer-urls=http://127.0.0.1:5"),
    _s("-w", "json", "member", "remove", "{added2}"),
    _s("member", "remove", "{added2}"),
    _s("member", "promote", "{member_hex}"),
    _s("member", "add", "nourls"),
    # --- watch forms and concurrency recipes (real processes, stopped by timeouts) -------------
    _s("put", "/demo/x/1", "v1"),
    _s("watch", "--rev=8", "/demo/x/1", "--", "sh", "-c", EXEC_ECHO, timeout_s=2.0),
    _s("watch", "-i", stdin="bogus line\nwatch\n", timeout_s=3.0),
    _s("watch", "--prefix", "/demo/x/", "/demo/y", timeout_s=3.0),
    _s("-w", "fields", "watch", "--rev=8", "--prev-kv", "/demo/x/1", timeout_s=2.0),
    # After the watch steps (10 s of timeouts): the session's 2-second leases (grant 0,
    # grant 1) have expired on both servers, so the list does not race their expiry; before
    # lock/elect, whose session leases are not tracked.
    _s("-w", "fields", "lease", "list"),
    _s("lock", "demo-lock", "--", "sh", "-c", 'echo "key=${ETCD_LOCK_KEY%/*} rev=$ETCD_LOCK_REV"'),
    _s("lock", "demo-lock", "sh", "-c", "exit 3"),
    _s("lock"),
    _s("elect", "demo-elect"),
    _s("elect", "-l", "demo-elect", "x"),
    _s("lock", "demo-lock", timeout_s=2.0),
    _s("elect", "demo-elect", "candidate-1", timeout_s=2.0),
    _s("get", "--prefix", "--keys-only", "demo-"),
    _s("put", "/demo/x/1", "v2"),
    _s("-w", "json", "watch", "--rev=8", "/demo/x/1", timeout_s=2.0),
]


def _ids(server: ServerProcess) -> Ids:
    stubs = Stubs.connect(server.endpoint)
    try:
        header = stubs.maintenance.Status(rpc_pb2.StatusRequest(), timeout=5).header
    finally:
        stubs.close()
    return Ids(header.cluster_id, header.member_id, server.endpoint, server.peer_url)


def _side_by_side(kind: str, tmp: Path) -> tuple[list[Outcome], list[Outcome]]:
    """(etcdctl outcomes, kvctl outcomes), each tool on its own fresh server of `kind`."""
    steps = [*SESSION, *KVCTL_STEPS]
    with ExitStack() as stack:
        servers = [stack.enter_context(run_server(kind)) for _ in range(2)]
        work = [tmp / "etcdctl", tmp / "kvctl"]
        for w in work:
            w.mkdir()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            want = pool.submit(run_steps, etcdctl_runner(), _ids(servers[0]), work[0], steps)
            got = pool.submit(run_steps, kvctl_runner(), _ids(servers[1]), work[1], steps)
            return want.result(), got.result()


@pytest.fixture(scope="module")
def against_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Outcome], list[Outcome]]]:
    yield _side_by_side("etcd", tmp_path_factory.mktemp("kvctl-vs-etcdctl"))


def _by_label(outcomes: list[Outcome], label: str) -> Outcome:
    return next(o for o in outcomes if o.label == label)


def test_oracle_session_is_meaningful(against_etcd: tuple[list[Outcome], list[Outcome]]) -> None:
    etcdctl, _ = against_etcd
    assert _by_label(etcdctl, "put /demo/a 1").stdout == "OK\n"
    assert _by_label(etcdctl, "get --foo /demo/a").exit == "1"
    exec_watch = next(o for o in etcdctl if o.label.startswith("watch --rev=8 /demo/x/1 --"))
    assert "rev=" in exec_watch.stdout
    assert _by_label(etcdctl, "watch -i").exit == "3"
    assert sum(o.exit == "0" for o in etcdctl) > 100


def test_kvctl_matches_etcdctl_against_etcd(against_etcd: tuple[list[Outcome], list[Outcome]]) -> None:
    etcdctl, kvctl = against_etcd
    diffs = diff_outcomes(etcdctl, kvctl, want_name="etcdctl", got_name="kvctl")
    assert not diffs, f"{len(diffs)} of {len(etcdctl)} steps differ:\n" + "\n".join(diffs)


def test_kvctl_matches_etcdctl_against_kvstore(tmp_path: Path) -> None:
    etcdctl, kvctl = _side_by_side("kvstore", tmp_path)
    diffs = diff_outcomes(etcdctl, kvctl, want_name="etcdctl", got_name="kvctl")
    assert not diffs, f"{len(diffs)} of {len(etcdctl)} steps differ:\n" + "\n".join(diffs)
