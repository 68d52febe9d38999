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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from api.server.bootstrap import open_member
from api.server.cluster_state import (
    ALARM_NOSPACE,
    ClusterState,
)
from api.server.codec import AlarmRequest, MemberAttributes, MemberUpdate, decode, encode
from api.server.config import ServerConfig
from api.server.disk import DataDirError, MemberDisk, Recovered
from api.server.disk_thread import DiskThread
from api.server.leader_client import LeaderClient
from api.server.lessor import Lessor
from api.server.metrics import METRICS
from api.server.node_leases import LeaseMixin
from api.server.node_maintenance import MaintenanceMixin
from api.server.node_membership import MembershipMixin
from api.server.node_persist import PersistMixin
from api.server.node_snapshots import SnapshotMixin
from api.server.replication import Replication
from api.service.backend import (
    BadLeaderTransfereeError,
    Header,
    NoLeaderError,
    NoSpaceAlarmError,
    RequestTimeoutError,
    StoppedError,
)
from kvstore.errors import NoSpaceError
from kvstore.store import ApplyOutcome, Store
from kvstore.types import (
    ApplyResult,
    CompactionRequest,
    DeleteRangeRequest,
    Event,
    LeaseCheckpointRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
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
    SoftState,
    StateType,
    StepLocalMsgError,
    StepPeerNotFoundError,
    sends_before_persist,
)
from raft.types import ConfChange
from wal import WalError

log = logging.getLogger("kvstore.node")

_KV_REQUESTS = (
    PutRequest, DeleteRangeRequest, TxnRequest, CompactionRequest,
    LeaseGrantRequest, LeaseRevokeRequest, LeaseCheckpointRequest,
)
PROPOSALS_PER_BATCH_MAX = 4096
PENDING_PROPOSALS_MAX = 100_000
WATCH_SYNC_EVENTS_MAX = 10_000


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


class Node(MembershipMixin, SnapshotMixin, LeaseMixin, MaintenanceMixin, PersistMixin):
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
        self._disk_thread = DiskThread("disk")
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
        self._leader_client = LeaderClient(self._leader_client_url, self._request_timeout_s)
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
        disk, recovered, store = await open_member(config)
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
        await self._leader_client.close()

        def close_disk() -> None:
            self._store.sync()
            self._store.close()
            self._disk.close()

        await self._disk_thread.run(close_disk)
        self._disk_thread.shutdown()
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

    def _leader_client_url(self) -> str:
        if self._lead == 0:
            raise NoLeaderError()
        leader = self._cluster.members.get(self._lead)
        if leader is None or not leader.client_urls:
            raise RequestTimeoutError()  # the leader has not published its client URLs yet
        return leader.client_urls[0]

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
        # A leader's messages go out before its own fsync, which then runs in parallel with
        # the followers' (Raft thesis 10.2.1; why that is safe: raft/ready.py, step 3).
        early = bool(rd.messages) and sends_before_persist(
            rd, SoftState(self._lead, self._role), self._disk.storage.hard_state())
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.lead, rd.soft_state.raft_state)
        if rd.hard_state is not None:
            self._term = rd.hard_state.term
        snapshot_body = b""
        if rd.snapshot is not None:
            snapshot_body = await self._install_store_snapshot(rd)
        # Fast path: when every committed entry is a key-value request, persisting and
        # applying share one trip to the disk thread, or none (node_persist.py).
        kv_only = self._kv_only(rd) if rd.snapshot is None and rd.committed_entries else None
        items, proposal_ids = kv_only if kv_only is not None else ([], [])
        outcomes, sent = await self._persist_ready(
            rd, items if kv_only is not None else None, snapshot_body, early)
        if rd.snapshot is not None:
            self._after_snapshot_installed(rd.snapshot.metadata, snapshot_body)
        if rd.hard_state is not None:
            METRICS.proposals_committed_total.set(rd.hard_state.commit)
        if rd.messages and not sent:
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

    # -------------------------------------------------------------- membership


    # ------------------------------------------------------- leader forwarding


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
        outcomes = await self._disk_thread.run(self._apply_timed, items)
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


    # ------------------------------------------------------------------ timers

    async def _ticker(self) -> None:
        interval = self.config.heartbeat_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            self._raw.tick()
            self._wake.set()


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
