"""etcdserverpb.Watch: one bidirectional stream multiplexing many watchers on the hub.

Theory of operation
-------------------
A stream (`_WatchStream`) owns the watchers it created on the shared `WatchHub` and a
single ordered output: control responses (created, canceled, progress) go to a FIFO; the
hub reports watchers with something to take through `on_ready`. One sender loop, the
servicer's async generator, first drains the control FIFO and then takes from ready
watchers, so a watcher's `created` response is always written before its first event,
and its compaction cancel after its last buffered event (the hub orders those). A reader
task turns requests into hub calls and control responses. Backpressure is the hub's: a
watcher the sender does not drain fast enough becomes a victim and is caught up from the
store later, so nothing here buffers without bound.

etcd 3.4 behaviour reproduced (v3rpc/watch.go, mvcc/watcher.go):

* create: empty key means b"\\0"; range_end b"\\0" means every key >= key; a range with
  key >= range_end fails "mvcc: watcher range is empty"; watch_id 0 asks the stream to pick
  the lowest free ID counting from 0; an ID already in use fails with
  "mvcc: duplicate watch ID provided on the WatchStream". A failure is answered as
  created=true, canceled=true, watch_id=-1 and the reason; success as created=true with
  the header revision the store had at creation.
* a start revision at or below the compact revision: created, then canceled with
  `compact_revision` set and header revision 0 (clientv3 turns it into ErrCompacted).
* cancel: canceled=true for a known ID; an unknown ID gets no answer.
* progress request: watch_id=-1 and a header revision R such that no event with revision
  <= R is still to come on this stream. Unlike etcd 3.4 (bug etcd#15220) the answer waits
  until every watcher of the stream is synced and drained, as etcd 3.5.8+ does.
* progress_notify watchers get an empty response every --experimental-watch-progress-
  notify-interval when they are synced and had no events since the previous tick.
* fragment: a response larger than --max-request-bytes + 512 KiB is split into several
  responses with fragment=true on all but the last (never splitting below one event).
* hasleader=true metadata: the stream ends with "etcdserver: no leader" once the member
  has no leader (checked at the start and every `leader_check_interval_s`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from api.grpc._common import ServiceLimits, header_pb, require_leader, stream_rpc
from api.grpc.watch_wire import WatchResponseEncoder
from api.proto import rpc_pb2, rpc_pb2_grpc
from api.service.backend import Backend, Header, NoLeaderError
from api.service.convert import event_to_pb
from kvstore.errors import KvError
from kvstore.watch import WatchBatch, Watcher, WatchFilter

__all__ = [
    "DUPLICATE_WATCH_ID",
    "EMPTY_WATCHER_RANGE",
    "WatchServicer",
    "fragment_response",
]

DUPLICATE_WATCH_ID = "mvcc: duplicate watch ID provided on the WatchStream"
EMPTY_WATCHER_RANGE = "mvcc: watcher range is empty"
# etcd's fragment threshold is the gRPC receive limit: --max-request-bytes + 512 KiB.
FRAGMENT_OVERHEAD_BYTES = 512 * 1024
# Events per response when taking from a watcher (whole revisions are never split).
TAKE_EVENTS_MAX = 1000
INVALID_WATCH_ID = -1
PROGRESS_POLL_S = 0.05
# Control responses queued before the reader stops taking requests (a client that sends
# creates without reading answers must not grow the queue without bound).
CONTROL_QUEUE_MAX = 1024


def fragment_response(
    response: rpc_pb2.WatchResponse, limit_bytes: int
) -> list[rpc_pb2.WatchResponse]:
    """Split `response` as etcd's sendFragments does: each part stays under limit_bytes
    unless it holds a single event; every part but the last has fragment=true."""
    if response.ByteSize() < limit_bytes or len(response.events) < 2:
        return [response]
    events = list(response.events)
    base = rpc_pb2.WatchResponse()
    base.CopyFrom(response)
    del base.events[:]
    parts: list[rpc_pb2.WatchResponse] = []
    i = 0
    while i < len(events):
        part = rpc_pb2.WatchResponse()
        part.CopyFrom(base)
        part.fragment = True
        while i < len(events):
            part.events.append(events[i])
            if len(part.events) > 1 and part.ByteSize() >= limit_bytes:
                del part.events[-1]
                break
            i += 1
        parts.append(part)
    parts[-1].fragment = False
    return parts


class _WatchStream:
    """The state of one Watch RPC (see the module docstring)."""

    def __init__(
        self, backend: Backend, limits: ServiceLimits, encoder: WatchResponseEncoder
    ) -> None:
        self.backend = backend
        self.encoder = encoder
        self.hub = backend.hub
        self.limits = limits
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.watchers: dict[int, Watcher] = {}
        self.next_id = 0
        self.control: deque[rpc_pb2.WatchResponse] = deque()
        self.ready: dict[Watcher, None] = {}
        self.wake = asyncio.Event()
        # etcd's sws.progress: True = no events sent to that watcher since the last tick.
        self.progress_idle: dict[int, bool] = {}
        self.fragment_ids: set[int] = set()
        self.progress_requested = False
        self.error: BaseException | None = None
        self.control_drained = asyncio.Event()
        self.control_drained.set()

    # --- hub callbacks --------------------------------------------------------------------

    def on_ready(self, w: Watcher) -> None:
        if threading.get_ident() != self.loop_thread:
            self.loop.call_soon_threadsafe(self._mark_ready, w)
        else:
            self._mark_ready(w)

    def _mark_ready(self, w: Watcher) -> None:
        if self.watchers.get(w.watch_id) is w:
            self.ready[w] = None
            self.wake.set()

    # --- requests ---------------------------------------------------------------------------

    def _control(self, response: rpc_pb2.WatchResponse) -> None:
        self.control.append(response)
        if len(self.control) >= CONTROL_QUEUE_MAX:
            self.control_drained.clear()
        self.wake.set()

    def handle(self, request: rpc_pb2.WatchRequest) -> None:
        which = request.WhichOneof("request_union")
        if which == "create_request":
            self._create(request.create_request)
        elif which == "cancel_request":
            self._cancel(request.cancel_request.watch_id)
        elif which == "progress_request":
            self.progress_requested = True
            self.wake.set()
        # etcd ignores an empty request.

    def _create(self, creq: rpc_pb2.WatchCreateRequest) -> None:
        key = creq.key or b"\x00"
        range_end = creq.range_end
        revision = self.backend.header().revision
        watch_id = creq.watch_id
        error: str | None = None
        if range_end and range_end != b"\x00" and key >= range_end:
            error = EMPTY_WATCHER_RANGE
        elif watch_id != 0 and watch_id in self.watchers:
            error = DUPLICATE_WATCH_ID
        if error is None:
            if watch_id == 0:
                while self.next_id in self.watchers:
                    self.next_id += 1
                watch_id = self.next_id
                self.next_id += 1
            filters = [WatchFilter(f) for f in creq.filters if f in (0, 1)]
            try:
                # Register first so a watcher the hub reports ready at once (compacted start)
                # is recognised by _mark_ready; `created` is queued before any take().
                w = self.hub.watch(
                    key=key,
                    range_end=range_end,
                    start_revision=creq.start_revision,
                    prev_kv=creq.prev_kv,
                    filters=filters,
                    progress_notify=creq.progress_notify,
                    watch_id=watch_id,
                    on_ready=self.on_ready,
                )
            except (KvError, ValueError) as exc:
                error = str(exc)
            else:
                self.watchers[watch_id] = w
                if creq.progress_notify:
                    self.progress_idle[watch_id] = True
                if creq.fragment:
                    self.fragment_ids.add(watch_id)
                self._control(
                    rpc_pb2.WatchResponse(
                        header=header_pb(self.backend, revision), watch_id=watch_id, created=True
                    )
                )
                # The hub may have reported it ready during watch(); now it is registered.
                if w.buffered_events or w.state == "compacted":
                    self._mark_ready(w)
                return
        self._control(
            rpc_pb2.WatchResponse(
                header=header_pb(self.backend, revision),
                watch_id=INVALID_WATCH_ID,
                created=True,
                canceled=True,
                cancel_reason=error or "",
            )
        )

    def _forget(self, watch_id: int) -> Watcher | None:
        w = self.watchers.pop(watch_id, None)
        if w is not None:
            self.ready.pop(w, None)
            self.progress_idle.pop(watch_id, None)
            self.fragment_ids.discard(watch_id)
        return w

    def _cancel(self, watch_id: int) -> None:
        w = self._forget(watch_id)
        if w is None:
            return
        self.hub.cancel(w)
        self._control(
            rpc_pb2.WatchResponse(header=header_pb(self.backend), watch_id=watch_id, canceled=True)
        )

    async def read(self, request_iterator: AsyncIterator[rpc_pb2.WatchRequest]) -> None:
        try:
            async for request in request_iterator:
                self.handle(request)
                await self.control_drained.wait()
        except Exception as exc:  # the client stream broke: end the RPC with its error
            self.error = exc
            self.wake.set()
        # A half-close does not end the stream (etcd keeps sending until the client leaves).

    async def tick(self, *, check_leader: bool) -> None:
        """Periodic progress notifications, and the leader check for hasleader streams."""
        interval = self.limits.watch_progress_notify_interval_s
        progress = interval > 0  # a zero interval disables periodic progress
        if not progress and not check_leader:
            return
        next_progress = time.monotonic() + interval
        leader_step = self.limits.leader_check_interval_s
        if progress and check_leader:
            step = min(interval, leader_step)
        else:
            step = interval if progress else leader_step
        while True:
            await asyncio.sleep(max(step, 0.01))
            if check_leader and self.backend.status().leader == 0:
                self.error = NoLeaderError()
                self.wake.set()
                return
            now = time.monotonic()
            if progress and now >= next_progress:
                next_progress = now + interval
                self._progress_tick()

    def _progress_tick(self) -> None:
        for watch_id, idle in list(self.progress_idle.items()):
            w = self.watchers.get(watch_id)
            if w is None:
                continue
            if idle and self.hub.is_synced(w):
                self._control(
                    rpc_pb2.WatchResponse(
                        header=header_pb(self.backend, self.hub.progress_revision(w)),
                        watch_id=watch_id,
                    )
                )
            self.progress_idle[watch_id] = True

    # --- sending ----------------------------------------------------------------------------

    def _batch_responses(
        self, batch: WatchBatch, header: Header
    ) -> Sequence[rpc_pb2.WatchResponse | bytes]:
        if batch.events and batch.watch_id in self.progress_idle:
            self.progress_idle[batch.watch_id] = False
        if not batch.compact_revision and batch.watch_id not in self.fragment_ids:
            field = self.encoder.header_field(header.cluster_id, header.member_id,
                                              batch.revision, header.raft_term)
            return [self.encoder.events_response(field, batch.watch_id, batch.events)]
        # etcd sends its compaction cancel with header revision 0 (mvcc reports no revision).
        response = rpc_pb2.WatchResponse(
            header=header_pb(self.backend, 0 if batch.canceled else batch.revision),
            watch_id=batch.watch_id,
            events=[event_to_pb(ev) for ev in batch.events],
            compact_revision=batch.compact_revision,
            canceled=batch.canceled,
        )
        if batch.canceled:
            self._forget(batch.watch_id)
            return [response]
        limit = self.limits.max_request_bytes + FRAGMENT_OVERHEAD_BYTES
        return fragment_response(response, limit)

    def _progress_response(self) -> rpc_pb2.WatchResponse | None:
        """The answer to a pending progress request, once nothing older is left to send."""
        if not self.watchers:
            return rpc_pb2.WatchResponse(
                header=header_pb(self.backend), watch_id=INVALID_WATCH_ID
            )
        revision = None
        for w in self.watchers.values():
            if not self.hub.is_synced(w):
                return None
            r = self.hub.progress_revision(w)
            revision = r if revision is None else min(revision, r)
        return rpc_pb2.WatchResponse(
            header=header_pb(self.backend, revision), watch_id=INVALID_WATCH_ID
        )

    async def responses(self) -> AsyncIterator[rpc_pb2.WatchResponse | bytes]:
        while True:
            if self.progress_requested:
                # A deferred progress answer waits for watchers to sync; syncing without
                # events wakes nobody, so poll while one is pending.
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=PROGRESS_POLL_S)
                except TimeoutError:
                    pass
            else:
                await self.wake.wait()
            self.wake.clear()
            # One header per wake-up: IDs and term barely change, the revision is the batch's.
            header = self.backend.header()
            while True:
                if self.error is not None:
                    raise self.error
                if self.control:
                    response = self.control.popleft()
                    if len(self.control) < CONTROL_QUEUE_MAX // 2:
                        self.control_drained.set()
                    yield response
                    continue
                if self.ready:
                    w = next(iter(self.ready))
                    del self.ready[w]
                    if self.watchers.get(w.watch_id) is not w:
                        continue
                    batch = w.take(TAKE_EVENTS_MAX)
                    if batch is None:
                        continue
                    if w.has_more:
                        self.ready[w] = None  # more to take: back of the queue (fairness)
                    for response in self._batch_responses(batch, header):
                        yield response
                    continue
                if self.progress_requested:
                    progress = self._progress_response()
                    if progress is not None:
                        self.progress_requested = False
                        yield progress
                        continue
                break

    def close(self) -> None:
        for watch_id in list(self.watchers):
            w = self._forget(watch_id)
            if w is not None:
                self.hub.cancel(w)


class WatchServicer(rpc_pb2_grpc.WatchServicer):
    SERVICE = "etcdserverpb.Watch"

    def __init__(self, backend: Backend, limits: ServiceLimits) -> None:
        self.backend = backend
        self.limits = limits
        self.encoder = WatchResponseEncoder()

    @stream_rpc("bidi_stream")
    async def Watch(
        self, request_iterator: AsyncIterator[rpc_pb2.WatchRequest], context: Any
    ) -> AsyncIterator[rpc_pb2.WatchResponse | bytes]:
        stream = _WatchStream(self.backend, self.limits, self.encoder)
        check_leader = require_leader(self.backend, context)
        reader = asyncio.create_task(stream.read(request_iterator))
        ticker = asyncio.create_task(stream.tick(check_leader=check_leader))
        try:
            async for response in stream.responses():
                yield response
        finally:
            reader.cancel()
            ticker.cancel()
            stream.close()
