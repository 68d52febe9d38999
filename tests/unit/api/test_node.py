"""The node end to end without sockets: real WAL, snapshot files and LMDB on a temp dir."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from api.server import node_persist
from api.server.config import parse_config
from api.server.node import Node
from api.server.node_persist import fsync_on_loop
from api.service.backend import NoSpaceAlarmError
from kvstore.errors import KvError
from kvstore.types import (
    DeleteRangeRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)


def _config(data_dir: Path, *extra: str):  # type: ignore[no-untyped-def]
    return parse_config(["--data-dir", str(data_dir), "--heartbeat-interval", "10",
                         "--election-timeout", "100", *extra], {})


def test_writes_survive_restart_and_snapshots(tmp_path: Path) -> None:
    async def run() -> None:
        config = _config(tmp_path, "--snapshot-count", "50")
        node = await Node.start(config)
        results = await asyncio.gather(
            *[node.propose(PutRequest(b"k%03d" % i, b"v%d" % i)) for i in range(300)]
        )
        assert sorted(r.revision for r in results) == list(range(2, 302))
        deleted = await node.propose(DeleteRangeRequest(b"k000", b"k010"))
        assert deleted.revision == 302
        before = await node.range(RangeRequest(b"k", b"l"))
        await node.stop()
        # Snapshots were taken (every 50 entries) and old ones pruned to --max-snapshots.
        snaps = os.listdir(tmp_path / "member" / "snap")
        assert 1 <= len([s for s in snaps if s.endswith(".snap")]) <= 5

        node = await Node.start(config)
        after = await node.range(RangeRequest(b"k", b"l"))
        assert after.kvs == before.kvs and after.count == 290
        assert node.header().revision == 302
        again = await node.propose(PutRequest(b"k999", b"x"))
        assert again.revision == 303
        await node.stop()

    asyncio.run(run())


def test_errors_reach_the_caller_and_do_not_bump_the_revision(tmp_path: Path) -> None:
    async def run() -> None:
        node = await Node.start(_config(tmp_path))
        await node.propose(PutRequest(b"a", b"1"))
        with pytest.raises(KvError, match="requested lease not found"):
            await node.propose(PutRequest(b"b", b"2", lease=12345))
        too_many = TxnRequest(success=tuple(PutRequest(b"k%d" % i, b"") for i in range(129)))
        with pytest.raises(KvError, match="too many operations in txn request"):
            await node.propose(too_many)
        assert node.header().revision == 2
        await node.stop()

    asyncio.run(run())


def test_lease_expiry_is_proposed_as_a_revoke(tmp_path: Path) -> None:
    async def run() -> None:
        node = await Node.start(_config(tmp_path))
        grant = await node.propose(LeaseGrantRequest(ttl=1, id=0))
        lease_id = grant.response.id  # type: ignore[union-attr]
        assert await node.lease_keep_alive(lease_id) >= 1
        await node.propose(PutRequest(b"ephemeral", b"x", lease=lease_id))
        for _ in range(100):  # the minimum TTL is 2 s; expiry is checked every 0.5 s
            if (await node.range(RangeRequest(b"ephemeral"))).count == 0:
                break
            await asyncio.sleep(0.1)
        assert (await node.range(RangeRequest(b"ephemeral"))).count == 0
        assert await node.lease_keep_alive(lease_id) == 0
        with pytest.raises(KvError, match="requested lease not found"):
            await node.propose(LeaseRevokeRequest(lease_id))
        await node.stop()

    asyncio.run(run())


def test_nospace_alarm_refuses_puts_but_allows_deletes(tmp_path: Path) -> None:
    async def run() -> None:
        node = await Node.start(_config(tmp_path, "--quota-backend-bytes", str(400_000)))
        value = b"x" * 60_000
        hit = False
        for i in range(40):
            try:
                await node.propose(PutRequest(b"big%d" % i, value))
            except KvError as exc:
                assert "database space exceeded" in str(exc)
                hit = True
                break
        assert hit
        for _ in range(50):
            if node.status().errors:
                break
            await asyncio.sleep(0.02)
        assert any("NOSPACE" in e for e in node.status().errors)
        with pytest.raises(NoSpaceAlarmError):
            await node.propose(PutRequest(b"small", b"1"))
        await node.propose(DeleteRangeRequest(b"big", b"bih"))
        cleared = await node.alarm(2, node.member_id, 1)
        assert [(a.member_id, a.alarm) for a in cleared] == [(node.member_id, 1)]
        await node.stop()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("is_leader", "voters", "writes", "average_s", "expected"),
    [
        (True, 1, 1, 0.0002, True),    # one client writing to a single member
        (True, 2, 1, 0.0002, True),    # the other voter alone is not a majority
        (True, 3, 1, 0.0002, False),   # the followers' acks can commit without this fsync
        (True, 5, 1, 0.0002, False),
        (True, 1, 2, 0.0002, False),   # a second write must reach the next group commit
        (True, 1, 0, 0.0002, False),   # nothing of a client's waits on it
        (True, 1, 1, 0.0020, False),   # slow disk: keep the loop free
        (False, 1, 1, 0.0002, False),  # a follower's acks would wait behind its apply
    ],
)
def test_fsync_on_loop_rule(is_leader: bool, voters: int, writes: int, average_s: float,
                            expected: bool) -> None:
    assert fsync_on_loop(is_leader, voters, writes, average_s) is expected


def test_a_lone_writer_syncs_on_the_loop_and_concurrent_writers_share_the_disk_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which thread runs the WAL's fdatasync: the loop's for one client writing alone, the
    disk thread's for many writers (so they batch) or once fsyncs are slow."""
    threads: list[str] = []
    real_fdatasync = os.fdatasync

    def recording_fdatasync(fd: int) -> None:
        threads.append(threading.current_thread().name)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", recording_fdatasync)
    # Whatever this machine's disk takes, count it as quick (the slow case is set below).
    monkeypatch.setattr(node_persist, "FSYNC_ON_LOOP_MAX_S", 60.0)

    async def run() -> None:
        node = await Node.start(_config(tmp_path))
        await node.published.wait()  # the member's own start-up proposal is a second write
        loop_thread = threading.current_thread().name

        threads.clear()
        for i in range(20):
            await node.propose(PutRequest(b"alone%d" % i, b"v"))
        assert threads and set(threads) == {loop_thread}

        threads.clear()
        results = await asyncio.gather(
            *[node.propose(PutRequest(b"many%d" % i, b"v")) for i in range(200)])
        assert sorted(r.revision for r in results) == list(range(22, 222))
        assert "disk" in threads
        assert len(threads) < 200  # group commit: writers shared fsyncs

        node._fsync_average_s = 120.0  # as if the disk had stalled
        threads.clear()
        await node.propose(PutRequest(b"slow", b"v"))
        assert threads and loop_thread not in threads
        await node.stop()

    asyncio.run(run())
