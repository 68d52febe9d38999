"""A single-member Backend without Raft: the real kvstore Store and WatchHub, applied inline.

This is the stand-in the wire-layer tests run against until the node (api/server/node.py)
serves: every proposal is applied at once as the next "raft index" in term 2 (what a fresh
single-member etcd reports), leases expire by a proposed revoke from a 0.25 s sweeper, and
the hub's catch-up work runs as soon as the hub asks for it. Everything else is the real
store: revisions, errors, hashes, snapshots and defragment are kvstore's own.

`python -m tests.process.direct_backend --data-dir D --listen-client-urls URL
[--listen-metrics-urls URL] [--name N --initial-advertise-peer-urls URL ...]` serves it with
the real gRPC and HTTP servers, taking the same flags as etcd and `api.server.main`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence

from api.server.config import ServerConfig, parse_config
from api.service.backend import (
    AlarmMember,
    BadLeaderTransfereeError,
    Header,
    MemberInfo,
    StatusInfo,
)
from kvstore.errors import KvError
from kvstore.store import Store
from kvstore.types import (
    ApplyResult,
    HashKVResponse,
    LeaseGrantResponse,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    LeaseTimeToLiveResponse,
    RangeRequest,
    RangeResponse,
    Request,
)
from kvstore.watch import WatchHub

VERSION = "3.4.23"
TERM = 2
ALARM_NAMES = {1: "NOSPACE", 2: "CORRUPT"}


class DirectBackend:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = Store(
            config.data_dir,
            durable=False,
            quota_bytes=config.quota_backend_bytes or 2 * 1024**3,
            max_txn_ops=config.max_txn_ops,
        )
        self._hub = WatchHub(self.store)
        self._hub.set_wakeup(self._wake_sync)
        self._sync_scheduled = False
        # A fresh member has applied at least its bootstrap entry (raft index 1).
        self.index = max(self.store.applied_index, 1)
        self.alarms: dict[tuple[int, int], None] = {}
        self.lease_deadlines: dict[int, float] = {}
        self.lease_ttls: dict[int, int] = {}
        now = time.monotonic()
        for lease in self.store.leases():
            self.lease_ttls[lease.id] = lease.ttl
            self.lease_deadlines[lease.id] = now + lease.ttl

    # --- identity -------------------------------------------------------------------------

    @property
    def cluster_id(self) -> int:
        return self.config.cluster_id

    @property
    def member_id(self) -> int:
        return self.config.member_id

    @property
    def hub(self) -> WatchHub:
        return self._hub

    def header(self) -> Header:
        return Header(self.cluster_id, self.member_id, self.store.current_revision, TERM)

    # --- watch catch-up ---------------------------------------------------------------------

    def _wake_sync(self) -> None:
        if not self._sync_scheduled:
            self._sync_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_sync)

    def _run_sync(self) -> None:
        self._sync_scheduled = False
        self._hub.sync_unsynced(1000)
        if self._hub.has_unsynced:
            self._wake_sync()

    # --- KV and leases ----------------------------------------------------------------------

    async def propose(self, request: Request, *, timeout_s: float | None = None) -> ApplyResult:
        self.index += 1
        outcome = self.store.apply(self.index, TERM, request)
        if isinstance(outcome, KvError):
            raise outcome
        if outcome is None:  # pragma: no cover - indexes only grow here
            raise RuntimeError("entry already applied")
        self._hub.notify(outcome.revision, outcome.events)
        resp = outcome.response
        if isinstance(resp, LeaseGrantResponse):
            self.lease_ttls[resp.id] = resp.ttl
            self.lease_deadlines[resp.id] = time.monotonic() + resp.ttl
        elif isinstance(resp, LeaseRevokeResponse) and isinstance(request, LeaseRevokeRequest):
            self.lease_ttls.pop(request.id, None)
            self.lease_deadlines.pop(request.id, None)
        return outcome

    async def range(self, request: RangeRequest) -> RangeResponse:
        return self.store.range(request)

    async def lease_keep_alive(self, lease_id: int) -> int:
        ttl = self.lease_ttls.get(lease_id)
        if ttl is None:
            return 0
        self.lease_deadlines[lease_id] = time.monotonic() + ttl
        return ttl

    async def lease_time_to_live(self, lease_id: int, *, keys: bool) -> LeaseTimeToLiveResponse:
        deadline = self.lease_deadlines.get(lease_id)
        remaining = None if deadline is None else max(int(deadline - time.monotonic()), 0)
        return self.store.lease_time_to_live(lease_id, keys=keys, remaining_ttl_s=remaining)

    async def lease_leases(self) -> LeaseLeasesResponse:
        # etcd's lessor lists leases by expiry time (lessor.Leases sorts leasesByExpiry).
        resp = self.store.lease_leases()
        never = float("inf")
        ordered = sorted(resp.leases, key=lambda i: (self.lease_deadlines.get(i, never), i))
        return LeaseLeasesResponse(tuple(ordered), resp.revision)

    async def expire_leases(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for lease_id, deadline in list(self.lease_deadlines.items()):
                if deadline <= now:
                    try:
                        await self.propose(LeaseRevokeRequest(lease_id))
                    except KvError:
                        self.lease_deadlines.pop(lease_id, None)
                        self.lease_ttls.pop(lease_id, None)

    # --- maintenance ----------------------------------------------------------------------

    async def hash_kv(self, revision: int) -> HashKVResponse:
        return self.store.hash_kv(revision)

    async def hash(self) -> int:
        return self.store.hash()

    def status(self) -> StatusInfo:
        return StatusInfo(
            version=VERSION,
            db_size=self.store.db_size_bytes,
            db_size_in_use=self.store.db_size_in_use_bytes,
            leader=self.member_id,
            raft_index=self.index,
            raft_term=TERM,
            raft_applied_index=self.index,
            errors=tuple(
                f"memberID:{m} alarm:{ALARM_NAMES.get(a, a)} " for m, a in self.alarms
            ),
            is_learner=False,
        )

    def members(self) -> Sequence[MemberInfo]:
        return [
            MemberInfo(
                id=self.member_id,
                name=self.config.name,
                peer_urls=self.config.initial_advertise_peer_urls,
                client_urls=self.config.advertise_client_urls,
            )
        ]

    async def alarm(self, action: int, member_id: int, alarm: int) -> Sequence[AlarmMember]:
        if action == 0:
            return [AlarmMember(m, a) for m, a in self.alarms]
        if action == 1:
            self.alarms[(member_id, alarm)] = None
            self.store.nospace_alarm = any(a == 1 for _, a in self.alarms)
            return [AlarmMember(member_id, alarm)]
        cleared = [
            AlarmMember(m, a)
            for m, a in list(self.alarms)
            if (member_id in (0, m)) and (alarm in (0, a))
        ]
        for a in cleared:
            del self.alarms[(a.member_id, a.alarm)]
        self.store.nospace_alarm = any(a == 1 for _, a in self.alarms)
        return cleared

    async def defragment(self) -> None:
        self.store.defragment()

    async def snapshot_chunks(self, chunk_bytes: int) -> AsyncIterator[bytes]:
        fd, path = tempfile.mkstemp(prefix="direct-snap-")
        os.close(fd)
        try:
            self.store.snapshot_to(path)
            with open(path, "rb") as f:
                while block := f.read(chunk_bytes):
                    yield block
        finally:
            os.unlink(path)

    def snapshot_size_hint(self) -> int:
        return self.store.db_size_in_use_bytes

    async def move_leader(self, target_id: int) -> None:
        if target_id != self.member_id:
            raise BadLeaderTransfereeError()


async def serve(argv: Sequence[str]) -> None:
    from api.server.grpc_server import start_grpc_server
    from api.server.http import start_http_server

    config = parse_config(list(argv), {})
    backend = DirectBackend(config)
    server = await start_grpc_server(backend, config, config.listen_client_urls)
    metrics_urls = [u for u in config.listen_metrics_urls if u]
    http = await start_http_server(backend, metrics_urls) if metrics_urls else None
    expiry = asyncio.create_task(backend.expire_leases())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    expiry.cancel()
    await server.stop(0.5)
    if http is not None:
        http.close()
        await http.wait_closed()
    backend.store.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1:]))
