"""Node's persist half: where a Ready's disk work runs (steps 1-2 of the Ready contract, and
the apply of a batch of key-value entries).

A mixin of `Node` (api/server/node.py), split out for size. Three places, by cost:
- on the loop: a Ready that needs no fsync (a commit index to buffer in the WAL, at most a
  small, bounded apply) while the disk thread is idle, so nothing there can race the WAL or
  an LMDB write. A trip to the thread and back costs two wake-ups (about 100 us here) and
  the apply runs slower on a thread that just woke up; on the loop that work holds the GIL
  either way. A Ready that needs an fsync runs there too when `fsync_on_loop` says so: a
  leader whose commit waits for its own fsync, one write in flight, a quick disk;
- on the disk thread, persist then send then apply: a follower's acks leave once its
  entries are durable, before the apply of earlier entries (which holds the GIL and would
  hold the acks back);
- on the disk thread in one trip: everything else.
A leader's messages go out before its fsync is even queued (Raft thesis 10.2.1; raft/ready.py
says why that is safe): the followers' round trip is the longer path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from api.server.metrics import METRICS
from kvstore.store import ApplyOutcome
from kvstore.types import (
    DeleteRangeRequest,
    LeaseCheckpointRequest,
    LeaseGrantRequest,
    PutRequest,
    RangeRequest,
    Request,
    TxnRequest,
)
from raft import Ready, StateType

ON_LOOP_APPLY_MAX = 64  # committed entries a no-fsync Ready may apply on the loop
FSYNC_ON_LOOP_MAX_S = 0.002  # fsyncs run on the loop only while they average less than this
_FSYNC_AVERAGE_WEIGHT = 0.2  # of the newest fsync in the moving average


def fsync_on_loop(is_leader: bool, voters: int, writes_in_flight: int,
                  fsync_average_s: float) -> bool:
    """Whether a leader's fsync may run on the loop instead of the disk thread.

    Only with exactly one write in flight (one client writing alone): then no other
    write waits to be accepted while the loop syncs, and the two thread hand-offs it saves
    are a tenth of such a put's latency. With more writes in flight the loop must keep
    accepting them while the disk thread syncs, so that they share the next fsync (group
    commit: syncing on the loop there turned every batch into a single write).
    Only when the commit waits for this fsync anyway: with three or more voters the
    followers' acks alone are a majority, and the loop must stay free to count them
    (measured: 3-member single-client puts were slower with the leader syncing on its
    loop). A follower never does: its acks would wait behind its apply.
    A slow disk (a moving average of FSYNC_ON_LOOP_MAX_S or more) keeps every fsync off
    the loop, so a stalling disk cannot stall reads, watches and heartbeats for long.
    """
    followers_are_a_majority = voters - 1 >= voters // 2 + 1
    return (is_leader and not followers_are_a_majority and writes_in_flight == 1
            and fsync_average_s < FSYNC_ON_LOOP_MAX_S)


Items = Sequence[tuple[int, int, Request]]


def _bounded(req: object) -> bool:
    """Whether applying `req` is small, bounded work: no ranges over many keys, no
    compaction, no lease revoke (which deletes however many keys the lease holds)."""
    if isinstance(req, PutRequest | LeaseGrantRequest | LeaseCheckpointRequest):
        return True
    if isinstance(req, RangeRequest | DeleteRangeRequest):
        return not req.range_end
    if isinstance(req, TxnRequest):
        return all(_bounded(op) for op in (*req.success, *req.failure))
    return False


def _small_apply(items: Items) -> bool:
    return len(items) <= ON_LOOP_APPLY_MAX and all(
        _bounded(request) for _index, _term, request in items)


class PersistMixin:
    _fsync_average_s = 0.0  # moving average of the WAL fsyncs (fsync_on_loop)

    async def _persist_ready(
        self, rd: Ready, kv_items: Items | None, snapshot_body: bytes, early: bool
    ) -> tuple[list[ApplyOutcome], bool]:
        """Persist `rd` and, when `kv_items` is not None (every committed entry is a KV
        request), apply them. Returns the outcomes and whether `rd.messages` went out."""
        items = kv_items or ()
        if kv_items is None and rd.snapshot is None and rd.hard_state is None and not rd.entries:
            return [], False
        sent = early
        if early:
            self._replication.send(rd.messages)
        # The checks that cost nothing first: _small_apply walks every committed request.
        if (rd.snapshot is None and self._disk_thread.idle
                and (not rd.must_sync or fsync_on_loop(
                    self._role is StateType.LEADER, len(self._conf_state.voters),
                    len(self._waiters), self._fsync_average_s))
                and _small_apply(items)):
            outcomes = self._persist_and_apply(rd, items)
            self._disk.install(rd)
            return outcomes, sent
        if items and rd.messages and not early:
            await self._disk_thread.submit(self._persist_timed, rd, b"")
            self._replication.send(rd.messages)
            sent = True
            if self._disk_thread.idle and _small_apply(items):
                outcomes = self._apply_timed(items)
            else:
                outcomes = await self._disk_thread.submit(self._apply_timed, items)
        elif kv_items is not None:
            outcomes = await self._disk_thread.submit(self._persist_and_apply, rd, items)
        else:
            outcomes = []
            await self._disk_thread.submit(self._persist_timed, rd, snapshot_body)
        self._disk.install(rd, snapshot_body=snapshot_body)
        return outcomes, sent

    def _persist_and_apply(self, rd: Ready, items: Items) -> list[ApplyOutcome]:
        if rd.hard_state is not None or rd.entries:
            self._persist_timed(rd, b"")
        return self._apply_timed(items) if items else []

    def _persist_timed(self, rd: Ready, snapshot_body: bytes) -> None:
        start = time.perf_counter()
        self._disk.persist(rd, snapshot_body=snapshot_body if rd.snapshot is not None else None)
        if rd.must_sync:
            took = time.perf_counter() - start
            METRICS.wal_fsync_duration_seconds.observe(took)
            # Written by whichever thread persists; never by two at once (see module doc).
            self._fsync_average_s += _FSYNC_AVERAGE_WEIGHT * (took - self._fsync_average_s)

    def _apply_timed(self, items: Items) -> list[ApplyOutcome]:
        start = time.perf_counter()
        outcomes = self._store.apply_batch(items)
        METRICS.backend_commit_duration_seconds.observe(time.perf_counter() - start)
        return outcomes
