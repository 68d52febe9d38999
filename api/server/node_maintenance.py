"""Node's maintenance half: status, alarms, hashes, defragment, snapshot stream.

A mixin of `Node` (api/server/node.py), split out for size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence

import aiofiles

from api.server.cluster_state import (
    ALARM_ACTIVATE,
    ALARM_DEACTIVATE,
    ALARM_GET,
    ALARM_NAMES,
    ALARM_NOSPACE,
)
from api.server.codec import AlarmRequest
from api.server.version import SERVER_VERSION
from api.service.backend import AlarmMember, StatusInfo
from kvstore.types import HashKVResponse


class MaintenanceMixin:
    async def hash_kv(self, revision: int) -> HashKVResponse:
        return await asyncio.get_running_loop().run_in_executor(
            self._read_pool, self._store.hash_kv, revision
        )

    async def hash(self) -> int:
        value: int = await asyncio.get_running_loop().run_in_executor(
            self._read_pool, self._store.hash
        )
        return value

    def status(self) -> StatusInfo:
        errors = tuple(
            f"memberID:{m} alarm:{ALARM_NAMES.get(a, str(a))} " for m, a in sorted(self._cluster.alarms)
        )
        me = self._cluster.members.get(self._member_id)
        return StatusInfo(
            version=SERVER_VERSION,
            db_size=self._store.db_size_bytes,
            db_size_in_use=self._store.db_size_in_use_bytes,
            leader=self._lead,
            raft_index=self._disk.storage.last_index(),
            raft_term=self._term,
            raft_applied_index=self._applied,
            errors=errors,
            is_learner=bool(me and me.is_learner),
        )

    def alarms(self) -> list[AlarmMember]:
        return [AlarmMember(m, a) for m, a in sorted(self._cluster.alarms)]

    async def alarm(self, action: int, member_id: int, alarm: int) -> Sequence[AlarmMember]:
        if action == ALARM_GET:
            return self.alarms()
        if action not in (ALARM_ACTIVATE, ALARM_DEACTIVATE):
            raise ValueError(f"unknown alarm action {action}")
        affected = await self._propose_any(AlarmRequest(action, member_id, alarm), timeout_s=None)
        return [AlarmMember(m, a) for m, a in affected]

    async def defragment(self) -> None:
        await self._disk_thread.run(self._store.defragment)

    async def snapshot_chunks(self, chunk_bytes: int) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        tmp = os.path.join(self._disk.member_dir, f".snapshot-stream-{os.getpid()}-{id(object())}")
        try:
            await loop.run_in_executor(self._read_pool, self._store.snapshot_to, tmp)
            async with aiofiles.open(tmp, "rb") as f:
                while chunk := await f.read(chunk_bytes):
                    yield chunk
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def snapshot_size_hint(self) -> int:
        return self._store.db_size_in_use_bytes

    async def _raise_nospace(self) -> None:
        with contextlib.suppress(Exception):
            await self._propose_any(
                AlarmRequest(ALARM_ACTIVATE, self._member_id, ALARM_NOSPACE), timeout_s=None
            )
