"""SyncClient: the blocking facade, same method names and parameters as `Client`.

A private daemon thread runs an event loop that owns an async `Client` (grpc.aio channels
belong to the loop that made them). Each sync method submits the matching coroutine to that
loop and blocks on its result, so behaviour (retries, failover, errors) is exactly the async
client's. Methods are generated from `Client` (functools.wraps keeps their signatures, and a
unit test checks both surfaces match); objects with their own lifetime (txn builder, watcher,
keep-alive, lock, election) get small blocking wrappers.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from api.client._client import Client
from api.client._errors import EtcdError
from api.client._lease import KeepAlive
from api.client._ops import Txn, TxnBuilder
from api.client._recipes import Election, Lock
from api.client._types import Event, KeyValue, TxnResult
from api.client._watch import Watcher

__all__ = ["SyncClient"]

T = TypeVar("T")

# Client coroutine methods wrapped one to one.
_PLAIN = (
    "get", "put", "delete", "txn_commit", "compact",
    "lease_grant", "lease_revoke", "lease_time_to_live", "leases",
    "member_list", "member_add", "member_remove", "member_update", "member_promote",
    "status", "alarms", "alarm_disarm", "defragment", "hash_kv", "move_leader",
    "snapshot_save",
)


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kvclient", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def _make(name: str) -> Callable[..., Any]:
    method = getattr(Client, name)

    @functools.wraps(method)
    def sync(self: SyncClient, *args: Any, **kwargs: Any) -> Any:
        return self._loop.run(getattr(self._client, name)(*args, **kwargs))

    return sync


class SyncWatcher:
    """A blocking iterator over a Watcher's events."""

    def __init__(self, loop: _Loop, watcher: Watcher) -> None:
        self._loop = loop
        self.watcher = watcher
        self._aiter = watcher.__aiter__()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        async def step() -> Event:
            return await self._aiter.__anext__()

        try:
            return self._loop.run(step())
        except StopAsyncIteration:
            raise StopIteration from None

    def request_progress(self, timeout_s: float = 5.0) -> int:
        return self._loop.run(self.watcher.request_progress(timeout_s))

    def wait_created(self, timeout_s: float = 10.0) -> None:
        self._loop.run(self.watcher.wait_created(timeout_s))

    def cancel(self) -> None:
        self._loop.run(self.watcher.cancel())


class SyncKeepAlive:
    def __init__(self, loop: _Loop, keep: KeepAlive) -> None:
        self._loop = loop
        self.keep = keep

    @property
    def lost(self) -> bool:
        return self.keep.lost.is_set()

    @property
    def error(self) -> EtcdError | None:
        return self.keep.error

    def stop(self) -> None:
        self._loop.run(self.keep.stop())


class SyncLock:
    def __init__(self, loop: _Loop, lock: Lock) -> None:
        self._loop = loop
        self._lock = lock

    @property
    def revision(self) -> int:
        return self._lock.revision

    @property
    def key(self) -> bytes:
        return self._lock.key

    def acquire(self) -> int:
        return self._loop.run(self._lock.acquire())

    def release(self) -> None:
        self._loop.run(self._lock.release())

    def __enter__(self) -> SyncLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class SyncElection:
    def __init__(self, loop: _Loop, election: Election) -> None:
        self._loop = loop
        self._election = election

    @property
    def revision(self) -> int:
        return self._election.revision

    def campaign(self, value: bytes) -> int:
        return self._loop.run(self._election.campaign(value))

    def proclaim(self, value: bytes) -> None:
        self._loop.run(self._election.proclaim(value))

    def resign(self) -> None:
        self._loop.run(self._election.resign())

    def leader(self) -> KeyValue | None:
        return self._loop.run(self._election.leader())


class SyncClient:
    """Blocking twin of `Client`: `with SyncClient(["127.0.0.1:2379"]) as c: c.put(b"k", b"v")`."""

    def __init__(self, endpoints: list[str] | str, **kwargs: Any) -> None:
        self._loop = _Loop()

        async def make() -> Client:
            return Client(endpoints, **kwargs)

        try:
            self._client = self._loop.run(make())
        except BaseException:
            self._loop.stop()
            raise

    if TYPE_CHECKING:
        # The one-to-one wrappers are attached below (see _PLAIN); to a type checker they
        # are dynamic attributes returning the async method's result.
        def __getattr__(self, name: str) -> Any: ...

    def close(self) -> None:
        if self._loop.thread.is_alive():
            self._loop.run(self._client.close())
            self._loop.stop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def txn(self, *, timeout_s: float | None = None) -> TxnBuilder[TxnResult]:
        def commit(t: Txn) -> TxnResult:
            return self._loop.run(self._client.txn_commit(t, timeout_s=timeout_s))

        return TxnBuilder(commit)

    def watch(self, key: bytes, **kwargs: Any) -> SyncWatcher:
        async def start() -> Watcher:
            return self._client.watch(key, **kwargs)

        return SyncWatcher(self._loop, self._loop.run(start()))

    def keep_alive(self, lease_id: int, *, ttl_s: int, **kwargs: Any) -> SyncKeepAlive:
        async def start() -> KeepAlive:
            return self._client.keep_alive(lease_id, ttl_s=ttl_s, **kwargs)

        return SyncKeepAlive(self._loop, self._loop.run(start()))

    def lock(self, name: bytes, *, ttl_s: int = 60, lease_id: int | None = None) -> SyncLock:
        return SyncLock(self._loop, self._client.lock(name, ttl_s=ttl_s, lease_id=lease_id))

    def election(
        self, name: bytes, *, ttl_s: int = 60, lease_id: int | None = None
    ) -> SyncElection:
        return SyncElection(
            self._loop, self._client.election(name, ttl_s=ttl_s, lease_id=lease_id)
        )


for _name in _PLAIN:
    setattr(SyncClient, _name, _make(_name))
