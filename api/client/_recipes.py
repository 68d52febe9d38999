"""Lock and Election, client-side over KV + Lease + Watch, in etcd's key layout.

Both follow etcd's `clientv3/concurrency` so our holders and etcdctl's (`etcdctl lock`,
`etcdctl elect`, the v3lock/v3election services) exclude each other:

* A session is a lease (granted with `ttl_s` and kept alive, unless a lease_id is given).
* A contender writes `<name>/<lease_id in lowercase hex>` attached to the lease, in a txn
  that only creates it if absent (so re-acquiring with the same session is idempotent).
* Contenders are ordered by create_revision. The one with the lowest holds the lock / is the
  leader. Everyone else waits until every key under the prefix with a lower create_revision
  is deleted (released, or its lease expired), watching only the next-lower one each time.
* The holder's create_revision is a *fencing revision*: strictly increasing across
  successive holders, so a storage guarded by "mod_revision of my lock key" (a txn compare)
  refuses writes from a holder that lost the lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from api.client._errors import ClientInvariantError, EtcdError, LeaseNotFoundError
from api.client._lease import KeepAlive
from api.client._ops import Compare, Delete, Get, Put, SortOrder, SortTarget
from api.client._types import EventType, GetResult, KeyValue

if TYPE_CHECKING:
    from api.client._client import Client

__all__ = ["Election", "Lock", "NotLeaderError"]


class NotLeaderError(EtcdError):
    """proclaim/resign by a contender that is not (or no longer) the leader."""


class _Session:
    def __init__(self, client: Client, ttl_s: int, lease_id: int | None) -> None:
        self._client = client
        self.ttl_s = ttl_s
        self.lease_id = lease_id or 0
        self._own = lease_id is None
        self._keep: KeepAlive | None = None

    async def open(self) -> int:
        if self.lease_id == 0:
            grant = await self._client.lease_grant(self.ttl_s)
            self.lease_id = grant.lease_id
            self._keep = self._client.keep_alive(self.lease_id, ttl_s=grant.ttl_s)
        return self.lease_id

    async def close(self) -> None:
        if self._keep is not None:
            await self._keep.stop()
            self._keep = None
        if self._own and self.lease_id:
            with contextlib.suppress(LeaseNotFoundError):
                await self._client.lease_revoke(self.lease_id)
            self.lease_id = 0


async def _wait_deletes(client: Client, prefix: bytes, max_create_revision: int) -> None:
    """Return once no key under `prefix` has create_revision <= max_create_revision."""
    while True:
        r = await client.get(
            prefix, prefix=True, max_create_revision=max_create_revision,
            sort_order=SortOrder.DESCEND, sort_target=SortTarget.CREATE, limit=1,
        )
        if not r.kvs:
            return
        last = r.kvs[0].key
        w = client.watch(last, start_revision=r.header.revision + 1)
        try:
            async for ev in w:
                if ev.type is EventType.DELETE:
                    break
        finally:
            await w.cancel()


async def _contend(client: Client, prefix: bytes, key: bytes, value: bytes, lease_id: int
                   ) -> tuple[int, KeyValue | None]:
    """Create `key` if absent; return (its create_revision, the existing kv if it existed)."""
    res = await client.txn().if_(Compare.create(key) == 0).then(
        Put(key, value, lease_id=lease_id)
    ).else_(Get(key)).commit()
    if res.succeeded:
        return res.header.revision, None
    got = res.responses[0]
    if not isinstance(got, GetResult):
        raise ClientInvariantError("the else branch of a contend txn is one Get")
    return got.kvs[0].create_revision, got.kvs[0]


class Lock:
    """`async with client.lock(b"name") as lk:` ... `lk.revision` is the fencing revision."""

    def __init__(
        self, client: Client, name: bytes, *, ttl_s: int = 60, lease_id: int | None = None
    ) -> None:
        self._client = client
        self.prefix = name + b"/"
        self._session = _Session(client, ttl_s, lease_id)
        self.key = b""
        self.revision = 0

    async def acquire(self) -> int:
        lease_id = await self._session.open()
        self.key = self.prefix + format(lease_id, "x").encode()
        self.revision, _ = await _contend(self._client, self.prefix, self.key, b"", lease_id)
        try:
            await _wait_deletes(self._client, self.prefix, self.revision - 1)
            mine = await self._client.get(self.key)
            if not mine.kvs:
                raise LeaseNotFoundError("NOT_FOUND", "lock session expired while waiting")
        except BaseException:
            await self.release()
            raise
        return self.revision

    async def release(self) -> None:
        if self.key:
            await self._client.delete(self.key)
            self.key = b""
        await self._session.close()

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class Election:
    """etcd's v3election: campaign, proclaim, leader, observe, resign."""

    def __init__(
        self, client: Client, name: bytes, *, ttl_s: int = 60, lease_id: int | None = None
    ) -> None:
        self._client = client
        self.prefix = name + b"/"
        self._session = _Session(client, ttl_s, lease_id)
        self.key = b""
        self.revision = 0

    async def campaign(self, value: bytes) -> int:
        """Block until elected; returns the leader key's create_revision."""
        lease_id = await self._session.open()
        self.key = self.prefix + format(lease_id, "x").encode()
        self.revision, existing = await _contend(
            self._client, self.prefix, self.key, value, lease_id
        )
        if existing is not None and existing.value != value:
            await self.proclaim(value)
        try:
            await _wait_deletes(self._client, self.prefix, self.revision - 1)
        except BaseException:
            await self.resign()
            raise
        return self.revision

    async def proclaim(self, value: bytes) -> None:
        if not self.key:
            raise NotLeaderError("FAILED_PRECONDITION", "election: not leader")
        res = await self._client.txn().if_(Compare.create(self.key) == self.revision).then(
            Put(self.key, value, lease_id=self._session.lease_id)
        ).commit()
        if not res.succeeded:
            self.key = b""
            raise NotLeaderError("FAILED_PRECONDITION", "election: not leader")

    async def resign(self) -> None:
        if self.key:
            await self._client.txn().if_(Compare.create(self.key) == self.revision).then(
                Delete(self.key)
            ).commit()
            self.key = b""
        await self._session.close()

    async def leader(self) -> KeyValue | None:
        """The current leader's key-value (lowest create_revision), or None."""
        r = await self._client.get(
            self.prefix, prefix=True, sort_order=SortOrder.ASCEND,
            sort_target=SortTarget.CREATE, limit=1,
        )
        return r.kvs[0] if r.kvs else None

    async def observe(self) -> AsyncIterator[KeyValue]:
        """Yield the leader's key-value each time the leader or its value changes."""
        last: KeyValue | None = None
        while True:
            r = await self._client.get(
                self.prefix, prefix=True, sort_order=SortOrder.ASCEND,
                sort_target=SortTarget.CREATE, limit=1,
            )
            current = r.kvs[0] if r.kvs else None
            if current is not None and current != last:
                last = current
                yield current
            w = self._client.watch(self.prefix, prefix=True, start_revision=r.header.revision + 1)
            try:
                async for _ev in w:
                    break
            finally:
                await w.cancel()
