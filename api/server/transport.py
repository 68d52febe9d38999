"""The peer transport: raft messages between cluster members over plain TCP (asyncio).

Theory of operation. Each member listens on its peer address and, for every peer, dials one
long-lived outbound MESSAGE stream (transport_stream.py; transport_wire.py describes the
frames and the handshake that refuses members of another cluster). Each direction of a pair
of members uses the dialer's connection, as etcd's stream transport does, so a member only
writes on connections it dialed and only reads on connections it accepted.

Sending (`send`) never awaits the network: it puts each message on its peer's BOUNDED queue
and returns; the peer's writer task batches whatever is queued into one write per flush.
When a queue is full, or the peer is known to be down, the message is dropped and the peer
is reported unreachable: Raft tolerates loss (the leader resends from its progress), while
blocking would let one slow or dead peer stall the node and with it every other peer.
Unreachable reports are rate-limited to one per peer per UNREACHABLE_REPORT_INTERVAL_S.

Receiving: every accepted connection starts with a handshake (checked here: cluster ID,
addressee, removed members); a MESSAGE stream then delivers each decoded message to
`on_message`, a SNAPSHOT stream is handed to transport_snapshot.py. A malformed frame from
a peer costs that connection only. The newest stream from a member replaces an older one
(which may be half-open after the peer restarted).

Callbacks (`on_message`, `on_unreachable`, `on_snapshot_status`, `on_snapshot`) run on the
event loop. Those caused by `send` / `send_snapshot` are deferred with `call_soon`, so the
node is never re-entered from inside its own call to the transport.

TEST-ONLY: `partition_file` (transport_partition.py) lets process tests cut this member off
from listed peers in both directions. It is not a production feature.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgpack

from api.server.peer_codec import PeerCodecError, decode_message
from api.server.transport_partition import PARTITION_POLL_S, PartitionFile
from api.server.transport_snapshot import receive_snapshot, send_snapshot_stream
from api.server.transport_stream import (
    CONNECT_TIMEOUT_S,
    STREAM_READ_LIMIT_BYTES,
    PeerStream,
    peer_counter,
)
from api.server.transport_wire import (
    FRAME_BYTES_MAX,
    HEADER_BYTES,
    PROTOCOL_VERSION,
    FrameKind,
    FrameSplitter,
    Handshake,
    HandshakeRefusedError,
    ProtocolError,
    StreamKind,
    TransportError,
    encode_frame,
    error_frame,
    expect_frame,
    invariant,
    parse_peer_url,
    unpack_list,
)
from raft.types import Message, MessageType

__all__ = ["Transport", "TransportError", "fetch_members"]

log = logging.getLogger("kvstore.transport")

QUEUE_MESSAGES_MAX = 4096  # etcd's streamBufSize
UNREACHABLE_REPORT_INTERVAL_S = 0.1
INBOUND_CONNECTIONS_MAX = 256
READ_CHUNK_BYTES = 256 * 1024
SNAPSHOTS_RECEIVING_MAX = 4
SNAPSHOT_BYTES_MAX = 16 * 1024**3
STOP_TIMEOUT_S = 2.0
REFUSAL_LOG_INTERVAL_S = 10.0

_RECEIVED_BYTES = peer_counter(
    "etcd_network_peer_received_bytes_total",
    "The total number of bytes received from peers.",
    "From",
)
_SNAPSHOT_SEND_SUCCESS = peer_counter(
    "etcd_network_snapshot_send_success", "Total number of successful snapshot sends", "To"
)
_SNAPSHOT_SEND_FAILURES = peer_counter(
    "etcd_network_snapshot_send_failures", "Total number of snapshot send failures", "To"
)


def _host_port(address: str) -> tuple[str, int]:
    if "://" in address:
        return parse_peer_url(address)
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class Transport:
    """Raft message transport between the members of one cluster. See the module docstring.

    How the node wires it (etcd's raftNode does the same with its rafthttp transport):

    * `on_message(msg)`: step it into the RawNode (it is addressed to this member and came
      from `msg.from_`, which the handshake vouched for).
    * `on_unreachable(peer_id)`: `report_unreachable(peer_id)` (the leader probes again).
    * `send(ready.messages)` after the Ready's entries are durable, EXCEPT MsgSnap: those go
      to `send_snapshot(msg, body_path)`, which streams the body file; the outcome arrives
      as `on_snapshot_status(peer_id, ok)` for `report_snapshot`.
    * `on_snapshot(msg, path)`: a complete, fsynced body file, now owned by the node; the
      node installs it and then steps `msg` (whose `snapshot.data` is empty). Raising
      answers "failed" to the sender, and the file is deleted.
    * `add_peer` / `remove_peer` / `update_peer` when a membership change is applied.
    """

    def __init__(
        self,
        *,
        member_id: int,
        cluster_id: int,
        listen: str,
        peers: Mapping[int, Sequence[str]],
        on_message: Callable[[Message], None],
        on_unreachable: Callable[[int], None],
        on_snapshot_status: Callable[[int, bool], None],
        on_snapshot: Callable[[Message, str], None],
        snapshot_dir: str,
        partition_file: str | None = None,
        members_provider: Callable[[], tuple[int, list[list[object]]]] | None = None,
        on_removed: Callable[[], None] | None = None,
        queue_messages_max: int = QUEUE_MESSAGES_MAX,
        snapshot_bytes_max: int = SNAPSHOT_BYTES_MAX,
        rng: random.Random | None = None,
    ) -> None:
        if member_id == 0 or cluster_id == 0:
            raise ValueError("member_id and cluster_id must be non-zero")
        if queue_messages_max < 1:
            raise ValueError("queue_messages_max must be positive")
        self.member_id = member_id
        self.cluster_id = cluster_id
        self._listen = _host_port(listen)
        self._initial_peers = {pid: tuple(urls) for pid, urls in peers.items() if pid != member_id}
        self._on_message = on_message
        self._on_unreachable = on_unreachable
        self._on_snapshot_status = on_snapshot_status
        self._on_snapshot = on_snapshot
        self.snapshot_dir = snapshot_dir
        self.partition_file = partition_file
        self._members_provider = members_provider
        self._on_removed = on_removed
        self.queue_messages_max = queue_messages_max
        self.snapshot_bytes_max = snapshot_bytes_max
        self._rng = rng if rng is not None else random.Random()
        self._streams: dict[int, PeerStream] = {}
        self._removed: set[int] = set()
        self._last_unreachable: dict[int, float] = {}
        self._refusals_logged: dict[tuple[int, str], float] = {}
        self._blocked_ids: frozenset[int] = frozenset()
        self._partition = PartitionFile(partition_file) if partition_file is not None else None
        self._server: asyncio.Server | None = None
        self._inbound: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[object]] = set()
        self._inbound_by_peer: dict[int, asyncio.StreamWriter] = {}
        self._snapshots_sending: dict[int, asyncio.Task[None]] = {}
        self._snapshots_receiving: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        host, port = self._listen
        self._poll_partition()
        self._server = await asyncio.start_server(
            self._accept, host, port, limit=STREAM_READ_LIMIT_BYTES, reuse_address=True
        )
        for peer_id, urls in self._initial_peers.items():
            self.add_peer(peer_id, urls)
        if self.partition_file is not None:
            log.warning("TEST-ONLY partition file %s is active", self.partition_file)
            self._spawn(self._poll_partition_file(), "partition-file")

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually listened on (useful when started on port 0)."""
        invariant(self._server is not None, "transport not started")
        assert self._server is not None  # for mypy; checked above
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    def active_since(self, peer_id: int) -> float | None:
        """When (time.monotonic()) the outbound stream to `peer_id` was established, or None
        if it is not up now (etcd's Transport.ActiveSince, for quorum-connectivity checks)."""
        stream = self._streams.get(peer_id)
        return stream.active_since if stream is not None else None

    @property
    def blocked_peers(self) -> frozenset[int]:
        """Peers the TEST-ONLY partition file currently blocks (empty without one)."""
        return self._blocked_ids

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            self._server.close()
        tasks = [s.task for s in self._streams.values() if s.task is not None]
        tasks += [*self._tasks, *self._snapshots_sending.values()]
        for stream in self._streams.values():
            stream.close()
        for writer in list(self._inbound):
            writer.close()
        for task in tasks:
            task.cancel()
        # Connection handlers are not cancelled (asyncio's stream server logs a cancelled
        # handler as an error): their connections are closed, so they return on their own.
        waiting: list[asyncio.Task[Any]] = [*tasks, *self._handlers]
        if waiting:
            # Bounded: a task that swallowed its cancellation must not hang shutdown.
            _done, pending = await asyncio.wait(waiting, timeout=STOP_TIMEOUT_S)
            if pending:
                log.error("peer transport tasks did not stop: %s", [t.get_name() for t in pending])
        self._streams.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def _spawn(self, coro: object, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ membership

    def add_peer(self, peer_id: int, urls: Sequence[str]) -> None:
        """Start streaming to a peer (idempotent; a known peer keeps its connection)."""
        if peer_id == self.member_id or peer_id in self._streams or self._stopped:
            return
        self._removed.discard(peer_id)
        stream = PeerStream(
            peer_id=peer_id, urls=urls, cluster_id=self.cluster_id, member_id=self.member_id,
            queue_messages_max=self.queue_messages_max, rng=self._rng,
            report_unreachable=self._report_unreachable, blocked_ids=lambda: self._blocked_ids,
            on_refused=self._refused,
        )
        self._streams[peer_id] = stream
        stream.start()

    def _refused(self, reason: str) -> None:
        # A peer tells us we were removed (etcd's 410 Gone): the member must stop.
        if reason.startswith("member_removed") and self._on_removed is not None:
            self._on_removed()

    def remove_peer(self, peer_id: int) -> None:
        """Stop streaming to a peer and refuse its connections from now on (etcd answers a
        removed member with 410 Gone)."""
        self._removed.add(peer_id)
        stream = self._streams.pop(peer_id, None)
        if stream is not None:
            stream.close()
        inbound = self._inbound_by_peer.pop(peer_id, None)
        if inbound is not None:
            inbound.close()

    def update_peer(self, peer_id: int, urls: Sequence[str]) -> None:
        """New peer URLs: reconnect the stream to the new address."""
        if peer_id in self._streams:
            self._streams.pop(peer_id).close()
        self.add_peer(peer_id, urls)

    # ------------------------------------------------------------------ sending

    def send(self, messages: Sequence[Message]) -> None:
        """Queue messages for their peers; never waits. A message that cannot be queued is
        dropped and its peer reported unreachable. A MsgSnap sent here travels inline (its
        data must fit in a frame); snapshots with a body file go through send_snapshot."""
        blocked = self._blocked_ids
        streams = self._streams
        touched: set[PeerStream] = set()
        for msg in messages:
            to = msg.to
            if to in blocked:
                continue  # test partition
            stream = streams.get(to)
            if stream is None:
                log.debug("dropped %s to unknown peer %x", msg.type.value, to)
                self._report_unreachable(to)
            elif stream.enqueue(msg):
                touched.add(stream)
            else:
                stream.sent_failures.inc()
                self._report_unreachable(to)
        for stream in touched:
            stream.flush()

    def _report_unreachable(self, peer_id: int) -> None:
        now = time.monotonic()
        if now - self._last_unreachable.get(peer_id, -1e9) < UNREACHABLE_REPORT_INTERVAL_S:
            return
        self._last_unreachable[peer_id] = now
        asyncio.get_running_loop().call_soon(self._on_unreachable, peer_id)

    def send_snapshot(self, message: Message, body_path: str) -> None:
        """Stream a MsgSnap and its body file to `message.to` on a separate connection, then
        report `on_snapshot_status(message.to, ok)`. One snapshot per peer at a time: a second
        one while the first is in flight fails at once."""
        if message.type is not MessageType.SNAP or message.snapshot is None:
            raise ValueError(f"send_snapshot needs a MsgSnap with a snapshot, got {message.type}")
        to = message.to
        loop = asyncio.get_running_loop()
        stream = self._streams.get(to)
        if stream is None or to in self._snapshots_sending or to in self._blocked_ids:
            log.warning("cannot send a snapshot to peer %x now", to)
            _SNAPSHOT_SEND_FAILURES.labels(f"{to:x}").inc()
            loop.call_soon(self._on_snapshot_status, to, False)
            return
        task = asyncio.create_task(
            self._send_snapshot(stream, message, body_path), name=f"snapshot-to-{to:x}"
        )
        self._snapshots_sending[to] = task
        task.add_done_callback(lambda _t: self._snapshots_sending.pop(to, None))

    async def _send_snapshot(self, stream: PeerStream, message: Message, body_path: str) -> None:
        to = message.to
        host, port = stream.urls[0]
        ok = False
        try:
            await send_snapshot_stream(
                host=host, port=port, cluster_id=self.cluster_id, member_id=self.member_id,
                message=message, body_path=body_path,
            )
            ok = True
            log.info("sent snapshot %s to peer %x", body_path, to)
        except (OSError, TimeoutError, TransportError, asyncio.IncompleteReadError, ValueError) as exc:
            log.warning("failed to send the snapshot to peer %x: %r", to, exc)
        except Exception:  # a bug; raft must still hear the outcome or it waits forever
            log.exception("failed to send the snapshot to peer %x", to)
        (_SNAPSHOT_SEND_SUCCESS if ok else _SNAPSHOT_SEND_FAILURES).labels(f"{to:x}").inc()
        self._on_snapshot_status(to, ok)

    # ------------------------------------------------------------------ receiving

    def _check_handshake(self, hs: Handshake) -> tuple[str, str] | None:
        if hs.version != PROTOCOL_VERSION:
            return "version", f"unsupported peer protocol version {hs.version}"
        if hs.stream_kind == StreamKind.MEMBERS:
            if self._members_provider is None:
                return "stream_kind", "this member does not publish its member list"
            return None
        if hs.cluster_id != self.cluster_id:
            return "cluster_id_mismatch", (
                f"cluster ID mismatch: local {self.cluster_id:x}, remote {hs.cluster_id:x}"
            )
        if hs.to_id != self.member_id:
            return "member_id_mismatch", (
                f"stream is for member {hs.to_id:x}, this member is {self.member_id:x}"
            )
        if hs.from_id in self._removed:
            return "member_removed", f"member {hs.from_id:x} was removed from the cluster"
        if hs.from_id == self.member_id:
            return "member_id_mismatch", "a member cannot stream to itself"
        if hs.stream_kind == StreamKind.SNAPSHOT:
            if hs.from_id in self._blocked_ids:
                return "partitioned", "test partition"
            if (
                hs.from_id in self._snapshots_receiving
                or len(self._snapshots_receiving) >= SNAPSHOTS_RECEIVING_MAX
            ):
                return "busy", "too many snapshots in flight"
        elif hs.stream_kind != StreamKind.MESSAGES:
            return "stream_kind", f"unknown stream kind {hs.stream_kind}"
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._inbound) >= INBOUND_CONNECTIONS_MAX or self._stopped:
            writer.close()
            return
        self._inbound.add(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        peer = writer.get_extra_info("peername")
        from_id = 0
        try:
            hs = Handshake.decode(
                await expect_frame(reader, FrameKind.HANDSHAKE, timeout_s=CONNECT_TIMEOUT_S)
            )
            refusal = self._check_handshake(hs)
            if refusal is not None:
                self._log_refusal(hs.from_id, refusal, peer)
                writer.write(error_frame(*refusal))
                await asyncio.wait_for(writer.drain(), CONNECT_TIMEOUT_S)
                return
            from_id = hs.from_id
            writer.write(encode_frame(FrameKind.HANDSHAKE_OK, b""))
            if hs.stream_kind == StreamKind.MEMBERS and self._members_provider is not None:
                payload = msgpack.packb(list(self._members_provider()))
                writer.write(encode_frame(FrameKind.MEMBERS, payload))
                await asyncio.wait_for(writer.drain(), CONNECT_TIMEOUT_S)
            elif hs.stream_kind == StreamKind.SNAPSHOT:
                self._snapshots_receiving.add(from_id)
                try:
                    await receive_snapshot(
                        reader, writer, from_id=from_id, snapshot_dir=self.snapshot_dir,
                        on_snapshot=self._on_snapshot, snapshot_bytes_max=self.snapshot_bytes_max,
                    )
                finally:
                    self._snapshots_receiving.discard(from_id)
            else:
                await self._read_messages(from_id, reader, writer)
        except (ProtocolError, PeerCodecError, HandshakeRefusedError) as exc:
            log.warning("closed the peer connection from %s (member %x): %s", peer, from_id, exc)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("peer connection from %s (member %x) ended: %r", peer, from_id, exc)
        finally:
            if handler is not None:
                self._handlers.discard(handler)
            self._inbound.discard(writer)
            if self._inbound_by_peer.get(from_id) is writer:
                del self._inbound_by_peer[from_id]
            writer.close()

    def _log_refusal(self, from_id: int, refusal: tuple[str, str], peer: object) -> None:
        """Log a refused handshake, once per sender and reason per REFUSAL_LOG_INTERVAL_S:
        the refused member retries every second."""
        now = time.monotonic()
        key = (from_id, refusal[0])
        if now - self._refusals_logged.get(key, -1e9) < REFUSAL_LOG_INTERVAL_S:
            return
        if len(self._refusals_logged) >= 1024:
            self._refusals_logged.clear()  # bounded, whatever the peers send
        self._refusals_logged[key] = now
        log.warning("refused a peer connection from %s (member %x): %s", peer, from_id, refusal[1])

    async def _read_messages(
        self, from_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # A peer that restarted dials again while we may still hold its old, half-open
        # connection: the newest stream wins, the old one is closed.
        old = self._inbound_by_peer.get(from_id)
        if old is not None:
            old.close()
        self._inbound_by_peer[from_id] = writer
        received = _RECEIVED_BYTES.labels(f"{from_id:x}")
        on_message = self._on_message
        splitter = FrameSplitter()
        while True:
            data = await reader.read(READ_CHUNK_BYTES)
            if not data:
                raise asyncio.IncompleteReadError(b"", splitter.pending_bytes or None)
            for kind, payload in splitter.feed(data):
                if kind != FrameKind.MESSAGE:
                    raise ProtocolError(f"unexpected frame kind {kind} on a message stream")
                received.inc(len(payload) + HEADER_BYTES)
                if from_id in self._blocked_ids:
                    continue  # test partition
                msg = decode_message(payload)
                if msg.from_ != from_id or msg.to != self.member_id:
                    raise ProtocolError(
                        f"message {msg.from_:x}->{msg.to:x} on the stream "
                        f"{from_id:x}->{self.member_id:x}"
                    )
                try:
                    on_message(msg)
                except Exception:  # a node bug must not take the connection down with it
                    log.exception("on_message failed for %s from %x", msg.type.value, from_id)

    # ------------------------------------------------------------------ test partition

    def _poll_partition(self) -> None:
        if self._partition is not None and self._partition.poll():
            self._blocked_ids = self._partition.blocked
            log.warning(
                "TEST-ONLY partition: member %x now blocks %s",
                self.member_id, sorted(f"{i:x}" for i in self._blocked_ids),
            )

    async def _poll_partition_file(self) -> None:
        while not self._stopped:
            await asyncio.sleep(PARTITION_POLL_S)
            self._poll_partition()


async def fetch_members(peer_urls: Sequence[str]) -> tuple[int, list[list[Any]]]:
    """Ask the first reachable peer for (cluster_id, members): how a member joining with
    --initial-cluster-state=existing learns the cluster ID and its own member ID."""
    errors: list[str] = []
    for url in peer_urls:
        try:
            host, port = parse_peer_url(url)
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError, ValueError) as exc:
            errors.append(f"{url}: {exc!r}")
            continue
        try:
            writer.write(Handshake(0, 0, 0, StreamKind.MEMBERS).encode())
            await expect_frame(reader, FrameKind.HANDSHAKE_OK, timeout_s=CONNECT_TIMEOUT_S)
            payload = await expect_frame(
                reader, FrameKind.MEMBERS, timeout_s=CONNECT_TIMEOUT_S, bytes_max=FRAME_BYTES_MAX
            )
            cluster_id, members = unpack_list(payload, 2)
            if type(cluster_id) is not int or type(members) is not list:
                raise ProtocolError("malformed member list")
            return cluster_id, members
        except (OSError, TimeoutError, TransportError, asyncio.IncompleteReadError) as exc:
            errors.append(f"{url}: {exc!r}")
        finally:
            writer.close()
    raise TransportError("could not fetch the member list: " + "; ".join(errors))
