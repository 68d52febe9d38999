"""The member process's composition root: one RawNode driving WAL, snapshots and the store.

Everything runs on one asyncio event loop; blocking disk work (WAL fsync, LMDB commits,
snapshot copies) runs on ONE disk thread so writes keep their order, and reads run on a
small read pool so a large range never stalls the loop. Tasks:

* the ready loop (`_run`): proposes queued requests in one batch, then drains every Ready
  following raft/ready.py: persist (disk thread) -> install in MemoryStorage -> send ->
  apply -> advance. While the disk thread fsyncs, new proposals queue up and go into the
  next batch: that is the group commit (one fdatasync per batch of proposals).
* the ticker: one raft tick per --heartbeat-interval.
* the lease task (leader only): proposes a revoke for each expired lease, and periodic
  checkpoints of remaining TTLs.

Applying: committed entries are decoded (api/server/codec.py); consecutive key-value
requests go to the store as ONE `apply_batch` (one LMDB transaction that also records the
applied index, so re-applying after a crash is a no-op); membership and alarm requests are
applied to the ClusterState in log order between those batches. Then the watch hub is
notified and each waiting client gets its result.

Linearizable reads use ReadIndex: reads that arrive together share one read_index request;
each waits until the applied index reaches the read state's index.

Fail-stop: a WAL error (e.g. fdatasync EIO or ENOSPC) ends the process at once, before any
write of that batch is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import aiofiles
import grpc

from api.proto import rpc_pb2, rpc_pb2_grpc
from api.server import membership
from api.server.cluster_state import (
    ALARM_ACTIVATE,
    ALARM_DEACTIVATE,
    ALARM_GET,
    ALARM_NAMES,
    ALARM_NOSPACE,
    ClusterState,
    MemberRecord,
)
from api.server.codec import AlarmRequest, MemberAttributes, MemberUpdate, decode, encode
from api.server.config import ServerConfig, compute_member_id
from api.server.disk import DataDirError, MemberDisk, Recovered
from api.server.lessor import Lessor
from api.server.metrics import METRICS
from api.server.replication import Replication
from api.server.snapshot_bundle import split_bundle, write_bundle
from api.server.transport import fetch_members
from api.server.version import SERVER_VERSION
from api.service.backend import (
    AlarmMember,
    BadLeaderTransfereeError,
    Header,
    MemberInfo,
    MemberNotFoundError,
    NodeError,
    NoLeaderError,
    NoSpaceAlarmError,
    PeerURLExistsError,
    RequestTimeoutError,
    StatusInfo,
    StoppedError,
)
from kvstore.errors import KvError, NoSpaceError
from kvstore.store import ApplyOutcome, Store
from kvstore.types import (
    ApplyResult,
    CompactionRequest,
    DeleteRangeRequest,
    Event,
    HashKVResponse,
    LeaseCheckpointRequest,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseTimeToLiveResponse,
    PutRequest,
    RangeRequest,
    RangeResponse,
    Request,
    TxnRequest,
)
from kvstore.watch import WatchHub
from raft import (
    Config,
    EntryType,
    Message,
    ProposalDroppedError,
    RawNode,
    Ready,
    SnapshotMetadata,
    StateType,
    StepLocalMsgError,
    StepPeerNotFoundError,
)
from raft.types import ConfChange, ConfChangeType
from wal import WalError

log = logging.getLogger("kvstore.node")

_KV_REQUESTS = (
    PutRequest, DeleteRangeRequest, TxnRequest, CompactionRequest,
    LeaseGrantRequest, LeaseRevokeRequest, LeaseCheckpointRequest,
)
PROPOSALS_PER_BATCH_MAX = 4096
PENDING_PROPOSALS_MAX = 100_000
LEASE_REVOKES_PER_PASS_MAX = 500
LEASE_CHECKPOINT_INTERVAL_S = 60.0
WATCH_SYNC_EVENTS_MAX = 10_000
SNAPSHOT_BYTES_TRIGGER = 64 * 1024 * 1024


def _has_writes(req: TxnRequest) -> bool:
    for op in (*req.success, *req.failure):
        if isinstance(op, PutRequest | DeleteRangeRequest):
            return True
        if isinstance(op, TxnRequest) and _has_writes(op):
            return True
    return False


def _adds_data(req: object) -> bool:
    """Requests that NOSPACE refuses (etcd: puts, txns with puts, lease grants)."""
    if isinstance(req, PutRequest | LeaseGrantRequest):
        return True
    if isinstance(req, TxnRequest):
        return any(
            isinstance(op, PutRequest) or (isinstance(op, TxnRequest) and _adds_data(op))
            for op in (*req.success, *req.failure)
        )
    return False


class Node:
    """One member. Implements api.service.backend.Backend."""

    def __init__(
        self, config: ServerConfig, disk: MemberDisk, recovered: Recovered, store: Store
    ) -> None:
        self.config = config
        self._disk = disk
        self._store = store
        self._cluster: ClusterState = recovered.cluster
        self._member_id = recovered.member_id
        self._hub = WatchHub(store)
        self._lessor = Lessor(time.monotonic)
        self._disk_pool = ThreadPoolExecutor(1, thread_name_prefix="disk")
        self._read_pool = ThreadPoolExecutor(2, thread_name_prefix="read")
        voters = disk.storage.initial_state()[1].voters
        self._conf_state = disk.storage.initial_state()[1]
        self._raw = RawNode(
            Config(
                id=self._member_id,
                rng=random.Random(os.urandom(16)),
                election_ticks=config.election_ticks,
                heartbeat_ticks=1,
                pre_vote=config.pre_vote,
                check_quorum=True,
                applied=recovered.snapshot_index,
                max_committed_size_per_ready_bytes=64 * 1024 * 1024,
            ),
            disk.storage,
        )
        self._single_voter = tuple(voters) == (self._member_id,)
        self._applied = recovered.snapshot_index
        self._snapshot_index = recovered.snapshot_index
        self._bytes_since_snapshot = 0
        self._lead = 0
        self._role = StateType.FOLLOWER
        self._term = disk.storage.initial_state()[0].term
        self._wake = asyncio.Event()
        self._proposals: list[bytes] = []
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._next_proposal_id = ((self._member_id & 0xFFFF) << 48) | (
            (int(time.time() * 1000) & 0xFF_FFFF_FFFF) << 8
        )
        self._reads_queued: list[asyncio.Future[int]] = []
        self._reads_inflight: dict[bytes, list[asyncio.Future[int]]] = {}
        self._read_ctx_seq = 0
        self._apply_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        store.nospace_alarm = self._cluster.has_alarm(ALARM_NOSPACE)
        self.removed = asyncio.Event()
        # Set once our name and client URLs are in the applied member list: like etcd, the
        # server starts serving clients only then (`member list` shows them from the start).
        self.published = asyncio.Event()
        self._leader_channels: dict[str, grpc.aio.Channel] = {}
        self._replication = Replication(
            member_id=self._member_id,
            cluster_id=self._cluster.cluster_id,
            listen=config.listen_peer_urls[0],
            peers={m.id: m.peer_urls for m in self._cluster.members.values()},
            snapshot_dir=os.path.join(disk.member_dir, "snap-transfer"),
            partition_file=config.test_partition_file or None,
            step=self._step,
            report_unreachable=self._report_unreachable,
            report_snapshot=self._report_snapshot,
            make_bundle=self._make_bundle,
            pool=self._read_pool,
            members_provider=self._members_for_peers,
            on_removed=self.removed.set,
        )

    # ----------------------------------------------------------------- life cycle

    @classmethod
    async def start(cls, config: ServerConfig) -> Node:
        loop = asyncio.get_running_loop()
        disk = MemberDisk(config.data_dir, snapshots_max=config.max_snapshots, wals_max=config.max_wals)
        joined: ClusterState | None = None
        join_id = 0
        if not disk.exists() and config.initial_cluster_state == "existing":
            joined, join_id = await _fetch_cluster_to_join(config)

        def open_all() -> tuple[Recovered, Store]:
            if disk.exists():
                recovered = disk.recover(expect_ids=None)
            elif joined is not None:
                recovered = disk.bootstrap_join(joined, member_id=join_id)
            else:
                state = ClusterState(cluster_id=config.cluster_id)
                for m in config.initial_cluster:
                    state.members[m.member_id] = MemberRecord(m.member_id, m.name, m.peer_urls)
                voters = tuple(sorted(state.members))
                recovered = disk.bootstrap(state, member_id=config.member_id, voters=voters)
            store = open_store(config)
            return recovered, store

        recovered, store = await loop.run_in_executor(None, open_all)
        node = cls(config, disk, recovered, store)
        await node._replication.start()
        node._tasks = [
            asyncio.create_task(node._run(), name="ready-loop"),
            asyncio.create_task(node._ticker(), name="ticker"),
            asyncio.create_task(node._lease_loop(), name="leases"),
            asyncio.create_task(node._watch_sync_loop(), name="watch-sync"),
        ]
        if node._single_voter:
            node._raw.campaign()
            node._wake.set()
        record = node._cluster.members.get(node._member_id)
        if record is None or (record.client_urls, record.name) != (
            config.advertise_client_urls, config.name
        ):
            node._tasks.append(asyncio.create_task(node._publish_attributes()))
        else:
            node.published.set()
        if config.auto_promote_learners:
            node._tasks.append(asyncio.create_task(node._auto_promote_loop()))
        return node

    async def _publish_attributes(self) -> None:
        """Publish name and client URLs through the log (etcd's publish), retrying until a
        leader accepts it (a joining member first needs the leader's snapshot)."""
        req = MemberAttributes(self._member_id, self.config.name, self.config.advertise_client_urls)
        while not self._stopped:
            try:
                await self._propose_any(req, timeout_s=5.0)
                self.published.set()
                return
            except (RequestTimeoutError, StoppedError):
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for fut in list(self._waiters.values()):
            if not fut.done():
                fut.set_exception(StoppedError())
        await self._replication.stop()
        for channel in self._leader_channels.values():
            await channel.close()
        loop = asyncio.get_running_loop()

        def close_disk() -> None:
            self._store.sync()
            self._store.close()
            self._disk.close()

        await loop.run_in_executor(self._disk_pool, close_disk)
        self._disk_pool.shutdown(wait=True)
        self._read_pool.shutdown(wait=True)

    # ------------------------------------------------------------------ Backend

    @property
    def cluster_id(self) -> int:
        return self._cluster.cluster_id

    @property
    def member_id(self) -> int:
        return self._member_id

    @property
    def hub(self) -> WatchHub:
        return self._hub

    @property
    def store(self) -> Store:
        return self._store

    def has_leader(self) -> bool:
        return self._lead != 0

    def header(self) -> Header:
        return Header(self.cluster_id, self._member_id, self._store.current_revision, self._term)

    def _request_timeout_s(self) -> float:
        # etcd: 5 s + 2 x election timeout.
        return 5.0 + 2 * self.config.election_timeout_ms / 1000

    async def propose(self, request: Request, *, timeout_s: float | None = None) -> ApplyResult:
        if self._cluster.has_alarm(ALARM_NOSPACE) and _adds_data(request):
            raise NoSpaceAlarmError()
        try:
            # The quota is checked here, before raft (as etcd does): the file size is not
            # the same on every member, so apply must not depend on it (the replicated
            # NOSPACE alarm is what apply obeys).
            self._store.check_quota(request)
        except NoSpaceError:
            if not self._cluster.has_alarm(ALARM_NOSPACE):
                asyncio.create_task(self._raise_nospace())
            raise
        result = await self._propose_any(request, timeout_s=timeout_s)
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[no-any-return]

    async def _propose_any(self, request: object, *, timeout_s: float | None) -> Any:
        if self._stopped:
            raise StoppedError()
        if len(self._proposals) >= PENDING_PROPOSALS_MAX:
            raise RequestTimeoutError()
        self._next_proposal_id += 1
        proposal_id = self._next_proposal_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[proposal_id] = fut
        self._proposals.append(encode(proposal_id, request))
        self._wake.set()
        try:
            return await _with_deadline(
                fut, timeout_s if timeout_s is not None else self._request_timeout_s()
            )
        except RequestTimeoutError:
            METRICS.proposals_failed_total.inc()
            raise
        finally:
            self._waiters.pop(proposal_id, None)

    async def range(self, request: RangeRequest) -> RangeResponse:
        if not request.serializable:
            await self._linearizable_barrier()
        if not request.range_end:
            # One key costs microseconds: read it on the loop rather than pay a thread hop.
            return self._store.range(request)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_pool, self._store.range, request)

    async def _linearizable_barrier(self) -> None:
        """Wait until this member has applied everything committed when the call started."""
        if self._stopped:
            raise StoppedError()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._reads_queued.append(fut)
        self._wake.set()
        index = await _with_deadline(fut, self._request_timeout_s())
        if self._applied < index:
            done: asyncio.Future[None] = loop.create_future()
            self._apply_waiters.append((index, done))
            await _with_deadline(done, self._request_timeout_s())

    async def lease_keep_alive(self, lease_id: int) -> int:
        if self._lead == 0:
            raise NoLeaderError()
        if self._role is not StateType.LEADER:
            return await self._forward_keep_alive(lease_id)
        return self._lessor.renew(lease_id)

    async def lease_time_to_live(self, lease_id: int, *, keys: bool) -> LeaseTimeToLiveResponse:
        if self._lead != 0 and self._role is not StateType.LEADER:
            return await self._forward_time_to_live(lease_id, keys=keys)
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

    def members(self) -> Sequence[MemberInfo]:
        return [
            MemberInfo(m.id, m.name, m.peer_urls, m.client_urls, m.is_learner)
            for m in sorted(self._cluster.members.values(), key=lambda m: m.id)
        ]

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
        await asyncio.get_running_loop().run_in_executor(self._disk_pool, self._store.defragment)

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

    async def move_leader(self, target_id: int) -> None:
        if target_id not in self._cluster.members or target_id in self._conf_state.learners:
            raise BadLeaderTransfereeError()
        if target_id == self._member_id:
            return
        self._raw.transfer_leader(target_id)
        self._wake.set()
        deadline = time.monotonic() + self._request_timeout_s()
        while self._lead != target_id:
            if time.monotonic() > deadline:
                raise RequestTimeoutError()
            await asyncio.sleep(self.config.heartbeat_interval_ms / 1000)

    # ------------------------------------------------------------- ready loop

    async def _run(self) -> None:
        try:
            while not self._stopped:
                await self._wake.wait()
                self._wake.clear()
                self._feed_raft()
                while self._raw.has_ready():
                    await self._handle_ready(self._raw.ready())
                    self._feed_raft()
        except asyncio.CancelledError:
            raise
        except WalError as exc:
            self._fatal(f"WAL failure, stopping at once: {exc}")
        except DataDirError as exc:
            self._fatal(f"data dir failure: {exc}")
        except Exception:
            log.exception("ready loop crashed")
            self._fatal("ready loop crashed")

    def _fatal(self, message: str) -> None:
        log.critical(message)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)  # fail-stop: never continue on a disk we cannot trust

    def _feed_raft(self) -> None:
        """Hand queued proposals and reads to the RawNode (only while there is a leader)."""
        if self._lead == 0:
            return
        if self._proposals:
            batch = self._proposals[:PROPOSALS_PER_BATCH_MAX]
            try:
                self._raw.propose_batch(batch)
            except ProposalDroppedError:
                return  # e.g. during a leader transfer: retried on the next wake
            del self._proposals[: len(batch)]
            if self._proposals:
                self._wake.set()
        if self._reads_queued:
            self._read_ctx_seq += 1
            # Unique across the cluster (a follower's request is forwarded to the leader,
            # which ignores a context it already has pending): member ID + sequence.
            ctx = self._member_id.to_bytes(8, "big") + self._read_ctx_seq.to_bytes(8, "big")
            self._reads_inflight[ctx] = self._reads_queued
            self._reads_queued = []
            self._raw.read_index(ctx)

    async def _handle_ready(self, rd: Ready) -> None:
        loop = asyncio.get_running_loop()
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.lead, rd.soft_state.raft_state)
        if rd.hard_state is not None:
            self._term = rd.hard_state.term
        snapshot_body = b""
        if rd.snapshot is not None:
            snapshot_body = await self._install_store_snapshot(rd)
        # Fast path: when every committed entry is a key-value request, persisting and
        # applying share one trip to the disk thread (one hand-off less per batch). Applying
        # before the messages go out is safe: only committed entries are applied.
        kv_only = self._kv_only(rd) if rd.snapshot is None and rd.committed_entries else None
        if kv_only is not None:
            items, proposal_ids = kv_only
            if rd.must_sync:
                outcomes = await loop.run_in_executor(
                    self._disk_pool, self._persist_and_apply, rd, items
                )
            else:
                # Nothing to fsync (e.g. only the commit index moved): a buffered WAL write
                # and an unsynced LMDB commit cost less than two thread hand-offs.
                outcomes = self._persist_and_apply(rd, items)
            self._disk.install(rd)
        elif rd.snapshot is not None or rd.hard_state is not None or rd.entries:
            await loop.run_in_executor(self._disk_pool, self._persist_timed, rd, snapshot_body)
            self._disk.install(rd, snapshot_body=snapshot_body)
        if rd.snapshot is not None:
            self._after_snapshot_installed(rd.snapshot.metadata, snapshot_body)
        if rd.hard_state is not None:
            METRICS.proposals_committed_total.set(rd.hard_state.commit)
        if rd.messages:
            self._replication.send(rd.messages)
        if kv_only is not None:
            self._deliver(items, proposal_ids, outcomes)
            self._after_apply(rd)
        elif rd.committed_entries:
            await self._apply(rd)
        for rs in rd.read_states:
            for fut in self._reads_inflight.pop(rs.request_ctx, []):
                if not fut.done():
                    fut.set_result(rs.index)
        self._raw.advance(rd)
        await self._maybe_snapshot()

    def _kv_only(self, rd: Ready) -> tuple[list[tuple[int, int, Request]], list[int]] | None:
        """The committed entries as one store batch, or None if any is not a KV request."""
        items: list[tuple[int, int, Request]] = []
        proposal_ids: list[int] = []
        for entry in rd.committed_entries:
            if entry.type is EntryType.CONF_CHANGE:
                return None
            if not entry.data:
                continue
            proposal_id, request = decode(entry.data)
            if not isinstance(request, _KV_REQUESTS):
                return None
            items.append((entry.index, entry.term, request))
            proposal_ids.append(proposal_id)
        return items, proposal_ids

    def _persist_and_apply(
        self, rd: Ready, items: list[tuple[int, int, Request]]
    ) -> list[ApplyOutcome]:
        if rd.hard_state is not None or rd.entries:
            self._persist_timed(rd, b"")
        return self._apply_timed(items) if items else []

    def _persist_timed(self, rd: Ready, snapshot_body: bytes) -> None:
        start = time.perf_counter()
        self._disk.persist(rd, snapshot_body=snapshot_body if rd.snapshot is not None else None)
        if rd.must_sync:
            METRICS.wal_fsync_duration_seconds.observe(time.perf_counter() - start)

    def _apply_timed(self, items: list[tuple[int, int, Request]]) -> list[ApplyOutcome]:
        start = time.perf_counter()
        outcomes = self._store.apply_batch(items)
        METRICS.backend_commit_duration_seconds.observe(time.perf_counter() - start)
        return outcomes

    # -------------------------------------------------------------- membership

    def is_learner(self) -> bool:
        me = self._cluster.members.get(self._member_id)
        return bool(me and me.is_learner)

    def _members_for_peers(self) -> tuple[int, list[list[Any]]]:
        return self._cluster.cluster_id, [
            [m.id, m.name, list(m.peer_urls), list(m.client_urls), m.is_learner]
            for m in self._cluster.members.values()
        ]

    def _sync_peers(self) -> None:
        self._replication.set_peers(
            {m.id: m.peer_urls for m in self._cluster.members.values()}, me=self._member_id
        )

    def _apply_conf_change(self, index: int, change: ConfChange) -> None:
        self._conf_state = self._raw.apply_conf_change(change)
        proposal_id, member = membership.decode_context(change.context)
        membership.apply_change(self._cluster, change, member)
        self._sync_peers()
        # A member added now may need a snapshot (its log is empty): raft's snapshot must
        # already list it, or the newcomer refuses it. Record one at this entry (the log is
        # not compacted; the store copy sent with it is taken at send time).
        if index > self._disk.storage.snapshot().metadata.index:
            self._disk.storage.create_snapshot(index, self._conf_state, self._cluster.encode())
        fut = self._waiters.get(proposal_id)
        if fut is not None and not fut.done():
            fut.set_result(self.members())
        if change.type is ConfChangeType.REMOVE_NODE and change.node_id == self._member_id:
            log.warning("this member was removed from the cluster; stopping")
            self.removed.set()

    def _active_peers(self) -> dict[int, bool]:
        """Members the leader heard from within the election timeout (etcd's started members)."""
        progress = self._raw.status().progress
        active = {pid: pr.recent_active for pid, pr in progress.items()}
        active[self._member_id] = True
        return active

    async def _propose_conf_change(self, change_type: ConfChangeType, member_id: int,
                                   member: MemberRecord | None) -> Sequence[MemberInfo]:
        if self._stopped:
            raise StoppedError()
        if self._lead == 0:
            raise NoLeaderError()
        self._next_proposal_id += 1
        proposal_id = self._next_proposal_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[proposal_id] = fut
        change = ConfChange(change_type, member_id, membership.encode_context(proposal_id, member))
        try:
            self._raw.propose_conf_change(change)
        except ProposalDroppedError:
            self._waiters.pop(proposal_id, None)
            raise RequestTimeoutError() from None
        self._wake.set()
        try:
            result: Sequence[MemberInfo] = await asyncio.wait_for(
                asyncio.shield(fut), self._request_timeout_s()
            )
            return result
        except TimeoutError:
            raise RequestTimeoutError() from None
        finally:
            self._waiters.pop(proposal_id, None)

    async def member_add(
        self, peer_urls: Sequence[str], *, is_learner: bool
    ) -> tuple[MemberInfo, Sequence[MemberInfo]]:
        membership.check_add(self._cluster, peer_urls, is_learner=is_learner)
        if not is_learner and self.config.strict_reconfig_check and self._role is StateType.LEADER:
            membership.check_strict_add(self._cluster, self._active_peers())
        token = f"{self.config.initial_cluster_token}{time.time_ns()}"
        member_id = compute_member_id(peer_urls, token)
        record = MemberRecord(member_id, "", tuple(peer_urls), (), is_learner)
        kind = ConfChangeType.ADD_LEARNER_NODE if is_learner else ConfChangeType.ADD_NODE
        members = await self._propose_conf_change(kind, member_id, record)
        added = next(m for m in members if m.id == member_id)
        return added, members

    async def member_remove(self, member_id: int) -> Sequence[MemberInfo]:
        if member_id not in self._cluster.members:
            raise MemberNotFoundError()
        if self.config.strict_reconfig_check and self._role is StateType.LEADER:
            membership.check_strict_remove(self._cluster, member_id, self._active_peers())
        return await self._propose_conf_change(ConfChangeType.REMOVE_NODE, member_id, None)

    async def member_update(self, member_id: int, peer_urls: Sequence[str]) -> Sequence[MemberInfo]:
        if member_id not in self._cluster.members:
            raise MemberNotFoundError()
        taken = {u for m in self._cluster.members.values() if m.id != member_id for u in m.peer_urls}
        if any(u in taken for u in peer_urls):
            raise PeerURLExistsError()
        result = await self._propose_any(MemberUpdate(member_id, tuple(peer_urls)), timeout_s=None)
        members: Sequence[MemberInfo] = result
        return members

    async def member_promote(self, member_id: int) -> Sequence[MemberInfo]:
        if member_id not in self._cluster.members:
            raise MemberNotFoundError()
        if self._role is not StateType.LEADER:
            # Only the leader knows how far the learner got: ask it (etcd forwards too).
            return await self._forward_promote(member_id)
        progress = self._raw.status().progress
        learner = progress.get(member_id)
        me = progress.get(self._member_id)
        membership.check_promote(
            self._cluster, member_id,
            learner_match=learner.match if learner is not None else 0,
            leader_match=me.match if me is not None else self._disk.storage.last_index(),
        )
        member = self._cluster.members[member_id]
        return await self._propose_conf_change(ConfChangeType.ADD_NODE, member_id, member)

    async def _auto_promote_loop(self) -> None:
        """Beyond etcd (opt-in): the leader promotes a learner once it is in sync."""
        while True:
            await asyncio.sleep(1.0)
            if self._role is not StateType.LEADER:
                continue
            for m in list(self._cluster.members.values()):
                if m.is_learner:
                    with contextlib.suppress(NodeError):
                        await self.member_promote(m.id)
                        log.info("promoted learner %x automatically", m.id)

    # ------------------------------------------------------- leader forwarding

    def _leader_channel(self) -> grpc.aio.Channel:
        if self._lead == 0:
            raise NoLeaderError()
        leader = self._cluster.members.get(self._lead)
        if leader is None or not leader.client_urls:
            raise RequestTimeoutError()  # the leader has not published its client URLs yet
        url = leader.client_urls[0]
        channel = self._leader_channels.get(url)
        if channel is None:
            channel = grpc.aio.insecure_channel(listen_target(url))
            self._leader_channels[url] = channel
        return channel

    async def _forward_promote(self, member_id: int) -> Sequence[MemberInfo]:
        stub = rpc_pb2_grpc.ClusterStub(self._leader_channel())
        try:
            await stub.MemberPromote(rpc_pb2.MemberPromoteRequest(ID=member_id), timeout=self._request_timeout_s())
        except grpc.aio.AioRpcError as exc:
            raise _forwarded_error(exc) from None
        return self.members()

    async def _forward_keep_alive(self, lease_id: int) -> int:
        stub = rpc_pb2_grpc.LeaseStub(self._leader_channel())
        call = stub.LeaseKeepAlive(timeout=self._request_timeout_s())
        try:
            await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
            resp = await call.read()
            await call.done_writing()
        except grpc.aio.AioRpcError as exc:
            raise _forwarded_error(exc) from None
        finally:
            call.cancel()
        if resp is grpc.aio.EOF:
            raise RequestTimeoutError()
        return int(resp.TTL)

    async def _forward_time_to_live(self, lease_id: int, *, keys: bool) -> LeaseTimeToLiveResponse:
        stub = rpc_pb2_grpc.LeaseStub(self._leader_channel())
        try:
            resp = await stub.LeaseTimeToLive(
                rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys), timeout=self._request_timeout_s()
            )
        except grpc.aio.AioRpcError as exc:
            raise _forwarded_error(exc) from None
        return LeaseTimeToLiveResponse(
            id=resp.ID, ttl=resp.TTL, granted_ttl=resp.grantedTTL, keys=tuple(resp.keys),
            revision=resp.header.revision,
        )

    # ------------------------------------------------------------------- peers

    def _step(self, message: Message) -> None:
        try:
            self._raw.step(message)
        except (StepPeerNotFoundError, StepLocalMsgError) as exc:
            log.debug("dropped a message from %x: %s", message.from_, exc)
            return
        self._wake.set()

    def _report_unreachable(self, peer_id: int) -> None:
        self._raw.report_unreachable(peer_id)
        self._wake.set()

    def _report_snapshot(self, peer_id: int, ok: bool) -> None:
        self._raw.report_snapshot(peer_id, ok)
        self._wake.set()

    def _make_bundle(self, path: str) -> None:
        """Runs on the read pool: cluster state of raft's snapshot + a copy of the store."""
        snapshot = self._disk.storage.snapshot()
        write_bundle(path, snapshot.data or self._cluster.encode(), self._store.snapshot_to)

    async def _install_store_snapshot(self, rd: Ready) -> bytes:
        """Step 1 for a snapshot from the leader: swap in its store copy; returns the
        cluster state that goes into our snapshot file."""
        assert rd.snapshot is not None
        meta = rd.snapshot.metadata
        path = self._replication.take_incoming(meta.index, meta.term)
        if path is None:
            raise DataDirError(f"no snapshot body received for index {meta.index}")
        store_part = path + ".store"

        def install() -> bytes:
            try:
                body = split_bundle(path, store_part)
                self._replace_store(store_part)
                return body
            finally:
                for p in (path, store_part):
                    with contextlib.suppress(OSError):
                        os.unlink(p)

        return await asyncio.get_running_loop().run_in_executor(self._disk_pool, install)

    def _replace_store(self, copy_path: str) -> None:
        """Swap in the leader's store copy (disk thread; the ready loop is waiting on us, so
        nothing applies meanwhile; readers see the old store until the swap)."""
        old = self._store
        old.close()
        Store.restore_from(copy_path, self.config.data_dir)
        self._store = open_store(self.config)

    def _after_snapshot_installed(self, meta: SnapshotMetadata, body: bytes) -> None:
        self._cluster = ClusterState.decode(body)
        self._store.nospace_alarm = self._cluster.has_alarm(ALARM_NOSPACE)
        self._conf_state = meta.conf_state
        self._applied = max(self._applied, meta.index)
        self._snapshot_index = meta.index
        # Watchers continue from the new store: they catch up from it, or are cancelled as
        # compacted when their next revision is gone (etcd moves them to unsynced likewise).
        self._hub.restore(self._store)
        self._replication.set_peers(
            {m.id: m.peer_urls for m in self._cluster.members.values()}, me=self._member_id
        )
        log.info("installed a snapshot from the leader at index %d", meta.index)

    def _on_soft_state(self, lead: int, role: StateType) -> None:
        if lead != self._lead and lead != 0:
            METRICS.leader_changes_seen_total.inc()
        METRICS.has_leader.set(1 if lead != 0 else 0)
        was_leader = self._role is StateType.LEADER
        self._lead, self._role = lead, role
        if role is StateType.LEADER and not was_leader:
            self._lessor.promote(self._store.leases())
        elif was_leader and role is not StateType.LEADER:
            self._lessor.demote()
        if lead != 0:
            self._wake.set()

    async def _apply(self, rd: Ready) -> None:
        batch: list[tuple[int, int, Request]] = []
        batch_ids: list[int] = []
        for entry in rd.committed_entries:
            if entry.type is EntryType.CONF_CHANGE:
                await self._flush_apply(batch, batch_ids)
                self._apply_conf_change(entry.index, ConfChange.unmarshal(entry.data))
                continue
            if not entry.data:
                continue  # the leader's no-op entry
            proposal_id, request = decode(entry.data)
            if isinstance(request, _KV_REQUESTS):
                batch.append((entry.index, entry.term, request))
                batch_ids.append(proposal_id)
                continue
            await self._flush_apply(batch, batch_ids)
            self._apply_cluster(proposal_id, request)
        await self._flush_apply(batch, batch_ids)
        self._after_apply(rd)

    def _after_apply(self, rd: Ready) -> None:
        self._applied = rd.committed_entries[-1].index
        self._bytes_since_snapshot += sum(len(e.data) for e in rd.committed_entries)
        METRICS.proposals_applied_total.set(self._applied)
        METRICS.proposals_pending.set(len(self._waiters))
        if self._apply_waiters:
            still = []
            for index, fut in self._apply_waiters:
                if index <= self._applied:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    still.append((index, fut))
            self._apply_waiters = still

    async def _flush_apply(self, batch: list[tuple[int, int, Request]], ids: list[int]) -> None:
        if not batch:
            return
        items, proposal_ids = list(batch), list(ids)
        batch.clear()
        ids.clear()
        outcomes = await asyncio.get_running_loop().run_in_executor(
            self._disk_pool, self._apply_timed, items
        )
        self._deliver(items, proposal_ids, outcomes)

    def _deliver(
        self, items: list[tuple[int, int, Request]], proposal_ids: list[int],
        outcomes: list[ApplyOutcome],
    ) -> None:
        """After a batch committed in LMDB: watch events, lease clock, waiting clients."""
        events: list[Event] = []
        revision = self._hub.notified_revision
        for (_index, _term, request), proposal_id, outcome in zip(
            items, proposal_ids, outcomes, strict=True
        ):
            if outcome is None:
                continue  # applied before a restart: the store skipped it
            if isinstance(outcome, ApplyResult):
                events.extend(outcome.events)
                revision = max(revision, outcome.revision)
                self._track_lease(request, outcome)
            elif isinstance(outcome, NoSpaceError) and not self._cluster.has_alarm(ALARM_NOSPACE):
                asyncio.create_task(self._raise_nospace())
            fut = self._waiters.get(proposal_id)
            if fut is not None and not fut.done():
                fut.set_result(outcome)
        if events or revision > self._hub.notified_revision:
            self._hub.notify(revision, events)

    def _track_lease(self, request: Request, result: ApplyResult) -> None:
        """Keep the leader's lease clock in step with the applied lease state."""
        if self._role is not StateType.LEADER:
            return
        resp = result.response
        if isinstance(resp, LeaseGrantResponse):
            self._lessor.grant(resp.id, resp.ttl)
        elif isinstance(request, LeaseRevokeRequest):
            self._lessor.revoke(request.id)

    async def _raise_nospace(self) -> None:
        with contextlib.suppress(Exception):
            await self._propose_any(
                AlarmRequest(ALARM_ACTIVATE, self._member_id, ALARM_NOSPACE), timeout_s=None
            )

    def _apply_cluster(self, proposal_id: int, request: object) -> None:
        result: object = None
        if isinstance(request, AlarmRequest):
            result = self._cluster.apply_alarm(request)
            self._store.nospace_alarm = self._cluster.has_alarm(ALARM_NOSPACE)
        elif isinstance(request, MemberAttributes):
            self._cluster.apply_attributes(request)
        elif isinstance(request, MemberUpdate):
            member = self._cluster.members.get(request.member_id)
            if member is not None:
                member.peer_urls = tuple(request.peer_urls)
                self._sync_peers()
            result = self.members()
        fut = self._waiters.get(proposal_id)
        if fut is not None and not fut.done():
            fut.set_result(result)

    async def _maybe_snapshot(self) -> None:
        # Beyond etcd's --snapshot-count: also snapshot after SNAPSHOT_BYTES_TRIGGER of applied
        # entries, so big entries (128-op txns) cannot make the in-memory log grow unbounded.
        if (
            self._applied - self._snapshot_index < self.config.snapshot_count
            and self._bytes_since_snapshot < SNAPSHOT_BYTES_TRIGGER
        ):
            return
        self._bytes_since_snapshot = 0
        index = self._applied
        loop = asyncio.get_running_loop()
        body = self._cluster.encode()
        conf_state = self._conf_state

        def snapshot() -> None:
            self._store.sync()  # the marker must never get ahead of durable LMDB state
            self._disk.take_snapshot(index=index, conf_state=conf_state, body=body)

        await loop.run_in_executor(self._disk_pool, snapshot)
        self._snapshot_index = index
        self._disk.compact_log(index, conf_state=conf_state, body=body)
        log.info("saved snapshot at index %d", index)

    # ------------------------------------------------------------------ timers

    async def _ticker(self) -> None:
        interval = self.config.heartbeat_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            self._raw.tick()
            self._wake.set()

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

    async def _watch_sync_loop(self) -> None:
        """Catch up unsynced watchers from the store, in bounded batches, on the read pool."""
        wake = asyncio.Event()
        loop = asyncio.get_running_loop()

        def wakeup() -> None:
            loop.call_soon(wake.set)

        self._hub.set_wakeup(wakeup)
        while True:
            await wake.wait()
            wake.clear()
            while self._hub.has_unsynced:
                self._hub.sync_unsynced(WATCH_SYNC_EVENTS_MAX)
                await asyncio.sleep(0)


async def _with_deadline(fut: asyncio.Future[Any], timeout_s: float) -> Any:
    """Await `fut`, failing with etcd's "request timed out" after `timeout_s`. Cheaper than
    wait_for(shield(...)) on the hot path: one timer handle, no extra task or future."""

    def expire() -> None:
        if not fut.done():
            fut.set_exception(RequestTimeoutError())

    handle = asyncio.get_running_loop().call_later(timeout_s, expire)
    try:
        return await fut
    finally:
        handle.cancel()


def open_store(config: ServerConfig) -> Store:
    """The LMDB store. Not durable per commit: the WAL is, and the applied index stored in
    each LMDB transaction makes WAL replay idempotent (it is synced before snapshots)."""
    return Store(
        config.data_dir, durable=False, quota_bytes=config.quota_backend_bytes,
        quota_at_apply=False,
        max_txn_ops=config.max_txn_ops,
        # etcd: minimum TTL = ceil(1.5 x election timeout), 2 s by default.
        min_lease_ttl_s=max(1, -(-3 * config.election_timeout_ms // 2000)),
    )


def listen_target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def _forwarded_error(exc: grpc.aio.AioRpcError) -> NodeError:
    """Re-raise what the leader answered with the same code and message."""
    error = NodeError(exc.details() or "etcdserver: request timed out")
    error.grpc_code = exc.code().name
    return error


async def _fetch_cluster_to_join(config: ServerConfig) -> tuple[ClusterState, int]:
    """--initial-cluster-state=existing: learn the cluster ID and our member ID (added by
    MemberAdd with our peer URLs) from a running member, as etcd does."""
    mine = set(config.initial_advertise_peer_urls)
    others = [u for m in config.initial_cluster for u in m.peer_urls if u not in mine]
    cluster_id, members = await fetch_members(others)
    state = ClusterState(cluster_id=cluster_id)
    member_id = 0
    for mid, name, peers, clients, learner in members:
        state.members[mid] = MemberRecord(mid, name, tuple(peers), tuple(clients), bool(learner))
        if set(peers) & mine:
            member_id = mid
    if member_id == 0:
        raise DataDirError(
            "this member's peer URLs are not in the cluster's member list: "
            "add it with `member add` before starting it with --initial-cluster-state=existing"
        )
    return state, member_id
