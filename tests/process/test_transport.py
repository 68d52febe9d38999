"""The peer transport over real loopback TCP: several Transports in one event loop.

Each test runs its own event loop (`asyncio.run`) and binds free loopback ports. The
"stalled peer" and the raw clients below are real sockets speaking the real frames, used
where a well-behaved Transport cannot produce the fault (a peer that never reads, a peer
that sends an oversized frame).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import msgpack
import pytest

from api.server.metrics import DEFAULT_REGISTRY
from api.server.transport import Transport
from api.server.transport_wire import (
    FrameKind,
    Handshake,
    StreamKind,
    encode_frame,
    read_frame,
)
from bench.ports import free_port
from raft.types import (
    LOCAL_MESSAGE_TYPES,
    ConfState,
    Entry,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

pytestmark = pytest.mark.slow

CLUSTER_ID = 0xC1C1
A, B, C = 0xA1, 0xB2, 0xC3
WAIT_S = 5.0


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 25.0))


async def wait_until(cond: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


class Member:
    """One Transport plus everything its callbacks reported."""

    def __init__(
        self,
        member_id: int,
        port: int,
        peers: dict[int, list[str]],
        tmp: Path,
        *,
        cluster_id: int = CLUSTER_ID,
        **kwargs: Any,
    ) -> None:
        self.member_id = member_id
        self.port = port
        self.received: list[Message] = []
        self.unreachable: list[int] = []
        self.snapshot_status: list[tuple[int, bool]] = []
        self.snapshots: list[tuple[Message, str]] = []
        self.snapshot_dir = tmp / f"snap-{member_id:x}"
        self.snapshot_dir.mkdir(exist_ok=True)
        self.on_snapshot: Callable[[Message, str], None] = self._keep_snapshot
        self.transport = Transport(
            member_id=member_id,
            cluster_id=cluster_id,
            listen=f"127.0.0.1:{port}",
            peers=peers,
            on_message=self.received.append,
            on_unreachable=self.unreachable.append,
            on_snapshot_status=lambda peer, ok: self.snapshot_status.append((peer, ok)),
            on_snapshot=lambda msg, path: self.on_snapshot(msg, path),
            snapshot_dir=str(self.snapshot_dir),
            **kwargs,
        )

    def _keep_snapshot(self, msg: Message, path: str) -> None:
        self.snapshots.append((msg, path))

    def from_(self, peer: int) -> list[Message]:
        return [m for m in self.received if m.from_ == peer]


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


async def start_cluster(
    tmp: Path, ids: tuple[int, ...], only: dict[int, dict[str, Any]] | None = None, **kwargs: Any
) -> dict[int, Member]:
    """Members on free ports, each knowing the others; `only` adds arguments for one member."""
    ports = {i: free_port() for i in ids}
    members = {
        i: Member(
            i, ports[i], {j: [url(ports[j])] for j in ids if j != i}, tmp,
            **kwargs, **(only or {}).get(i, {}),
        )
        for i in ids
    }
    for m in members.values():
        await m.transport.start()
    # Members start one after another, so early dials can fail and back off; the tests
    # below are about steady state, so wait until every stream is up.
    await wait_until(
        lambda: all(
            m.transport.active_since(j) is not None for m in members.values() for j in ids
            if j != m.member_id
        )
    )
    for m in members.values():
        m.unreachable.clear()  # reports from those early dials
    return members


async def stop_all(members: dict[int, Member]) -> None:
    for m in members.values():
        await m.transport.stop()


def network_messages(frm: int, to: int) -> list[Message]:
    """One message of every type that crosses the network, in a fixed order."""
    ents = tuple(Entry(3, 10 + i, data=f"v{i}".encode() * 10) for i in range(200))
    snap = Snapshot(SnapshotMetadata(9, 2, ConfState(voters=(A, B, C))), b"")
    out = []
    for t in MessageType:
        if t in LOCAL_MESSAGE_TYPES:
            continue
        out.append(
            Message(
                t, to=to, from_=frm, term=3, log_term=2, index=9, commit=8,
                entries=ents if t is MessageType.APP else (),
                snapshot=snap if t is MessageType.SNAP else None,
                reject=t is MessageType.APP_RESP, reject_hint=7, context=b"ctx",
            )
        )
    return out


def test_three_members_exchange_every_message_type(tmp_path: Path) -> None:
    async def main() -> None:
        members = await start_cluster(tmp_path, (A, B, C))
        try:
            expected: dict[tuple[int, int], list[Message]] = {}
            for frm in (A, B, C):
                batch = []
                for to in (A, B, C):
                    if to != frm:
                        expected[(frm, to)] = network_messages(frm, to) * 3
                        batch += expected[(frm, to)]
                members[frm].transport.send(batch)
            await wait_until(lambda: all(len(m.received) == 2 * 14 * 3 for m in members.values()))
            for (frm, to), msgs in expected.items():
                # Per-peer order is kept (one TCP stream), and every field survives.
                assert members[to].from_(frm) == msgs
            assert not any(m.unreachable for m in members.values())
            sent = DEFAULT_REGISTRY.get("etcd_network_peer_sent_bytes_total")
            assert sent is not None and f'To="{B:x}"' in "\n".join(sent.render())
        finally:
            await stop_all(members)

    run(main())


def test_snapshot_streams_a_20mb_body_in_chunks(tmp_path: Path) -> None:
    body = tmp_path / "body.snap"
    digest = hashlib.sha256()
    with open(body, "wb") as f:
        for _ in range(20):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            f.write(chunk)
    meta = SnapshotMetadata(index=500, term=4, conf_state=ConfState(voters=(A, B), learners=(C,)))
    msg = Message(MessageType.SNAP, to=B, from_=A, term=4, snapshot=Snapshot(meta, b"inline"))

    async def main() -> None:
        members = await start_cluster(tmp_path, (A, B))
        try:
            tracemalloc.start()
            members[A].transport.send_snapshot(msg, str(body))
            # One snapshot per peer at a time: a second one fails at once.
            members[A].transport.send_snapshot(msg, str(body))
            await wait_until(lambda: len(members[A].snapshot_status) == 2, 20.0)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert members[A].snapshot_status == [(B, False), (B, True)]
            # Both sides hold a few 1 MiB chunks at a time (one read or written by a worker
            # thread while the next travels), never the 20 MiB body.
            print(f"snapshot transfer: peak traced memory {peak} bytes")
            assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes"
            [(got, path)] = members[B].snapshots
            assert got.snapshot is not None
            assert got.snapshot.metadata == meta and got.snapshot.data == b""
            assert (got.type, got.from_, got.to, got.term) == (MessageType.SNAP, A, B, 4)
            received = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            assert received == digest.hexdigest()
            assert Path(path).parent == members[B].snapshot_dir
            assert not list(members[B].snapshot_dir.glob("*.part"))
        finally:
            if tracemalloc.is_tracing():
                tracemalloc.stop()
            await stop_all(members)

    run(main())


def test_snapshot_refused_by_the_receiver_reports_failure(tmp_path: Path) -> None:
    body = tmp_path / "body.snap"
    body.write_bytes(b"x" * 3_000_000)
    msg = Message(MessageType.SNAP, to=B, from_=A, term=1, snapshot=Snapshot(SnapshotMetadata(5, 1)))

    def refuse(_m: Message, _p: str) -> None:
        raise RuntimeError("cannot install")

    async def main() -> None:
        members = await start_cluster(tmp_path, (A, B))
        members[B].on_snapshot = refuse
        try:
            members[A].transport.send_snapshot(msg, str(body))
            missing = Message(MessageType.SNAP, to=0xDEAD, from_=A, snapshot=msg.snapshot)
            members[A].transport.send_snapshot(missing, str(body))  # unknown peer
            await wait_until(lambda: len(members[A].snapshot_status) == 2)
            assert sorted(members[A].snapshot_status) == [(B, False), (0xDEAD, False)]
            assert not list(members[B].snapshot_dir.iterdir())  # nothing left behind
        finally:
            await stop_all(members)

    run(main())


def test_member_of_another_cluster_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        members = await start_cluster(tmp_path, (A, B))
        a_url = url(members[A].port)
        intruder = Member(0xE5, free_port(), {A: [a_url]}, tmp_path, cluster_id=0xBAD)
        # Right cluster, but dials A's address believing it is member 0x77.
        misdirected = Member(B + 1, free_port(), {0x77: [a_url]}, tmp_path)
        try:
            await intruder.transport.start()
            await misdirected.transport.start()
            intruder.transport.send([Message(MessageType.HEARTBEAT, to=A, from_=0xE5)])
            misdirected.transport.send([Message(MessageType.HEARTBEAT, to=0x77, from_=B + 1)])
            members[B].transport.send([Message(MessageType.HEARTBEAT, to=A, from_=B)])
            await wait_until(lambda: bool(intruder.unreachable and misdirected.unreachable))
            await wait_until(lambda: len(members[A].received) == 1)
            assert members[A].received[0].from_ == B
            text = caplog.text
            assert "cluster ID mismatch" in text and "refused" in text
            assert f"stream is for member 77, this member is {A:x}" in text
        finally:
            await intruder.transport.stop()
            await misdirected.transport.stop()
            await stop_all(members)

    with caplog.at_level(logging.WARNING, logger="kvstore.transport"):
        run(main())


def test_dead_peer_does_not_block_a_live_one(tmp_path: Path) -> None:
    async def main() -> None:
        dead = 0xDD
        members = await start_cluster(tmp_path, (A, B))
        members[A].transport.add_peer(dead, [url(free_port())])  # nobody listens there
        try:
            started = time.monotonic()
            for i in range(2000):
                members[A].transport.send(
                    [
                        Message(MessageType.APP, to=dead, from_=A, index=i),
                        Message(MessageType.APP, to=B, from_=A, index=i),
                    ]
                )
                if i % 100 == 0:
                    await asyncio.sleep(0)  # let the writers run, as the node's loop would
            assert time.monotonic() - started < 2.0
            await wait_until(lambda: len(members[B].received) == 2000)
            assert [m.index for m in members[B].received] == list(range(2000))
            await wait_until(lambda: dead in members[A].unreachable)
            assert B not in members[A].unreachable
        finally:
            await stop_all(members)

    run(main())


def test_reconnects_after_the_peer_restarts(tmp_path: Path) -> None:
    async def main() -> None:
        members = await start_cluster(tmp_path, (A, B))
        try:
            members[A].transport.send([Message(MessageType.HEARTBEAT, to=B, from_=A, commit=1)])
            await wait_until(lambda: len(members[B].received) == 1)
            await members[B].transport.stop()
            # Keep sending as raft would (heartbeats): the stream notices and reports.
            await wait_until_sending(members[A], B, lambda: B in members[A].unreachable)
            restarted = Member(B, members[B].port, {A: [url(members[A].port)]}, tmp_path)
            members[B] = restarted
            await restarted.transport.start()
            await wait_until_sending(members[A], B, lambda: bool(restarted.received))
            assert restarted.received[-1].from_ == A
        finally:
            await stop_all(members)

    run(main())


async def wait_until_sending(member: Member, to: int, cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        member.transport.send([Message(MessageType.HEARTBEAT, to=to, from_=member.member_id)])
        await asyncio.sleep(0.01)


async def stalled_peer(to_id: int) -> tuple[asyncio.Server, list[asyncio.StreamWriter]]:
    """A peer that completes the handshake and then never reads again."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_frame(reader)
        writer.write(encode_frame(FrameKind.HANDSHAKE_OK, b""))
        held.append(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, held


def test_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    async def main() -> None:
        stuck = 0x57
        server, held = await stalled_peer(stuck)
        port = server.sockets[0].getsockname()[1]
        members = await start_cluster(tmp_path, (A, B), queue_messages_max=32)
        members[A].transport.add_peer(stuck, [url(port)])
        big = tuple(Entry(1, i, data=b"z" * 4096) for i in range(64))  # ~256 KiB per message
        try:
            await wait_until(lambda: bool(held))
            started = time.monotonic()
            for i in range(400):  # ~100 MiB offered: far beyond socket buffers + queue
                members[A].transport.send([Message(MessageType.APP, to=stuck, from_=A, entries=big)])
                members[A].transport.send([Message(MessageType.APP, to=B, from_=A, index=i)])
                await asyncio.sleep(0)
            assert time.monotonic() - started < 3.0
            # Reported because the queue overflowed, well before the 5 s write timeout
            # would declare the connection broken.
            await wait_until(lambda: stuck in members[A].unreachable, timeout_s=2.0)
            await wait_until(lambda: len(members[B].received) == 400)
            failures = DEFAULT_REGISTRY.get("etcd_network_peer_sent_failures_total")
            assert failures is not None and f'To="{stuck:x}"' in "\n".join(failures.render())
        finally:
            await stop_all(members)
            for w in held:
                w.close()
            server.close()

    run(main())


def test_oversized_frame_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        members = await start_cluster(tmp_path, (A, B))
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", members[A].port)
            writer.write(Handshake(CLUSTER_ID, B, A, StreamKind.MESSAGES).encode())
            kind, _ = await read_frame(reader)
            assert kind == FrameKind.HANDSHAKE_OK
            writer.write(_raw_header(200 * 1024 * 1024))
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), WAIT_S) == b""  # closed on us
            writer.close()
            # A garbage payload in a well-sized frame also costs only that connection.
            reader, writer = await asyncio.open_connection("127.0.0.1", members[A].port)
            writer.write(Handshake(CLUSTER_ID, B, A, StreamKind.MESSAGES).encode())
            await read_frame(reader)
            writer.write(encode_frame(FrameKind.MESSAGE, msgpack.packb([1, "junk"])))
            assert await asyncio.wait_for(reader.read(), WAIT_S) == b""
            writer.close()
            # Those connections claimed to be B, so A dropped B's real stream for them
            # (the newest stream from a member wins); B reconnects and traffic resumes.
            await wait_until_sending(members[B], A, lambda: bool(members[A].received))
        finally:
            await stop_all(members)

    run(main())


def _raw_header(length: int) -> bytes:
    return length.to_bytes(4, "big") + bytes([FrameKind.MESSAGE])


def test_partition_file_blocks_and_unblocks_traffic(tmp_path: Path) -> None:
    partition = tmp_path / "partition"

    async def exchange(members: dict[int, Member], tag: int) -> None:
        members[A].transport.send([Message(MessageType.HEARTBEAT, to=B, from_=A, commit=tag)])
        members[B].transport.send([Message(MessageType.HEARTBEAT, to=A, from_=B, commit=tag)])
        members[A].transport.send([Message(MessageType.HEARTBEAT, to=C, from_=A, commit=tag)])

    async def main() -> None:
        # Only A reads the file: it must cut both directions with B on its own.
        members = await start_cluster(
            tmp_path, (A, B, C), only={A: {"partition_file": str(partition)}}
        )
        a = members[A]
        try:
            await exchange(members, 1)
            await wait_until(lambda: len(members[B].received) == 1 and len(a.from_(B)) == 1)
            partition.write_text(f"{B:x}\n")
            await wait_until(lambda: a.transport.blocked_peers == {B})
            await exchange(members, 2)
            await wait_until(lambda: len(members[C].received) == 2)  # A still talks to C
            await asyncio.sleep(0.3)  # absence can only be shown by waiting a little
            assert [m.commit for m in members[B].from_(A)] == [1]
            assert [m.commit for m in a.from_(B)] == [1]
            partition.write_text("")
            await wait_until(lambda: a.transport.blocked_peers == frozenset())
            await exchange(members, 3)
            await wait_until(lambda: [m.commit for m in members[B].from_(A)] == [1, 3])
            await wait_until(lambda: [m.commit for m in a.from_(B)] == [1, 3])
        finally:
            await stop_all(members)

    run(main())



async def _snapshot_connection(port: int, frm: int, to: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(Handshake(CLUSTER_ID, frm, to, StreamKind.SNAPSHOT).encode())
    kind, _ = await read_frame(reader)
    assert kind == FrameKind.HANDSHAKE_OK
    return reader, writer


def test_snapshot_with_a_bad_checksum_is_refused_and_discarded(tmp_path: Path) -> None:
    from api.server.peer_codec import encode_message

    header = Message(MessageType.SNAP, to=A, from_=B, snapshot=Snapshot(SnapshotMetadata(7, 1)))

    async def main() -> None:
        members = await start_cluster(tmp_path, (A, B))
        try:
            reader, writer = await _snapshot_connection(members[A].port, B, A)
            writer.write(encode_frame(FrameKind.MESSAGE, encode_message(header)))
            writer.write(encode_frame(FrameKind.SNAP_CHUNK, b"a" * 1000))
            writer.write(encode_frame(FrameKind.SNAP_END, msgpack.packb([1000, 12345])))
            kind, payload = await asyncio.wait_for(read_frame(reader), WAIT_S)
            assert kind == FrameKind.SNAP_STATUS
            ok, reason = msgpack.unpackb(payload)
            assert ok is False and "checksum mismatch" in reason
            writer.close()
            assert members[A].snapshots == []
            assert list(members[A].snapshot_dir.iterdir()) == []  # the partial file is gone
            # A connection that dies half-way also leaves nothing behind.
            reader, writer = await _snapshot_connection(members[A].port, B, A)
            writer.write(encode_frame(FrameKind.MESSAGE, encode_message(header)))
            writer.write(encode_frame(FrameKind.SNAP_CHUNK, b"b" * 5000))
            await writer.drain()
            writer.close()
            await wait_until(lambda: not list(members[A].snapshot_dir.iterdir()))
            assert members[A].snapshots == []
        finally:
            await stop_all(members)

    run(main())


def test_remove_and_update_peer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        members = await start_cluster(tmp_path, (A, B))
        try:
            members[A].transport.remove_peer(B)
            # A no longer sends to B, and refuses B's stream (etcd: a removed member is 410).
            await wait_until_sending(members[A], B, lambda: B in members[A].unreachable)
            await wait_until(lambda: "was removed from the cluster" in caplog.text)
            await asyncio.sleep(0.05)
            assert members[B].received == []
            # B comes back on another port: A learns the new URL and talks to it again.
            await members[B].transport.stop()
            moved = Member(B, free_port(), {A: [url(members[A].port)]}, tmp_path)
            members[B] = moved
            await moved.transport.start()
            members[A].transport.add_peer(B, [url(members[B].port + 1)])  # a wrong URL first
            members[A].transport.update_peer(B, [url(moved.port)])
            await wait_until_sending(members[A], B, lambda: bool(moved.received))
            await wait_until_sending(moved, A, lambda: bool(members[A].from_(B)))
        finally:
            await stop_all(members)

    with caplog.at_level(logging.WARNING, logger="kvstore.transport"):
        run(main())


def test_partition_file_format() -> None:
    from api.server.transport_partition import parse_partition_file

    assert parse_partition_file("") == frozenset()
    assert parse_partition_file("a1\n# comment\n\n  B2  # trailing\n") == {0xA1, 0xB2}
    with pytest.raises(ValueError):
        parse_partition_file("not-hex\n")


def test_partition_file_keeps_its_state_on_a_malformed_file(tmp_path: Path) -> None:
    from api.server.transport_partition import PartitionFile

    path = tmp_path / "p"
    pf = PartitionFile(str(path))
    assert pf.poll() is False and pf.blocked == frozenset()  # missing file: no partition
    path.write_text("b2\n")
    assert pf.poll() is True and pf.blocked == {0xB2}
    assert pf.poll() is False
    path.write_text("b2\nzz\n")
    assert pf.poll() is False and pf.blocked == {0xB2}
    path.unlink()
    assert pf.poll() is True and pf.blocked == frozenset()
