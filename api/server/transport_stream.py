"""One outbound MESSAGE stream to one peer: a bounded pending list, a writer task, reconnects.

Theory of operation. `PeerStream.enqueue` is called from `Transport.send` and never waits:
it appends the message to a bounded pending list or refuses it (the caller then drops it and
reports the peer unreachable). Once a send's messages are queued, `Transport.send` calls
`flush`, which encodes everything pending for the peer and writes it with one `write()`
right there: one system call per peer per Ready, and no task switch between the node loop
and the socket. The writer task (`_run`) owns the connection:

    connecting --handshake ok--> streaming --write error / EOF--> backoff --timer--> connecting
        `----------refused or failed-------------------------------^

While streaming, it only wakes when there is something `flush` cannot do itself: the kernel
left bytes in the transport's buffer (the task drains them, with a timeout: a peer that
stops reading is treated as a broken connection, and while it drains new messages stay
pending and, once the list is full, are dropped), or the connection broke.

Messages are accepted while connecting or streaming; during backoff they are refused at once
and whatever was pending is dropped, because it would be stale by the time the peer is back
and Raft resends from the leader's progress anyway. Backoff starts at BACKOFF_MIN_S and
doubles to BACKOFF_MAX_S, scaled by a random factor in [0.5, 1) so members do not reconnect
in lock step.

The peer never writes on this connection after its HANDSHAKE_OK, so a monitor task reads
it: EOF (or any byte) means the stream is over, noticed at once instead of at a later write.

Stopping: `close()` sets `closed` before cancelling the task, and the loop checks it, so
the stream ends even if a cancellation is swallowed by `asyncio.wait_for` (a known race in
Python 3.11 when the awaited operation completes at the same moment).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence

from api.server.metrics import DEFAULT_REGISTRY, Counter
from api.server.peer_codec import encode_message
from api.server.transport_wire import (
    FRAME_BYTES_MAX,
    FrameKind,
    Handshake,
    HandshakeRefusedError,
    StreamKind,
    TransportError,
    expect_frame,
    frame_header,
    invariant,
    parse_peer_url,
)
from raft.types import Message

__all__ = ["PeerStream", "peer_counter"]

log = logging.getLogger("kvstore.transport")

BACKOFF_MIN_S = 0.05
# Capped low, as etcd retries its peer streams every 100 ms: a member being added or
# restarted opens its port within a second, and a longer wait there (up to 1 s before)
# went straight into catch-up and failover times. A refused connect costs microseconds.
BACKOFF_MAX_S = 0.2
CONNECT_TIMEOUT_S = 2.0
WRITE_TIMEOUT_S = 5.0
STREAM_READ_LIMIT_BYTES = 64 * 1024


def peer_counter(name: str, help_text: str, label: str) -> Counter:
    """A counter family with one peer label, registered once per process (etcd's names)."""
    existing = DEFAULT_REGISTRY.get(name)
    if isinstance(existing, Counter):
        return existing
    return DEFAULT_REGISTRY.counter(name, help_text, (label,))


_SENT_BYTES = peer_counter(
    "etcd_network_peer_sent_bytes_total", "The total number of bytes sent to peers.", "To"
)
_SENT_FAILURES = peer_counter(
    "etcd_network_peer_sent_failures_total", "The total number of send failures from peers.", "To"
)


class PeerStream:
    """The outbound MESSAGE stream to one peer. See the module docstring."""

    def __init__(
        self,
        *,
        peer_id: int,
        urls: Sequence[str],
        cluster_id: int,
        member_id: int,
        queue_messages_max: int,
        rng: random.Random,
        report_unreachable: Callable[[int], None],
        blocked_ids: Callable[[], frozenset[int]],
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.peer_id = peer_id
        self._on_refused = on_refused
        self.urls = [parse_peer_url(u) for u in urls]
        invariant(bool(self.urls), f"peer {peer_id:x} has no URL")
        self._cluster_id = cluster_id
        self._member_id = member_id
        self._rng = rng
        self._report_unreachable = report_unreachable
        self._blocked_ids = blocked_ids
        self._pending: list[Message] = []
        self._pending_max = queue_messages_max
        self._wake = asyncio.Event()  # the writer task has work: drain, or a broken stream
        self._draining = False  # bytes wait in the transport's buffer: flush must wait
        self.accepting = True  # false during backoff: messages are refused at once
        self.closed = False
        self.active_since: float | None = None  # monotonic time the current stream started
        self._broken = False
        self._healthy = True  # to log state changes once, not every retry
        self._last_refusal = ""
        self._writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.sent_bytes = _SENT_BYTES.labels(f"{peer_id:x}")
        self.sent_failures = _SENT_FAILURES.labels(f"{peer_id:x}")

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"peer-stream-{self.peer_id:x}")

    def close(self) -> None:
        self.closed = True
        self.accepting = False
        if self._writer is not None:
            self._writer.close()
        if self.task is not None:
            self.task.cancel()

    def enqueue(self, msg: Message) -> bool:
        if not self.accepting or len(self._pending) >= self._pending_max:
            return False
        self._pending.append(msg)
        return True

    def flush(self) -> None:
        """Write what is pending now, unless the stream is not up or is draining."""
        if self._pending and self._writer is not None and not self._draining:
            try:
                self._write_pending(self._writer)
            except Exception:  # a bug here must not reach the node loop: fail the stream
                log.exception("stream writer to peer %x failed", self.peer_id)
                self._broken = True
                self._wake.set()

    def _drop_queued(self) -> None:
        if self._pending:
            self.sent_failures.inc(len(self._pending))
            self._pending = []

    def _failed(self, what: str, exc: BaseException) -> None:
        self.accepting = False
        self.active_since = None
        self._drop_queued()
        self._report_unreachable(self.peer_id)
        if self._healthy:
            self._healthy = False
            log.warning("lost the stream to peer %x (%s: %r)", self.peer_id, what, exc)
        else:
            log.debug("stream to peer %x still failing (%s: %r)", self.peer_id, what, exc)

    async def _run(self) -> None:
        backoff_s = BACKOFF_MIN_S
        attempt = 0
        while not self.closed:
            host, port = self.urls[attempt % len(self.urls)]
            attempt += 1
            self.accepting, self._broken = True, False
            try:
                reader, writer = await self._connect(host, port)
            except (OSError, TimeoutError, TransportError, asyncio.IncompleteReadError) as exc:
                self._failed("connect", exc)
                await asyncio.sleep(backoff_s * self._rng.uniform(0.5, 1.0))
                backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
                continue
            backoff_s = BACKOFF_MIN_S
            self._writer = writer
            self.active_since = time.monotonic()
            if not self._healthy:
                log.info("established the stream to peer %x", self.peer_id)
                self._healthy = True
            monitor = asyncio.create_task(self._monitor(reader, writer))
            try:
                await self._pump(writer)
            except (OSError, TimeoutError, ConnectionError) as exc:
                self._failed("write", exc)
                await asyncio.sleep(BACKOFF_MIN_S * self._rng.uniform(0.5, 1.0))
            except Exception as exc:  # a bug here must not silence the peer for good
                log.exception("stream writer to peer %x failed", self.peer_id)
                self._failed("bug", exc)
                await asyncio.sleep(BACKOFF_MAX_S)
            finally:
                self.active_since = None
                self._writer = None
                monitor.cancel()
                writer.close()
        self.accepting = False

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=STREAM_READ_LIMIT_BYTES), CONNECT_TIMEOUT_S
        )
        try:
            hello = Handshake(self._cluster_id, self._member_id, self.peer_id, StreamKind.MESSAGES)
            writer.write(hello.encode())
            await expect_frame(reader, FrameKind.HANDSHAKE_OK, timeout_s=CONNECT_TIMEOUT_S)
        except HandshakeRefusedError as exc:
            writer.close()
            # A refusal is a configuration error (wrong cluster, wrong member): log it as an
            # error, once per distinct reason rather than once per retry.
            if str(exc) != self._last_refusal:
                self._last_refusal = str(exc)
                log.error("peer %x at %s:%d refused our stream: %s", self.peer_id, host, port, exc)
            if self._on_refused is not None:
                self._on_refused(str(exc))
            raise
        except BaseException:
            writer.close()
            raise
        self._last_refusal = ""
        return reader, writer

    async def _monitor(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            await reader.read(1)
        self._broken = True
        writer.close()
        self._wake.set()

    async def _pump(self, writer: asyncio.StreamWriter) -> None:
        """The writer task's part while streaming: first send what queued up while
        connecting, then drain whenever `flush` left bytes behind."""
        self._draining = False
        self._wake.set()
        while not self.closed:
            await self._wake.wait()
            self._wake.clear()
            if self._broken:
                raise ConnectionResetError("peer closed the stream")
            if self._draining:
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
                self._draining = False
            if self._pending:
                self._write_pending(writer)

    def _write_pending(self, writer: asyncio.StreamWriter) -> None:
        batch, self._pending = self._pending, []
        if self.peer_id in self._blocked_ids():
            return  # TEST-ONLY partition: also drop what was queued before it
        frames = []
        for msg in batch:
            try:
                payload = encode_message(msg)
                if len(payload) > FRAME_BYTES_MAX:
                    raise ValueError(f"{len(payload)} bytes exceed the frame limit")
            except ValueError as exc:  # a value the wire cannot carry: a bug upstream
                log.error("dropped an unencodable %s to %x: %s", msg.type.value, self.peer_id, exc)
                self.sent_failures.inc()
                continue
            frames.append(frame_header(FrameKind.MESSAGE, len(payload)))
            frames.append(payload)
        if not frames:
            return
        data = b"".join(frames)
        writer.write(data)
        self.sent_bytes.inc(len(data))
        # The kernel usually takes the whole batch at once; bytes it left in the transport's
        # buffer make the writer task drain before anything more is written.
        if writer.transport.get_write_buffer_size():
            self._draining = True
            self._wake.set()
