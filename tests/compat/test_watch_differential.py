"""Differential test of watch streams: kvstore's Store + WatchHub against a real etcd 3.4.

The same seeded write sequence (tests/compat/mvcc_ops.py: puts, deletes, txns, compactions,
lease grants and revokes) goes to etcd and to a Store whose batches are notified to a hub.
Between writes, watchers are created on both sides with the same key range, start revision
(now, past, future, compacted), prev_kv and filters: on etcd one Watch stream per watcher
through our stubs, on our side `hub.watch`. At the end both streams must carry the same
events (type, key, value, revisions, version, lease, prev_kv) in the same order, and the same
compaction cancellation.

One deliberate difference is allowed: a watch that starts exactly at the compact revision C.
etcd's compaction drops tombstones at C, so etcd never sends the DELETE events of revision C
to such a watcher; kvstore's compaction keeps them and the hub sends them. Those events are
left out of our side of the comparison (every other event of revision C must match).
"""

from __future__ import annotations

import dataclasses
import queue
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from api.proto import rpc_pb2, rpc_pb2_grpc
from api.service import convert
from kvstore import types as t
from kvstore.errors import KvError
from kvstore.store import Store
from kvstore.watch import EmptyWatchRangeError, Watcher, WatchFilter, WatchHub
from tests.compat.etcd_server import etcd_binary, run_etcd
from tests.compat.mvcc_ops import (
    LONG_TTL_S,
    EtcdExecutor,
    Generator,
    LeaseMap,
    map_leases_in_request,
)

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.slow,
    pytest.mark.skipif(etcd_binary() is None, reason="real etcd not installed (make debs)"),
]

SEEDS = range(5)
STEPS = 120
WAIT_S = 5.0
ETCD_SYNC_LOOP_S = 0.3  # 3x etcd's syncWatchersLoop period


class EtcdWatch:
    """One etcd Watch stream with one watcher; a thread collects its responses."""

    def __init__(self, channel: grpc.Channel, create: rpc_pb2.WatchCreateRequest) -> None:
        self._requests: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()
        self._requests.put(rpc_pb2.WatchRequest(create_request=create))
        self._call = rpc_pb2_grpc.WatchStub(channel).Watch(iter(self._requests.get, None))
        self.events: list[t.Event] = []
        self.compact_revision = 0
        self.canceled = False
        self.cancel_reason = ""
        self.raw: list[rpc_pb2.WatchResponse] = []
        self.created = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for resp in self._call:
                if resp.created:
                    self.created.set()
                with self._lock:
                    self.events.extend(convert.event_from_pb(e) for e in resp.events)
                    self.raw.append(resp)
                    if resp.canceled:
                        self.canceled = True
                        self.compact_revision = resp.compact_revision
                        self.cancel_reason = resp.cancel_reason
        except grpc.RpcError:
            pass  # cancelled by close()

    def wait_for(self, n_events: int, *, canceled: bool) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.events) >= n_events and self.canceled == canceled:
                    return
            time.sleep(0.01)

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()
        self._thread.join(timeout=5)


class Ours:
    """A Store and its hub, with the node's commit-then-notify ordering."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hub = WatchHub(store, buffer_events_max=4)
        self.index = 0
        self.got: dict[Watcher, list[t.Event]] = {}
        self.compacted: dict[Watcher, int] = {}
        self.from_compact_revision: set[Watcher] = set()

    def execute(self, req: t.Request) -> t.Response | KvError:
        if isinstance(req, t.RangeRequest):
            return self.store.range(req)
        self.index += 1
        out = self.store.apply(self.index, 1, req)
        assert out is not None
        if isinstance(out, KvError):
            return out
        self.hub.notify(self.store.current_revision, out.events)
        return out.response

    def drain(self) -> None:
        for _ in range(10_000):
            self.hub.sync_unsynced(16)
            moved = False
            for w, got in self.got.items():
                batch = w.take(3)
                if batch is not None:
                    moved = True
                    got.extend(batch.events)
                    if batch.canceled:
                        self.compacted[w] = batch.compact_revision
            if not moved and not self.hub.has_unsynced:
                return
        raise AssertionError("hub did not drain")


def etcd_event_in_store_ids(ev: t.Event, leases: LeaseMap) -> t.Event:
    def kv(x: t.KeyValue | None) -> t.KeyValue | None:
        return dataclasses.replace(x, lease=leases.map(x.lease)) if x and x.lease else x

    mapped = kv(ev.kv)
    assert mapped is not None
    return dataclasses.replace(ev, kv=mapped, prev_kv=kv(ev.prev_kv))


def _tombstone_at(ev: t.Event, revision: int) -> bool:
    return ev.type is t.EventType.DELETE and ev.kv.mod_revision == revision


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path, durable=False, min_lease_ttl_s=1) as s:
        yield s


@pytest.mark.parametrize("seed", SEEDS)
def test_watch_streams_match_etcd(seed: int, store: Store) -> None:
    rng = random.Random(seed)
    # Negative lease IDs are the MVCC differential's business (kvstore refuses them today).
    gen = Generator(random.Random(seed + 1000), negative_lease_ids=False)
    ours = Ours(store)
    watches: list[tuple[Watcher | None, EtcdWatch]] = []
    with run_etcd() as server, grpc.insecure_channel(server.endpoint) as channel:
        etcd = EtcdExecutor(channel)
        try:
            catching_up = False  # an etcd watcher may still be in its catch-up phase
            for _ in range(STEPS):
                if rng.random() < 0.15:
                    watches.append(create_pair(rng, gen, ours, channel))
                    catching_up = True
                    continue
                req = gen.next()
                if isinstance(req, t.RangeRequest):
                    continue
                if isinstance(req, t.CompactionRequest) and catching_up:
                    # etcd catches watchers up (or cancels them) in a loop every 100 ms, our
                    # hub at once: let etcd's loop run before a compaction could cancel a
                    # watcher there that is already synced here.
                    time.sleep(ETCD_SYNC_LOOP_S)
                    catching_up = False
                etcd_out = etcd.execute(req)
                our_out = ours.execute(map_leases_in_request(req, gen.leases))
                if isinstance(etcd_out, t.LeaseGrantResponse):
                    assert isinstance(our_out, t.LeaseGrantResponse), our_out
                    gen.leases.add(
                        etcd_out.id,
                        our_out.id if req.id == 0 else etcd_out.id,
                        usable=req.ttl >= LONG_TTL_S,
                    )
                if not isinstance(our_out, KvError):
                    gen.observe(req, etcd_out, our_out)
                ours.drain()
            for w, ew in watches:
                if w is None:  # empty range: etcd creates and cancels it at once
                    ew.wait_for(0, canceled=True)
                    assert (ew.canceled, ew.cancel_reason, ew.events) == (
                        True,
                        EmptyWatchRangeError.message,
                        [],
                    )
                    continue
                ew.wait_for(len(ours.got[w]), canceled=w in ours.compacted)
                time.sleep(0.02)  # anything extra etcd would still send
                expected = [etcd_event_in_store_ids(e, gen.leases) for e in ew.events]
                got = ours.got[w]
                if w in ours.from_compact_revision:
                    got = [e for e in got if not _tombstone_at(e, w.start_revision)]
                label = (
                    f"SEED={seed} {w!r} start={w.start_revision} "
                    f"filters={sorted(w.filters)} prev_kv={w.prev_kv}"
                )
                assert got == expected, label + f" etcd responses: {ew.raw}"
                assert (w in ours.compacted, ours.compacted.get(w, 0)) == (
                    ew.canceled,
                    ew.compact_revision,
                ), label
        finally:
            for _, ew in watches:
                ew.close()


def create_pair(
    rng: random.Random, gen: Generator, ours: Ours, channel: grpc.Channel
) -> tuple[Watcher | None, EtcdWatch]:
    key, range_end = gen.key_range()
    if not key:
        key = b"a"
    current = ours.store.current_revision
    compact = ours.store.compact_revision
    choices = [0, current, current + 1, current + 2, max(compact + 1, current - 3)]
    if compact > 1:
        choices.append(rng.randint(1, compact - 1))  # below the compact revision: cancelled
    if compact:
        choices.append(compact)  # served, not cancelled
    start = rng.choice(choices)
    prev_kv = rng.random() < 0.5
    filters = [f for f in WatchFilter if rng.random() < 0.15]
    ew = EtcdWatch(
        channel,
        rpc_pb2.WatchCreateRequest(
            key=key,
            range_end=range_end,
            start_revision=start,
            prev_kv=prev_kv,
            filters=[f.name for f in filters],
        ),
    )
    # start_revision 0 means "after the revision current when etcd registers the watcher".
    assert ew.created.wait(WAIT_S), "etcd did not confirm the watch"
    try:
        w: Watcher | None = ours.hub.watch(
            key=key, range_end=range_end, start_revision=start, prev_kv=prev_kv, filters=filters
        )
    except EmptyWatchRangeError:
        return None, ew
    ours.got[w] = []
    if compact and start == compact:
        ours.from_compact_revision.add(w)
    ours.drain()
    return w, ew
