"""The member's disk thread: WAL writes, fsyncs and LMDB commits, in submission order.

`await disk.run(fn, *args)` runs fn on the thread and resumes the caller with its result.
It does what `loop.run_in_executor` on a one-thread pool did, with less in between: one
queue put on the way there and one `call_soon_threadsafe` on the way back, with no
concurrent.futures.Future chained to an asyncio one (a single-client put makes one round
trip, so its cost is in every such put's latency). `submit` queues without awaiting.

`idle` is True while no call is in flight: only then may the loop touch the WAL or write
LMDB itself (node_persist.py does, for small work that needs no fsync).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Work = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class DiskThread:
    """One thread running submitted work in order; see the module docstring."""

    def __init__(self, name: str = "disk") -> None:
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._closed = False
        self._inflight = 0  # submitted and not yet resolved; touched only on the loop thread
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.submit(fn, *args)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue fn at once and return the future of its result, so the caller can do
        something else on the loop (e.g. send) while the thread works."""
        if self._closed:
            raise RuntimeError("disk thread is shut down")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._inflight += 1
        self._queue.put((loop, fut, fn, args))
        return fut

    @property
    def idle(self) -> bool:
        return self._inflight == 0

    def shutdown(self) -> None:
        """Finish the queued work and stop the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            loop, fut, fn, args = work
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                self._call_back(loop, fut, None, exc)
            else:
                self._call_back(loop, fut, result, None)

    def _call_back(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], result: Any,
                   exc: BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(self._resolve, fut, result, exc)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def _resolve(self, fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
        """On the loop's thread."""
        self._inflight -= 1
        if fut.cancelled():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
