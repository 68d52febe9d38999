"""Unit tests of the watch hub (kvstore/watch.py) on a real Store in a temp dir.

`Node` plays the server's part: it applies requests as raft entries in one batch, then hands
the batch's events to `hub.notify` (the ordering the hub documents). Streams are checked
against the store's own history (the events apply returned), never against a mock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from kvstore.errors import InvariantError
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
from kvstore.watch import (
    EmptyWatchRangeError,
    WatchBatch,
    Watcher,
    WatchFilter,
    WatchHub,
    WatchLimitError,
)


class Node:
    def __init__(self, store: Store, **hub_args: int) -> None:
        self.store = store
        self.hub = WatchHub(store, **hub_args)
        self.index = 0
        self.history: list[Event] = []

    def commit(self, *requests: Request, notify: bool = True) -> list[Event]:
        """Apply one batch; notify the hub unless told to leave that to the caller."""
        items = [(self.index + i + 1, 1, r) for i, r in enumerate(requests)]
        self.index += len(requests)
        events: list[Event] = []
        for result in self.store.apply_batch(items):
            assert isinstance(result, ApplyResult), result
            events.extend(result.events)
        self.history.extend(events)
        if notify:
            self.hub.notify(self.store.current_revision, events)
        return events

    def put(self, key: bytes, value: bytes = b"v") -> int:
        self.commit(PutRequest(key=key, value=value))
        return self.store.current_revision

    def delete(self, key: bytes, range_end: bytes = b"") -> int:
        self.commit(DeleteRangeRequest(key=key, range_end=range_end))
        return self.store.current_revision

    def compact(self, revision: int) -> None:
        self.commit(CompactionRequest(revision=revision))

    def expected(
        self, w: Watcher, start: int, *, filters: frozenset[WatchFilter] = frozenset()
    ) -> list[Event]:
        out = []
        for ev in self.history:
            if ev.kv.mod_revision < start or not w.matches(ev.kv.key):
                continue
            if ev.type is EventType.PUT and WatchFilter.NOPUT in filters:
                continue
            if ev.type is EventType.DELETE and WatchFilter.NODELETE in filters:
                continue
            out.append(ev if w.prev_kv else replace(ev, prev_kv=None))
        return out


def drain(node: Node, watchers: list[Watcher], *, max_events: int = 1000) -> dict[Watcher, list[Event]]:
    """Run catch-up and takes until nothing moves; return what each watcher received."""
    got: dict[Watcher, list[Event]] = {w: [] for w in watchers}
    for _ in range(10_000):
        node.hub.sync_unsynced(max_events)
        moved = False
        for w in watchers:
            batch = w.take(max_events)
            if batch is not None:
                got[w].extend(batch.events)
                moved = True
        if not moved and not node.hub.has_unsynced:
            return got
    raise AssertionError("drain did not converge")


@pytest.fixture()
def node(tmp_path: Path) -> Iterator[Node]:
    with Store(tmp_path, durable=False) as store:
        yield Node(store)


@contextmanager
def make_node(tmp_path: Path, **hub_args: int) -> Iterator[Node]:
    with Store(tmp_path, durable=False) as store:
        yield Node(store, **hub_args)


# --- basics ---------------------------------------------------------------------------------


def test_watch_from_next_revision_sees_only_new_events(node: Node) -> None:
    node.put(b"a", b"old")
    w = node.hub.watch(key=b"a")
    assert w.take(10) is None
    rev = node.put(b"a", b"new")
    node.put(b"b")
    batch = w.take(10)
    assert batch is not None
    assert [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision) for e in batch.events] == [
        (EventType.PUT, b"a", b"new", rev)
    ]
    assert batch.events[0].prev_kv is None  # not requested: stripped
    assert batch.revision == node.store.current_revision
    assert w.take(10) is None


def test_prev_kv_when_requested(node: Node) -> None:
    node.put(b"a", b"1")
    w = node.hub.watch(key=b"a", prev_kv=True)
    node.put(b"a", b"2")
    node.delete(b"a")
    batch = w.take(10)
    assert batch is not None
    put, delete = batch.events
    assert put.prev_kv is not None and put.prev_kv.value == b"1"
    assert delete.type is EventType.DELETE and delete.kv.value == b""
    assert delete.prev_kv is not None and delete.prev_kv.value == b"2"


def test_ranges_prefix_from_key_and_single(node: Node) -> None:
    single = node.hub.watch(key=b"b")
    prefix = node.hub.watch(key=b"a/", range_end=b"a0")
    from_key = node.hub.watch(key=b"b", range_end=b"\x00")
    everything = node.hub.watch(key=b"\x00", range_end=b"\x00")
    for k in (b"a", b"a/1", b"a/2", b"b", b"b/1", b"c", b"\xff"):
        node.put(k)
    got = drain(node, [single, prefix, from_key, everything])
    assert [e.kv.key for e in got[single]] == [b"b"]
    assert [e.kv.key for e in got[prefix]] == [b"a/1", b"a/2"]
    assert [e.kv.key for e in got[from_key]] == [b"b", b"b/1", b"c", b"\xff"]
    assert len(got[everything]) == 7


def test_filters(node: Node) -> None:
    no_put = node.hub.watch(key=b"k", filters=[WatchFilter.NOPUT])
    no_delete = node.hub.watch(key=b"k", filters=[WatchFilter.NODELETE])
    node.put(b"k")
    node.delete(b"k")
    node.put(b"k")
    got = drain(node, [no_put, no_delete])
    assert [e.type for e in got[no_put]] == [EventType.DELETE]
    assert [e.type for e in got[no_delete]] == [EventType.PUT, EventType.PUT]


def test_one_txn_revision_is_delivered_whole(node: Node) -> None:
    w = node.hub.watch(key=b"a", range_end=b"z")
    node.commit(
        TxnRequest(success=(PutRequest(key=b"a"), PutRequest(key=b"b"), PutRequest(key=b"c")))
    )
    node.put(b"d")
    first = w.take(1)  # max_events 1, but one revision is never split
    assert first is not None and [e.kv.key for e in first.events] == [b"a", b"b", b"c"]
    assert first.revision == first.events[0].kv.mod_revision  # more is buffered
    second = w.take(1)
    assert second is not None and [e.kv.key for e in second.events] == [b"d"]


def test_take_returns_several_revisions_when_they_fit(node: Node) -> None:
    w = node.hub.watch(key=b"k")
    revs = [node.put(b"k", bytes([i])) for i in range(5)]
    batch = w.take(3)
    assert batch is not None and [e.kv.mod_revision for e in batch.events] == revs[:3]
    batch = w.take(100)
    assert batch is not None and [e.kv.mod_revision for e in batch.events] == revs[3:]


def test_batched_notify_with_several_revisions(node: Node) -> None:
    w = node.hub.watch(key=b"k", prev_kv=True)
    node.commit(PutRequest(key=b"k", value=b"1"), PutRequest(key=b"k", value=b"2"))
    got = drain(node, [w])[w]
    assert got == node.expected(w, 2)
    assert [e.kv.version for e in got] == [1, 2]


# --- history and catch-up ---------------------------------------------------------------------


def test_watch_from_the_past_then_live(node: Node) -> None:
    for i in range(10):
        node.put(b"k", bytes([i]))
    wakeups: list[int] = []
    node.hub.set_wakeup(lambda: wakeups.append(1))
    w = node.hub.watch(key=b"k", start_revision=3, prev_kv=True)
    assert w.state == "unsynced" and wakeups
    assert w.take(10) is None  # nothing until the catch-up runs
    node.hub.sync_unsynced(4)
    assert w.state == "unsynced"  # budget exhausted: still behind
    node.put(b"k", b"live-1")  # notify skips unsynced watchers
    got = drain(node, [w])[w]
    node.put(b"k", b"live-2")
    got += drain(node, [w])[w]
    assert w.state == "synced"
    assert got == node.expected(w, 3)


def test_sync_before_notify_does_not_duplicate(node: Node) -> None:
    node.put(b"k", b"1")
    w = node.hub.watch(key=b"k", start_revision=1)
    events = node.commit(PutRequest(key=b"k", value=b"2"), notify=False)
    node.hub.sync_unsynced(100)  # reads the committed, not yet notified revision from the store
    assert w.state == "synced"
    node.hub.notify(node.store.current_revision, events)  # must not deliver it again
    got = drain(node, [w])[w]
    assert [e.kv.value for e in got] == [b"1", b"2"]


def test_future_start_revision_waits_for_it(node: Node) -> None:
    current = node.store.current_revision
    w = node.hub.watch(key=b"k", start_revision=current + 3)
    node.put(b"k", b"skipped-1")
    node.put(b"k", b"skipped-2")
    node.put(b"k", b"seen")
    assert node.hub.progress_revision(w) == current + 2  # clamped to what happened
    got = drain(node, [w])[w]
    assert [e.kv.value for e in got] == [b"seen"]


# --- compaction ---------------------------------------------------------------------------------


def test_watch_on_compacted_revision_is_cancelled(node: Node) -> None:
    for i in range(5):
        node.put(b"k", bytes([i]))
    node.compact(4)
    open_before = len(node.hub)
    w = node.hub.watch(key=b"k", start_revision=3)
    batch = w.take(10)
    assert batch == WatchBatch(
        watch_id=w.watch_id, events=(), revision=node.store.current_revision, compact_revision=4
    )
    assert batch.canceled and w.closed and w.take(10) is None
    assert len(node.hub) == open_before
    # A re-watch from the reported compact revision is served, as etcd serves it.
    again = node.hub.watch(key=b"k", start_revision=batch.compact_revision, prev_kv=True)
    got = drain(node, [again])[again]
    assert [e.kv.mod_revision for e in got] == [4, 5, 6]
    assert got[0].prev_kv is None  # its previous version (revision 3) is compacted away


def test_unsynced_watcher_overtaken_by_compaction(node: Node) -> None:
    for i in range(6):
        node.put(b"k", bytes([i]))
    w = node.hub.watch(key=b"k", start_revision=2)
    node.hub.sync_unsynced(2)  # buffers revisions 2 and 3 only
    node.compact(5)
    node.hub.sync_unsynced(100)
    first = w.take(100)
    assert first is not None and [e.kv.mod_revision for e in first.events] == [2, 3]
    last = w.take(100)
    assert last is not None and last.canceled and last.compact_revision == 5
    assert w.take(100) is None and w.closed


# --- slow consumers -------------------------------------------------------------------------------


def test_slow_consumer_gets_every_event_once_in_order(tmp_path: Path) -> None:
    with make_node(tmp_path, buffer_events_max=2) as node:
        ready: list[Watcher] = []
        slow = node.hub.watch(key=b"k", prev_kv=True, on_ready=ready.append)
        fast = node.hub.watch(key=b"k", prev_kv=True)
        got_fast: list[Event] = []
        for i in range(20):
            node.put(b"k", bytes([i]))
            batch = fast.take(100)
            assert batch is not None
            got_fast.extend(batch.events)
        assert slow.state == "victim" and fast.state == "synced"
        assert ready == [slow]  # woken once, when its buffer went from empty to non-empty
        got_slow: list[Event] = []
        for _ in range(100):
            batch = slow.take(1)
            if batch is not None:
                got_slow.extend(batch.events)
            node.hub.sync_unsynced(3)
            if slow.state == "synced" and slow.buffered_events == 0:
                break
        node.put(b"k", b"after")
        got_slow += drain(node, [slow])[slow]
        got_fast += drain(node, [fast])[fast]
        assert got_slow == got_fast == node.expected(slow, 2)


def test_revision_larger_than_buffer_is_not_stuck(tmp_path: Path) -> None:
    with make_node(tmp_path, buffer_events_max=2) as node:
        keys = [bytes([97 + i]) for i in range(5)]
        node.commit(*(PutRequest(key=k) for k in keys))
        w = node.hub.watch(key=b"a", range_end=b"z", start_revision=2)
        live = node.hub.watch(key=b"a", range_end=b"z")
        node.delete(b"a", b"z")  # one revision, five events, buffer of two
        got = drain(node, [w, live])
        assert [e.kv.key for e in got[w]] == keys * 2
        assert [e.kv.key for e in got[live]] == keys


def test_many_watchers(tmp_path: Path) -> None:
    with make_node(tmp_path, buffer_events_max=8) as node:
        keys = [b"k%02d" % i for i in range(20)]
        for k in keys[:10]:
            node.put(k)
        watchers = []
        for i in range(200):
            k = keys[i % 20]
            if i % 3 == 0:
                w = node.hub.watch(key=k, start_revision=1 + i % 7, prev_kv=i % 2 == 0)
            elif i % 3 == 1:
                end = keys[i % 20 + 5] if i % 20 + 5 < 20 else b"\x00"
                w = node.hub.watch(key=k, range_end=end, watch_id=i)
            else:
                w = node.hub.watch(key=k)
            watchers.append((w, w.start_revision or node.store.current_revision + 1))
        for i, k in enumerate(keys * 3):
            if i % 4 == 3:
                node.delete(k)
            else:
                node.put(k, bytes([i]))
            if i % 5 == 0:
                node.hub.sync_unsynced(50)
        got = drain(node, [w for w, _ in watchers], max_events=5)
        for w, start in watchers:
            assert got[w] == node.expected(w, start), w


# --- progress, cancel, limits --------------------------------------------------------------------


def test_progress_never_overtakes_an_undelivered_event(node: Node) -> None:
    w = node.hub.watch(key=b"k")
    other = node.hub.watch(key=b"zzz")
    rev = node.put(b"k")
    # The idle watcher may hear the new revision; the one with a pending event may not.
    assert node.hub.progress_revision(other) == rev
    assert node.hub.progress_revision(w) == rev - 1
    batch = w.take(10)
    assert batch is not None and batch.revision == rev
    assert node.hub.progress_revision(w) == rev
    # Committed but not yet notified: no watcher may claim that revision (etcd#15220).
    events = node.commit(PutRequest(key=b"k"), notify=False)
    assert node.hub.progress_revision(w) == rev
    assert node.hub.progress_revision(other) == rev
    node.hub.notify(node.store.current_revision, events)
    assert node.hub.progress_revision(other) == rev + 1
    assert node.hub.progress_revision(w) == rev
    assert node.hub.is_synced(other) and not node.hub.is_synced(w)


def test_progress_of_unsynced_watcher_is_behind(node: Node) -> None:
    for _ in range(4):
        node.put(b"k")
    w = node.hub.watch(key=b"k", start_revision=2)
    assert node.hub.progress_revision(w) == 1
    node.hub.sync_unsynced(100)
    assert node.hub.progress_revision(w) == 1  # revision 2 is buffered
    batch = w.take(100)
    assert batch is not None and batch.revision == node.store.current_revision


def test_cancel(node: Node) -> None:
    w = node.hub.watch(key=b"k")
    v = node.hub.watch(key=b"k", start_revision=1)
    assert len(node.hub) == 2
    node.put(b"k")
    node.hub.cancel(w)
    node.hub.cancel(v)
    node.hub.cancel(v)  # idempotent
    assert len(node.hub) == 0 and w.closed and v.closed
    node.put(b"k")
    assert w.take(10) is None and v.take(10) is None
    assert node.hub.counts() == {"synced": 0, "unsynced": 0, "victim": 0}


def test_limits_and_misuse(tmp_path: Path) -> None:
    with make_node(tmp_path, watchers_max=2) as node:
        node.hub.watch(key=b"a")
        node.hub.watch(key=b"b", range_end=b"c")
        with pytest.raises(WatchLimitError) as info:
            node.hub.watch(key=b"c")
        assert info.value.grpc_code == "RESOURCE_EXHAUSTED"
        with pytest.raises(ValueError):
            node.hub.sync_unsynced(0)
    with pytest.raises(ValueError):
        WatchHub(node.store, buffer_events_max=0)


def test_empty_range_is_refused_like_etcd(node: Node) -> None:
    for key, range_end in ((b"b", b"a"), (b"a", b"a")):
        with pytest.raises(EmptyWatchRangeError) as info:
            node.hub.watch(key=key, range_end=range_end)
        assert str(info.value) == "mvcc: watcher range is empty"  # etcd's cancel_reason
    assert len(node.hub) == 0
    node.hub.watch(key=b"b", range_end=b"\x00")  # from-key is not empty


def test_empty_key_and_negative_revision_rejected(node: Node) -> None:
    with pytest.raises(ValueError):
        node.hub.watch(key=b"")
    with pytest.raises(ValueError):
        node.hub.watch(key=b"k", start_revision=-1)
    w = node.hub.watch(key=b"k")
    with pytest.raises(ValueError):
        w.take(0)


def test_notify_out_of_order_is_a_bug(node: Node) -> None:
    node.put(b"k")
    with pytest.raises(InvariantError):
        node.hub.notify(node.store.current_revision - 1, [])
    stale = node.history[-1]
    with pytest.raises(InvariantError):
        node.hub.notify(node.store.current_revision, [stale])  # already notified revision


def test_on_ready_for_catch_up_and_compaction(tmp_path: Path) -> None:
    with make_node(tmp_path, buffer_events_max=1) as node:
        for _ in range(3):
            node.put(b"k")
        ready: list[Watcher] = []
        behind = node.hub.watch(key=b"k", start_revision=2, on_ready=ready.append)
        assert ready == []
        node.hub.sync_unsynced(10)
        assert ready == [behind] and behind.state == "victim"  # buffer of one is full
        node.hub.cancel(behind)  # a victim can be cancelled too
        assert node.hub.counts()["victim"] == 0
        node.compact(3)
        gone = node.hub.watch(key=b"k", start_revision=2, on_ready=ready.append)
        assert ready == [behind, gone]
        batch = gone.take(1)
        assert batch is not None and batch.canceled


def test_on_ready_may_call_back_into_the_hub(node: Node) -> None:
    # Callbacks run after the notify has finished its bookkeeping, so they may cancel watchers.
    victims: list[Watcher] = []
    first = node.hub.watch(key=b"k", on_ready=lambda w: node.hub.cancel(victims[0]))
    victims.append(node.hub.watch(key=b"k", on_ready=lambda w: None))
    node.put(b"k")
    assert victims[0].closed and victims[0].take(10) is None
    batch = first.take(10)
    assert batch is not None and len(batch.events) == 1
    assert len(node.hub) == 1


def test_restore_to_a_newer_store_catches_synced_watchers_up(tmp_path: Path) -> None:
    # A member installing the leader's snapshot swaps in a store that is ahead: watchers
    # must get the revisions it jumped over from the new store, once and in order.
    with Store(tmp_path / "leader", durable=False) as leader_store:
        leader = Node(leader_store)
        for i in range(3):
            leader.put(b"k%d" % i)
        with Store(tmp_path / "member", durable=False) as member_store:
            member = Node(member_store)
            member.put(b"k0")  # the member only saw revision 2
            w = member.hub.watch(key=b"k", range_end=b"l")
            assert w.state == "synced"
            for i in range(3, 6):
                leader.put(b"k%d" % i)  # revisions 5..7 the member never applied
            member_store.close()
            leader_store.snapshot_to(tmp_path / "copy")
            Store.restore_from(tmp_path / "copy", tmp_path / "member")
            with Store(tmp_path / "member", durable=False) as restored:
                member.store = restored
                member.hub.restore(restored)
                assert w.state == "unsynced"
                got = drain(member, [w])[w]
                assert [e.kv.mod_revision for e in got] == [3, 4, 5, 6, 7]
                assert w.state == "synced"
