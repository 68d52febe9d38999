"""Property: whatever the interleaving, each watcher's stream is exactly the store's history.

Hypothesis interleaves writes (batches of puts, deletes and txns, notified at once or later),
watch creation (past, current and future start revisions, ranges, filters, prev_kv),
`sync_unsynced` with random budgets, takes of random sizes, compactions and cancels, on a real
Store with a random per-watcher buffer size. At the end everything is drained, and:

* a watcher that was not cancelled received exactly the store's events for its range from
  its start revision, filtered and with prev_kv only if asked: no gap, no duplicate, in order
  (an event read back after a compaction of its previous revision has no prev_kv, as etcd);
* a watcher cancelled by compaction received a prefix of that stream, then a last batch with
  compact_revision set;
* each batch's header revision is at least its events' revisions, and every later event is
  above it; a progress revision, whenever asked, is above every event taken so far and below
  every event not yet taken (etcd#15220).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvstore.store import Store
from kvstore.types import (
    ApplyResult,
    CompactionRequest,
    DeleteRangeRequest,
    Event,
    EventType,
    PutRequest,
    Request,
    TxnRequest,
)
from kvstore.watch import Watcher, WatchFilter, WatchHub

KEYS = [b"a", b"a/1", b"a/2", b"b", b"c"]
RANGES = [(b"a", b""), (b"a/", b"a0"), (b"b", b"\x00"), (b"\x00", b"\x00"), (b"a/2", b"c")]


@dataclass
class Tracked:
    watcher: Watcher
    start: int
    got: list[Event] = field(default_factory=list)
    header: int = 0  # highest header or progress revision sent so far
    compacted: bool = False


def write_request(data: st.DataObject) -> Request:
    kind = data.draw(st.sampled_from(["put", "put", "delete", "txn"]))
    key = data.draw(st.sampled_from(KEYS))
    if kind == "put":
        return PutRequest(key=key, value=data.draw(st.binary(max_size=2)))
    if kind == "delete":
        key, end = data.draw(st.sampled_from([(key, b""), *RANGES]))
        return DeleteRangeRequest(key=key, range_end=end)
    keys = data.draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True))
    return TxnRequest(success=tuple(PutRequest(key=k, value=b"t") for k in keys))


def expected(t: Tracked, history: list[Event]) -> list[Event]:
    w = t.watcher
    out = []
    for ev in history:
        if ev.kv.mod_revision < t.start or not w.matches(ev.kv.key):
            continue
        if ev.type is EventType.PUT and WatchFilter.NOPUT in w.filters:
            continue
        if ev.type is EventType.DELETE and WatchFilter.NODELETE in w.filters:
            continue
        out.append(ev if w.prev_kv else replace(ev, prev_kv=None))
    return out


def forgive_compacted_prev_kv(got: list[Event], want: list[Event], compact: int) -> list[Event]:
    """`want` where an event read back from the store after a compaction may lack prev_kv.

    As etcd's watch, the store gives prev_kv only while revision mod_revision - 1 is not
    compacted; the events apply returned had it. Any other difference is left to fail."""
    out = list(want)
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g.prev_kv is None and w.prev_kv is not None and w.kv.mod_revision - 1 <= compact:
            out[i] = replace(w, prev_kv=None)
    return out


def take(store: Store, t: Tracked, n: int) -> bool:
    batch = t.watcher.take(n)
    if batch is None:
        return False
    assert not t.compacted, "batch after the compaction batch"
    for ev in batch.events:
        assert ev.kv.mod_revision > t.header, "event at or below an earlier header revision"
        assert ev.kv.mod_revision <= batch.revision
    t.header = max(t.header, batch.revision)
    t.got.extend(batch.events)
    if batch.canceled:
        t.compacted = True
        assert 0 < batch.compact_revision <= store.compact_revision
    return True


def check_progress(hub: WatchHub, store: Store, t: Tracked) -> None:
    if t.watcher.closed:
        return
    progress = hub.progress_revision(t.watcher)
    assert all(ev.kv.mod_revision <= progress for ev in t.got)
    assert progress <= store.current_revision
    t.header = max(t.header, progress)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_streams_equal_store_history(data: st.DataObject) -> None:
    buffer_events_max = data.draw(st.sampled_from([1, 2, 3, 8, 64]), label="buffer")
    with tempfile.TemporaryDirectory() as tmp, Store(tmp, durable=False) as store:
        hub = WatchHub(store, buffer_events_max=buffer_events_max, sync_watchers_max=3)
        history: list[Event] = []
        pending: list[tuple[int, list[Event]]] = []  # committed, not yet notified
        tracked: list[Tracked] = []
        index = 0

        def flush() -> None:
            for revision, events in pending:
                hub.notify(revision, events)
            pending.clear()

        for _ in range(data.draw(st.integers(10, 60), label="steps")):
            action = data.draw(
                st.sampled_from(
                    ["write"] * 4 + ["watch", "watch", "sync", "take", "take", "notify",
                                     "compact", "cancel", "progress"]
                )
            )
            if action == "write":
                flush()  # the node notifies a batch before it applies the next one
                reqs = [write_request(data) for _ in range(data.draw(st.integers(1, 3)))]
                items = [(index + i + 1, 1, r) for i, r in enumerate(reqs)]
                index += len(items)
                events: list[Event] = []
                for result in store.apply_batch(items):
                    if isinstance(result, ApplyResult):
                        events.extend(result.events)
                history.extend(events)
                pending.append((store.current_revision, events))
                if data.draw(st.booleans()):
                    flush()
            elif action == "notify":
                flush()
            elif action == "watch":
                key, end = data.draw(st.sampled_from([(k, b"") for k in KEYS] + RANGES))
                current = store.current_revision
                start = data.draw(
                    st.sampled_from([0, 1, max(1, current - 2), current, current + 1, current + 2])
                )
                filters = data.draw(st.sets(st.sampled_from(list(WatchFilter)), max_size=1))
                w = hub.watch(
                    key=key,
                    range_end=end,
                    start_revision=start,
                    prev_kv=data.draw(st.booleans()),
                    filters=filters,
                )
                tracked.append(Tracked(w, start or current + 1))
            elif action == "sync":
                hub.sync_unsynced(data.draw(st.integers(1, 6)))
            elif action == "take" and tracked:
                t = data.draw(st.sampled_from(tracked))
                take(store, t, data.draw(st.integers(1, 4)))
            elif action == "compact" and store.current_revision > 1:
                flush()
                low = max(1, store.compact_revision + 1)
                if low <= store.current_revision:
                    rev = data.draw(st.integers(low, store.current_revision))
                    index += 1
                    store.apply(index, 1, CompactionRequest(revision=rev))
            elif action == "cancel" and tracked:
                t = data.draw(st.sampled_from(tracked))
                if not t.compacted:
                    hub.cancel(t.watcher)
                    tracked.remove(t)
            elif action == "progress" and tracked:
                check_progress(hub, store, data.draw(st.sampled_from(tracked)))

        flush()
        for _ in range(10_000):
            hub.sync_unsynced(50)
            moved = [take(store, t, 50) for t in tracked]
            if not hub.has_unsynced and not any(moved):
                break
        for t in tracked:
            want = forgive_compacted_prev_kv(t.got, expected(t, history), store.compact_revision)
            if t.compacted:
                assert t.got == want[: len(t.got)]
                assert t.watcher.closed
            else:
                assert t.got == want
                assert t.watcher.state == "synced"
                check_progress(hub, store, t)
                assert hub.progress_revision(t.watcher) == store.current_revision
        assert len(hub) == sum(1 for t in tracked if not t.compacted)
