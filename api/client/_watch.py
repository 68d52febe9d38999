"""Watcher: one watch that survives disconnects with no lost or duplicated event.

Theory of operation. A background task owns one Watch stream with one watch on it. It keeps
`next_revision`: the revision from which the server still owes us events.

* On the created response of a watch started "now" (start_revision 0), `next_revision` becomes
  header.revision + 1: everything after the creation point is owed.
* After each response with events, `next_revision` becomes the last event's mod_revision + 1
  (etcd never splits one revision over two responses unless asked to fragment, which we do not).
* A progress notification (header.revision R, no events) means nothing <= R is still owed:
  `next_revision` = max(next_revision, R + 1).
* On UNAVAILABLE (server killed, connection reset) the task fails over to the next endpoint and
  re-creates the watch from `next_revision`, after a short backoff, forever until cancelled;
  events with mod_revision < next_revision are dropped as duplicates (the invariant that makes
  resume exactly-once).
* If the resume point was compacted the server cancels the watch with compact_revision > 0;
  the iterator then raises CompactedError (with `.compact_revision`), as clientv3 does.

Events go to a bounded queue (the consumer's pace limits the reading) or, in the callback
form, to `callback(event)` called in the task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from api.client._errors import (
    ClientInvariantError,
    CompactedError,
    UnavailableError,
    WatchCanceledError,
    from_rpc_error,
)
from api.client._types import Event
from api.proto import rpc_pb2

__all__ = ["Watcher"]

QUEUE_MAX = 4096
RECONNECT_BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
_DONE = object()


class Watcher:
    def __init__(
        self,
        conn: Any,
        *,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        prev_kv: bool,
        no_put: bool,
        no_delete: bool,
        progress_notify: bool,
        callback: Callable[[Event], Any] | None,
    ) -> None:
        self._conn = conn
        self._key = key
        self._range_end = range_end
        self._prev_kv = prev_kv
        self._filters = [f for f, on in ((0, no_put), (1, no_delete)) if on]
        self._progress_notify = progress_notify
        self._callback = callback
        self.next_revision = start_revision
        self.progress_revision = 0
        self._progress_count = 0
        self.watch_id: int | None = None
        self.reconnects = 0
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=QUEUE_MAX)
        self._progress = asyncio.Condition()
        self._created = asyncio.Event()
        self._requests: asyncio.Queue[rpc_pb2.WatchRequest | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait_created(self, timeout_s: float = 10.0) -> None:
        """Wait until the server confirmed the watch (events after this point are delivered)."""
        await asyncio.wait_for(self._created.wait(), timeout_s)

    # ---- consumer side ----------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Events received and not yet taken (plus one once the watch has ended). A response's
        events are queued together, so 0 right after taking an event means the rest of its
        response has been taken too."""
        return self._queue.qsize()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Event]:
        while True:
            item = await self._queue.get()
            if item is _DONE:
                self._queue.put_nowait(_DONE)  # later iterations end too
                if self._error is not None:
                    raise self._error
                return
            if not isinstance(item, Event):
                raise ClientInvariantError(f"unexpected watch queue item {item!r}")
            yield item

    async def request_progress(self, timeout_s: float = 5.0) -> int:
        """Ask for a progress notification and return its revision (all events <= it seen)."""
        await self.wait_created(timeout_s)
        async with self._progress:
            before = self._progress_count
            if self._requests is not None:
                await self._requests.put(
                    rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
                )
            await asyncio.wait_for(
                self._progress.wait_for(lambda: self._progress_count != before or
                                        self._error is not None),
                timeout_s,
            )
        if self._error is not None:
            raise self._error
        return self.progress_revision

    async def cancel(self) -> None:
        """Stop the watch (the stream is closed, which cancels it on the server)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._finish(None)

    async def wait(self) -> None:
        """Wait for the watch to end (callback form); re-raises its error."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._error is not None:
            raise self._error

    # ---- the stream task --------------------------------------------------------------------

    def _finish(self, error: BaseException | None) -> None:
        if self._error is None:
            self._error = error
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_DONE)

    async def _run(self) -> None:
        failures = 0
        try:
            while True:
                index = self._conn.current
                try:
                    await self._stream_once()
                    return
                except grpc.RpcError as e:
                    err = from_rpc_error(e)
                    if not isinstance(err, UnavailableError):
                        raise err from e
                # The stream broke (server gone, no leader): resume elsewhere from next_revision.
                self._conn.failover(index)
                self.reconnects += 1
                await asyncio.sleep(RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)])
                failures += 1
        except asyncio.CancelledError:
            self._finish(None)
            raise
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._finish(e)
            async with self._progress:
                self._progress.notify_all()

    def _create_request(self) -> rpc_pb2.WatchRequest:
        return rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(
                key=self._key, range_end=self._range_end, start_revision=self.next_revision,
                progress_notify=self._progress_notify, filters=self._filters,  # type: ignore[arg-type]
                prev_kv=self._prev_kv,
            )
        )

    async def _stream_once(self) -> None:
        requests: asyncio.Queue[rpc_pb2.WatchRequest | None] = asyncio.Queue(maxsize=16)
        self._requests = requests
        await requests.put(self._create_request())

        async def request_iter() -> AsyncIterator[rpc_pb2.WatchRequest]:
            while True:
                r = await requests.get()
                if r is None:
                    return
                yield r

        call = self._conn.stubs().watch.Watch(request_iter(), metadata=(("hasleader", "true"),))
        try:
            async for resp in call:
                await self._handle(resp)
        finally:
            call.cancel()
        # The server ended the stream without an error status: treat as a disconnect.
        raise _Disconnected()

    async def _handle(self, resp: rpc_pb2.WatchResponse) -> None:
        if resp.created:
            self.watch_id = resp.watch_id
            if self.next_revision == 0:
                self.next_revision = resp.header.revision + 1
            self._created.set()
        if resp.canceled:
            if resp.compact_revision > 0:
                err = CompactedError("OUT_OF_RANGE", COMPACTED)
                err.compact_revision = resp.compact_revision  # type: ignore[attr-defined]
                raise err
            reason = resp.cancel_reason or "watch canceled by the server"
            # A leaderless member cancels hasleader watches: that is transient, resume.
            if "no leader" in reason:
                raise _Disconnected()
            raise WatchCanceledError("CANCELLED", reason)
        if resp.events:
            floor = self.next_revision
            for pb in resp.events:
                if pb.kv.mod_revision < floor:
                    continue  # already delivered before a reconnect
                ev = Event.from_pb(pb)
                if self._callback is not None:
                    r = self._callback(ev)
                    if asyncio.iscoroutine(r):
                        await r
                else:
                    await self._queue.put(ev)
                self.next_revision = max(self.next_revision, pb.kv.mod_revision + 1)
        elif not resp.created and resp.watch_id in (self.watch_id, -1):
            # A progress notification: every event <= header.revision has been sent.
            # (etcd 3.4 answers a progress request with watch_id of the watch; later
            # versions use -1.)
            rev = resp.header.revision
            self.next_revision = max(self.next_revision, rev + 1)
            async with self._progress:
                self.progress_revision = rev
                self._progress_count += 1
                self._progress.notify_all()


class _Disconnected(grpc.RpcError):  # type: ignore[misc]
    """The stream ended without a status; handled like UNAVAILABLE."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "watch stream closed"

