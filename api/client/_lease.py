"""KeepAlive: renew a lease in the background until stopped, and report its loss.

Theory of operation. A task keeps one LeaseKeepAlive stream open and sends a renewal every
ttl_s/3 (clientv3's rhythm: two renewals may be lost before the lease is at risk). Each answer
with TTL > 0 pushes `expires_at` (monotonic) to now + TTL. The lease is *lost* when

* an answer carries TTL <= 0 (the server no longer knows it: expired or revoked), or
* no renewal succeeded before `expires_at` (the server may have expired it meanwhile; each
  read of the stream is bounded by `expires_at`, so a frozen server is noticed too).

On loss the task stops, `lost` is set, `error` holds a LeaseNotFoundError, and `on_lost` is
called once. A broken stream (UNAVAILABLE) is reopened on the next endpoint while time
remains. `stop()` cancels the task and closes the stream; it never revokes the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio

from api.client._errors import (
    EtcdError,
    LeaseNotFoundError,
    UnavailableError,
    from_rpc_error,
)
from api.proto import rpc_pb2

__all__ = ["KeepAlive"]

RETRY_S = 0.2


class KeepAlive:
    def __init__(
        self,
        conn: Any,
        lease_id: int,
        *,
        ttl_s: int,
        on_lost: Callable[[EtcdError], Any] | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._conn = conn
        self.lease_id = lease_id
        self.ttl_s = ttl_s
        self.expires_at = time.monotonic() + ttl_s
        self.renewals = 0
        self.lost = asyncio.Event()
        self.error: EtcdError | None = None
        self._on_lost = on_lost
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> KeepAlive:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _lose(self, message: str) -> None:
        self.error = LeaseNotFoundError("NOT_FOUND", message)
        self.lost.set()
        if self._on_lost is not None:
            self._on_lost(self.error)

    async def _run(self) -> None:
        while True:
            if time.monotonic() >= self.expires_at:
                self._lose("etcdserver: requested lease not found")
                return
            index = self._conn.current
            try:
                if await self._stream_once():
                    return
            except grpc.RpcError as e:
                err = from_rpc_error(e)
                if not isinstance(err, UnavailableError):
                    self.error = err
                    self.lost.set()
                    if self._on_lost is not None:
                        self._on_lost(err)
                    return
                self._conn.failover(index)
            await asyncio.sleep(RETRY_S)

    async def _stream_once(self) -> bool:
        """Renew over one stream; True once the lease is known lost."""
        interval_s = max(self.ttl_s / 3.0, 0.1)

        async def requests() -> AsyncIterator[rpc_pb2.LeaseKeepAliveRequest]:
            while True:
                yield rpc_pb2.LeaseKeepAliveRequest(ID=self.lease_id)
                await asyncio.sleep(interval_s)

        call = self._conn.stubs().lease.LeaseKeepAlive(requests())
        try:
            while True:
                # A frozen or partitioned server answers nothing; waiting beyond the lease's
                # own expiry would hide the loss, so each read is bounded by it.
                wait_s = self.expires_at - time.monotonic()
                if wait_s <= 0:
                    self._lose("etcdserver: requested lease not found")
                    return True
                try:
                    resp = await asyncio.wait_for(call.read(), wait_s)
                except TimeoutError:
                    continue
                if resp is grpc.aio.EOF:
                    return False
                if resp.TTL <= 0:
                    self._lose("etcdserver: requested lease not found")
                    return True
                self.renewals += 1
                self.expires_at = time.monotonic() + resp.TTL
        finally:
            call.cancel()
