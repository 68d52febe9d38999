"""api.client against real etcd 3.4 and kvstore: KV, txn, lease, cluster, maintenance, failover.

One server per kind for the module (start-up dominates the cost); every test uses its own key
prefix. Each test runs its own event loop (grpc.aio channels belong to one loop).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.client import (
    Client,
    CompactedError,
    Compare,
    ConnectionFailedError,
    DeadlineExceededError,
    Delete,
    DuplicateKeyError,
    EventType,
    FutureRevisionError,
    Get,
    LearnerNotReadyError,
    LeaseNotFoundError,
    MemberNotFoundError,
    NoLeaderError,
    Put,
    SortOrder,
    SortTarget,
    SyncClient,
    Txn,
    TxnResult,
)
from tests.process.cluster import run_cluster
from tests.process.servers import KINDS, ServerProcess, free_port, run_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with run_server(request.param) as s:
        yield s


def test_get_every_range_option(server: ServerProcess) -> None:
    async def main() -> None:
        async with Client([server.endpoint]) as c:
            revs = [(await c.put(b"r/" + k, v)).header.revision
                    for k, v in ((b"a", b"3"), (b"b", b"1"), (b"c", b"2"))]
            await c.put(b"r/b", b"1b")
            await c.put(b"r0", b"outside")
            r = await c.get(b"r/", prefix=True)
            assert [kv.key for kv in r.kvs] == [b"r/a", b"r/b", b"r/c"] and r.count == 3
            r = await c.get(b"r/", prefix=True, limit=2)
            assert len(r.kvs) == 2 and r.more and r.count == 3
            r = await c.get(b"r/", prefix=True, count_only=True)
            assert r.kvs == () and r.count == 3
            r = await c.get(b"r/", prefix=True, keys_only=True)
            assert all(kv.value == b"" for kv in r.kvs)
            r = await c.get(b"r/", prefix=True, sort_order=SortOrder.DESCEND,
                            sort_target=SortTarget.VALUE)
            assert [kv.value for kv in r.kvs] == [b"3", b"2", b"1b"]
            r = await c.get(b"r/", prefix=True, min_mod_revision=revs[2])
            assert sorted(kv.key for kv in r.kvs) == [b"r/b", b"r/c"]
            r = await c.get(b"r/", prefix=True, max_create_revision=revs[0])
            assert [kv.key for kv in r.kvs] == [b"r/a"]
            r = await c.get(b"r/", prefix=True, revision=revs[1])
            assert [kv.value for kv in r.kvs] == [b"3", b"1"]
            r = await c.get(b"r/b", from_key=True, serializable=True)
            assert [kv.key for kv in r.kvs][:3] == [b"r/b", b"r/c", b"r0"]
            r = await c.get(b"r/a", range_end=b"r/c")
            assert [kv.key for kv in r.kvs] == [b"r/a", b"r/b"]
            with pytest.raises(FutureRevisionError):
                await c.get(b"r/a", revision=r.header.revision + 100)

    asyncio.run(main())


def test_put_delete_options(server: ServerProcess) -> None:
    async def main() -> None:
        async with Client([server.endpoint]) as c:
            lease = await c.lease_grant(60)
            await c.put(b"p/a", b"1", lease_id=lease.lease_id)
            r = await c.put(b"p/a", b"2", prev_kv=True, ignore_lease=True)
            assert r.prev_kv is not None and r.prev_kv.value == b"1"
            got = (await c.get(b"p/a")).kvs[0]
            assert (got.value, got.lease_id) == (b"2", lease.lease_id)  # lease kept
            await c.put(b"p/a", b"", ignore_value=True)  # value kept, lease cleared (0)
            got = (await c.get(b"p/a")).kvs[0]
            assert (got.value, got.lease_id, got.version) == (b"2", 0, 3)
            await c.put(b"p/b", b"3")
            d = await c.delete(b"p/", prefix=True, prev_kv=True)
            assert d.deleted == 2 and sorted(kv.key for kv in d.prev_kvs) == [b"p/a", b"p/b"]
            await c.lease_revoke(lease.lease_id)

    asyncio.run(main())


def test_txn_builder_and_errors(server: ServerProcess) -> None:
    async def main() -> None:
        async with Client([server.endpoint]) as c:
            first = await c.txn().if_(Compare.mod(b"t/k") == 0).then(
                Put(b"t/k", b"v")).else_(Get(b"t/k")).commit()
            second = await c.txn().if_(Compare.mod(b"t/k") == 0).then(
                Put(b"t/k", b"v")).else_(Get(b"t/k")).commit()
            assert first.succeeded and not second.succeeded
            got = second.responses[0]
            assert got.kvs[0].value == b"v"  # type: ignore[union-attr]
            nested = await c.txn().if_(Compare.value(b"t/k") == b"v").then(
                Txn((Compare.version(b"t/n") == 0,), (Put(b"t/n", b"1"),), ()),
                Delete(b"t/k"),
            ).commit()
            inner = nested.responses[0]
            assert nested.succeeded and isinstance(inner, TxnResult) and inner.succeeded
            assert (await c.get(b"t/k")).kvs == ()
            with pytest.raises(DuplicateKeyError):
                await c.txn().then(Put(b"t/x", b"1"), Put(b"t/x", b"2")).commit()

    asyncio.run(main())


def test_compact_then_old_revision_is_compacted(server: ServerProcess) -> None:
    async def main() -> None:
        async with Client([server.endpoint]) as c:
            r1 = await c.put(b"c/k", b"1")
            r2 = await c.put(b"c/k", b"2")
            await c.compact(r2.header.revision, physical=True)
            with pytest.raises(CompactedError) as ei:
                await c.get(b"c/k", revision=r1.header.revision)
            assert ei.value.code == "OUT_OF_RANGE"
            w = c.watch(b"c/k", start_revision=r1.header.revision)
            with pytest.raises(CompactedError):
                async for _ in w:
                    pass

    asyncio.run(main())


def test_lease_calls_and_keep_alive(server: ServerProcess) -> None:
    async def main() -> None:
        async with Client([server.endpoint]) as c:
            g = await c.lease_grant(2)
            await c.put(b"l/k", b"v", lease_id=g.lease_id)
            assert g.lease_id in await c.leases()
            ttl = await c.lease_time_to_live(g.lease_id, keys=True)
            assert ttl.granted_ttl_s == 2 and ttl.keys == (b"l/k",)
            lost: list[object] = []
            ka = c.keep_alive(g.lease_id, ttl_s=g.ttl_s, on_lost=lost.append)
            await asyncio.sleep(3.0)  # > TTL: alive only thanks to the renewals
            assert ka.renewals >= 3 and not ka.lost.is_set()
            assert (await c.get(b"l/k")).kvs
            await c.lease_revoke(g.lease_id)
            await asyncio.wait_for(ka.lost.wait(), 3.0)  # the next renewal reports TTL 0
            assert isinstance(ka.error, LeaseNotFoundError) and len(lost) == 1
            await ka.stop()
            assert (await c.lease_time_to_live(g.lease_id)).ttl_s == -1
            with pytest.raises(LeaseNotFoundError):
                await c.lease_revoke(g.lease_id)

    asyncio.run(main())


def test_cluster_and_maintenance(server: ServerProcess, tmp_path: Path) -> None:
    async def main() -> None:
        async with Client([server.endpoint]) as c:
            members = await c.member_list()
            assert len(members) == 1 and members[0].name == "n1"
            st = await c.status(endpoint=server.client_url)
            assert st.leader == members[0].member_id and st.raft_index > 0
            assert (await c.hash_kv()).header.revision > 0
            assert await c.alarms() == ()
            await c.defragment()
            size = await c.snapshot_save(tmp_path / "snap.db")
            data = (tmp_path / "snap.db").read_bytes()
            assert len(data) == size and hashlib.sha256(data[:-32]).digest() == data[-32:]
            assert not (tmp_path / "snap.db.part").exists()
            assert await c.alarm_disarm() == ()
            # Membership: a learner that never starts can be added, updated, not promoted
            # (it is not in sync), and removed; learners do not count for the quorum.
            peer = f"http://127.0.0.1:{free_port()}"
            new, after = await c.member_add([peer], is_learner=True)
            assert new.is_learner and new.peer_urls == (peer,) and len(after) == 2
            peer2 = f"http://127.0.0.1:{free_port()}"
            updated = await c.member_update(new.member_id, [peer2])
            assert any(m.peer_urls == (peer2,) for m in updated)
            with pytest.raises(LearnerNotReadyError):
                await c.member_promote(new.member_id)
            left = await c.member_remove(new.member_id)
            assert [m.member_id for m in left] == [members[0].member_id]
            with pytest.raises(MemberNotFoundError):
                await c.member_remove(new.member_id)
            await c.move_leader(members[0].member_id)  # already the leader: a no-op

    asyncio.run(main())


def test_fails_over_from_a_dead_endpoint_for_reads_and_writes(server: ServerProcess) -> None:
    dead = f"127.0.0.1:{free_port()}"

    async def main() -> None:
        async with Client([dead, server.endpoint], timeout_s=5.0) as c:
            t0 = time.monotonic()
            await c.put(b"f/k", b"v")  # connection refused: never sent, so retried
            assert (await c.get(b"f/k")).value == b"v"
            assert c.conn.current == 1 and time.monotonic() - t0 < 4.0
        async with Client([dead], timeout_s=1.0, attempts_max=2) as c:
            with pytest.raises(ConnectionFailedError):
                await c.put(b"f/k", b"v")
        # A peer that accepts TCP but never speaks HTTP/2: only the per-call timeout ends
        # the call, and it is not retried.
        with socket.socket() as mute:
            mute.bind(("127.0.0.1", 0))
            mute.listen(8)
            async with Client([f"127.0.0.1:{mute.getsockname()[1]}"]) as c:
                t0 = time.monotonic()
                with pytest.raises(DeadlineExceededError):
                    await c.get(b"f/k", timeout_s=0.5)
                assert 0.4 < time.monotonic() - t0 < 2.0

    asyncio.run(main())


def test_sync_client_same_shape(server: ServerProcess) -> None:
    with SyncClient([server.client_url]) as c:
        c.put(b"s/k", b"v")
        assert c.get(b"s/k").value == b"v"
        r = c.txn().if_(Compare.version(b"s/k") > 0).then(Delete(b"s/k")).commit()
        assert r.succeeded
        w = c.watch(b"s/", prefix=True)
        w.wait_created()
        c.put(b"s/x", b"1")
        ev = next(w)
        assert ev.type is EventType.PUT and ev.kv.key == b"s/x"
        w.cancel()
        with c.lock(b"s/lock") as lk:
            assert lk.revision > 0 and c.get(lk.key).kvs


@pytest.mark.parametrize("kind", KINDS)
def test_write_refused_by_a_leaderless_member_is_retried_elsewhere_once(kind: str) -> None:
    """hasleader=true makes a leaderless member answer "no leader" before proposing, so the
    client may send the write to another endpoint; it must be applied exactly once.

    The leaderless member is the survivor of a 3-member cluster whose other two members were
    killed (a member that never had a quorum would not serve clients at all on etcd).
    """
    with run_cluster(kind, 3) as cluster, run_server(kind) as ok:
        cluster.kill(1)
        cluster.kill(2)
        lonely = cluster.members[0]
        deadline = time.monotonic() + 15.0
        while lonely.status().leader != 0:  # it notices the lost quorum (election timeout)
            assert time.monotonic() < deadline, "survivor still reports a leader"
            time.sleep(0.05)

        async def main() -> None:
            async with Client([lonely.endpoint], timeout_s=2.0, attempts_max=1) as c:
                with pytest.raises(NoLeaderError):
                    await c.put(b"n/k", b"v")
            async with Client([lonely.endpoint, ok.endpoint], timeout_s=5.0) as c:
                await c.put(b"n/k", b"v")
                assert c.conn.current == 1
                assert (await c.get(b"n/k")).kvs[0].version == 1
                # A serializable read needs no leader: the leaderless member answers it.
                c.conn.current = 0
                await c.get(b"n/k", serializable=True)
                assert c.conn.current == 0

        asyncio.run(main())
