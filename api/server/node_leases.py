"""Node's lease half: only the leader counts TTLs (api/server/lessor.py); expiry and
checkpoints are proposed through raft, followers forward keep-alives to the leader.

A mixin of `Node` (api/server/node.py), split out for size.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

from api.service.backend import NoLeaderError, RequestTimeoutError, StoppedError
from kvstore.errors import KvError
from kvstore.types import (
    ApplyResult,
    LeaseCheckpointRequest,
    LeaseGrantResponse,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseTimeToLiveResponse,
    Request,
)
from raft import StateType

LEASE_CHECKPOINT_INTERVAL_S = 60.0
LEASE_REVOKES_PER_PASS_MAX = 500


class LeaseMixin:
    async def lease_keep_alive(self, lease_id: int) -> int:
        if self._lead == 0:
            raise NoLeaderError()
        if self._role is not StateType.LEADER:
            return await self._leader_client.lease_keep_alive(lease_id)
        return self._lessor.renew(lease_id)

    async def lease_time_to_live(self, lease_id: int, *, keys: bool) -> LeaseTimeToLiveResponse:
        if self._lead != 0 and self._role is not StateType.LEADER:
            return await self._leader_client.lease_time_to_live(lease_id, keys=keys)
        await self._linearizable_barrier()
        remaining = self._lessor.remaining_s(lease_id)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._read_pool,
            lambda: self._store.lease_time_to_live(lease_id, keys=keys, remaining_ttl_s=remaining),
        )

    async def lease_leases(self) -> LeaseLeasesResponse:
        await self._linearizable_barrier()
        resp = await asyncio.get_running_loop().run_in_executor(
            self._read_pool, self._store.lease_leases
        )
        # etcd's lessor lists leases by expiry (a keep-alive moves a lease back).
        return replace(resp, leases=tuple(sorted(resp.leases, key=self._lessor.sort_key)))

    async def _lease_loop(self) -> None:
        last_checkpoint = time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            if self._role is not StateType.LEADER:
                continue
            for lease_id in self._lessor.expired(LEASE_REVOKES_PER_PASS_MAX):
                asyncio.create_task(self._revoke_expired(lease_id))
            if self.config.lease_checkpoint and time.monotonic() - last_checkpoint >= LEASE_CHECKPOINT_INTERVAL_S:
                last_checkpoint = time.monotonic()
                for lease_id, remaining in self._lessor.checkpoints(min_change_s=int(LEASE_CHECKPOINT_INTERVAL_S) // 2):
                    asyncio.create_task(self._checkpoint(lease_id, remaining))

    async def _revoke_expired(self, lease_id: int) -> None:
        # On failure the lessor re-reports the lease a second later (Lessor.expired).
        with contextlib.suppress(KvError, RequestTimeoutError, StoppedError):
            await self._propose_any(LeaseRevokeRequest(lease_id), timeout_s=None)

    async def _checkpoint(self, lease_id: int, remaining: int) -> None:
        with contextlib.suppress(KvError, RequestTimeoutError, StoppedError):
            await self._propose_any(LeaseCheckpointRequest(lease_id, remaining), timeout_s=None)

    def _track_lease(self, request: Request, result: ApplyResult) -> None:
        """Keep the leader's lease clock in step with the applied lease state."""
        if self._role is not StateType.LEADER:
            return
        resp = result.response
        if isinstance(resp, LeaseGrantResponse):
            self._lessor.grant(resp.id, resp.ttl)
        elif isinstance(request, LeaseRevokeRequest):
            self._lessor.revoke(request.id)
