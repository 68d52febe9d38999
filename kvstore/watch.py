"""The watch hub: fan-out of MVCC events to watchers, after etcd's watchable_store.

Theory of operation
-------------------
A watcher wants every event on keys in [key, range_end) with mod_revision >= its start
revision, exactly once, in revision order, with no gaps. Each watcher has a bounded buffer of
whole revisions and `next_revision`: every revision below it has been looked at for this
watcher (its events are buffered or already taken, or it had none that matched). A watcher is
in exactly one group:

* synced: caught up with the live stream. `notify(revision, events)`, which the node calls
  after each applied batch commits, appends the matching events of each revision to the
  watcher's buffer. A synced watcher's `next_revision` is implicit: it is at least
  `notified_revision + 1`, so a notify costs nothing for watchers it does not touch.
* unsynced: behind the live stream (created with a start revision in the past, or a victim
  whose buffer drained). `sync_unsynced(max_events)` reads their missed events from the store
  in bounded batches (`store.events_since`) until the watcher reaches the store's current
  revision; it then joins the synced group.
* victim: a notify found its buffer full. Rather than drop or block, the watcher leaves the
  live path at the first revision it could not take; once the consumer has drained half its
  buffer, it becomes unsynced and is caught up from the store. Events are never dropped and
  never reordered, because the store keeps the history the live path skipped.

The store is the authority: the hub never holds events the store could not re-read. A
watcher whose history is compacted away can no longer be served (ETCD_FEATURES 1.2): it is
cancelled with `compact_revision` set to the store's compact revision, after its already
buffered events are delivered. As etcd (watchable_store chooseAll), a start *below* the
compact revision is cancelled, and a start at it is served, so a client that re-watches from
the reported compact_revision is not cancelled again. The hub checks that rule itself and
also treats a CompactedError from `events_since` (a compaction that raced the read) alike.

Ordering the node must keep: commit the LMDB transaction, then call `notify` with that
batch's events (before applying the next batch). `sync_unsynced` may run at any point in
between: a watcher it catches up to a revision that was committed but not yet notified
simply skips those revisions in the next notify (revisions below `next_revision` are never
delivered twice).

Consumers pull: `watcher.take(max_events)` returns a `WatchBatch` of whole revisions (never
splitting one revision, as etcd without `fragment`) and the header revision to send with it.
The hub never blocks and knows no asyncio: `set_wakeup(cb)` is called when there is catch-up
work for `sync_unsynced`, and a watcher's `on_ready(watcher)` when it has something to take.

Progress (etcd#15220): `progress_revision(watcher)` is a revision R such that every event of
the watcher with revision <= R has been taken, and every event not yet taken has a revision
> R. It is never at or above the first buffered event, and never above a revision that was
committed but not yet looked at for the watcher (notified, or read from the store), so a
progress notification can never overtake an event.

Threads: the hub is not thread-safe. The node calls every method from its event loop thread;
`events_since` may run while the apply thread commits (the store reads a consistent snapshot).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Protocol

from kvstore.errors import CompactedError, KvError, invariant
from kvstore.types import Event, EventType

__all__ = [
    "EmptyWatchRangeError",
    "EventSource",
    "WatchBatch",
    "WatchFilter",
    "WatchHub",
    "WatchLimitError",
    "Watcher",
]

# Ranges follow etcd: empty range_end = the single key; b"\0" = every key >= key.
FROM_KEY = b"\x00"


class WatchLimitError(KvError):
    """The hub already holds `watchers_max` watchers."""

    message = "etcdserver: too many watchers"
    grpc_code = "RESOURCE_EXHAUSTED"


class EmptyWatchRangeError(KvError):
    """range_end is set (and not the b"\\0" from-key marker) but not above key. etcd creates
    and at once cancels such a watcher, with this text as its cancel_reason."""

    message = "mvcc: watcher range is empty"
    grpc_code = "INVALID_ARGUMENT"


class WatchFilter(enum.IntEnum):
    """Server-side event filters; values equal WatchCreateRequest.FilterType."""

    NOPUT = 0
    NODELETE = 1


class EventSource(Protocol):
    """What the hub reads from the MVCC store (kvstore.store.Store provides it)."""

    @property
    def current_revision(self) -> int: ...

    @property
    def compact_revision(self) -> int: ...

    def events_since(
        self, start_revision: int, *, key: bytes, range_end: bytes, end_revision: int, limit: int
    ) -> list[Event]: ...


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One response's worth for one watcher.

    `revision` is the header revision to send: every event of this watcher not yet taken has
    a higher revision. `compact_revision` != 0 marks the watcher's last batch: it was cancelled
    because the history it still needs is compacted (etcd's compacted WatchResponse).
    """

    watch_id: int
    events: tuple[Event, ...]
    revision: int
    compact_revision: int = 0

    @property
    def canceled(self) -> bool:
        return self.compact_revision != 0


class _Group(enum.Enum):
    SYNCED = "synced"
    UNSYNCED = "unsynced"
    VICTIM = "victim"
    COMPACTED = "compacted"  # cancelled by compaction; buffered events still to be taken
    CLOSED = "closed"  # cancelled, or compacted and reported: nothing more to take


class Watcher:
    """One watch on one key range. Created by `WatchHub.watch`; the consumer calls `take`."""

    __slots__ = (
        "_buffer",
        "_buffered_events",
        "_compact_revision",
        "_group",
        "_hub",
        "_next_revision",
        "filters",
        "key",
        "on_ready",
        "prev_kv",
        "progress_notify",
        "range_end",
        "start_revision",
        "watch_id",
    )

    def __init__(
        self,
        hub: WatchHub,
        *,
        watch_id: int,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        prev_kv: bool,
        filters: frozenset[WatchFilter],
        progress_notify: bool,
        on_ready: Callable[[Watcher], None] | None,
    ) -> None:
        self._hub = hub
        self.watch_id = watch_id
        self.key = key
        self.range_end = range_end
        self.start_revision = start_revision
        self.prev_kv = prev_kv
        self.filters = filters
        self.progress_notify = progress_notify
        self.on_ready = on_ready
        self._next_revision = 0
        # Whole revisions, oldest first: (revision, events of that revision for this watcher).
        self._buffer: deque[tuple[int, tuple[Event, ...]]] = deque()
        self._buffered_events = 0
        self._group = _Group.CLOSED
        self._compact_revision = 0

    def __repr__(self) -> str:
        return (
            f"Watcher(id={self.watch_id}, key={self.key!r}, range_end={self.range_end!r}, "
            f"{self._group.value}, next={self._next_revision}, buffered={self._buffered_events})"
        )

    @property
    def state(self) -> str:
        """"synced", "unsynced", "victim", "compacted" or "closed" (for metrics and tests)."""
        return self._group.value

    @property
    def closed(self) -> bool:
        return self._group is _Group.CLOSED

    @property
    def buffered_events(self) -> int:
        return self._buffered_events

    @property
    def has_more(self) -> bool:
        """Something is left to take: buffered events or the compaction cancel."""
        return bool(self._buffered_events) or self._group is _Group.COMPACTED

    def matches(self, key: bytes) -> bool:
        return _in_range(key, self.key, self.range_end)

    def take(self, max_events: int) -> WatchBatch | None:
        """Pop up to max_events buffered events (at least one whole revision), or None."""
        return self._hub._take(self, max_events)


class WatchHub:
    """Synced, unsynced and victim watchers over one store. Single-threaded, never blocks."""

    DEFAULT_BUFFER_EVENTS_MAX: ClassVar[int] = 1024

    def __init__(
        self,
        store: EventSource,
        *,
        buffer_events_max: int = DEFAULT_BUFFER_EVENTS_MAX,
        watchers_max: int = 100_000,
        sync_watchers_max: int = 512,
    ) -> None:
        if buffer_events_max < 1 or watchers_max < 1 or sync_watchers_max < 1:
            raise ValueError("watch hub limits must be >= 1")
        self._store = store
        self.buffer_events_max = buffer_events_max
        self.watchers_max = watchers_max
        self.sync_watchers_max = sync_watchers_max
        self._notified_revision = store.current_revision
        # Synced watchers, indexed for notify: single keys by key, ranges by (key, range_end)
        # so that many watchers of one prefix (a common fan-out) match each event once.
        self._synced_keys: dict[bytes, dict[Watcher, None]] = {}
        self._synced_ranges: dict[tuple[bytes, bytes], dict[Watcher, None]] = {}
        # Insertion-ordered dicts used as ordered sets (round-robin catch-up).
        self._unsynced: dict[Watcher, None] = {}
        self._victims: dict[Watcher, None] = {}
        self._open = 0
        self._wakeup: Callable[[], None] | None = None

    # --- registration -------------------------------------------------------------------

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        """`callback()` runs whenever `sync_unsynced` has new work (may be called often)."""
        self._wakeup = callback

    def watch(
        self,
        *,
        key: bytes,
        range_end: bytes = b"",
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: Iterable[WatchFilter] = (),
        progress_notify: bool = False,
        watch_id: int = 0,
        on_ready: Callable[[Watcher], None] | None = None,
    ) -> Watcher:
        """Register a watcher. start_revision 0 means "from the next revision".

        Raises EmptyWatchRangeError for an empty range (the server turns it into a created
        and cancelled response, as etcd), WatchLimitError past `watchers_max`, and
        ValueError for an empty key or a negative start revision (etcd's gRPC layer
        rejects those before they reach its store).
        """
        if not key:
            raise ValueError("watch key must not be empty")
        if start_revision < 0:
            raise ValueError(f"negative start revision {start_revision}")
        if range_end and range_end != FROM_KEY and range_end <= key:
            raise EmptyWatchRangeError(f"[{key!r}, {range_end!r})")
        if self._open >= self.watchers_max:
            raise WatchLimitError(f"{self._open} watchers")
        w = Watcher(
            self,
            watch_id=watch_id,
            key=key,
            range_end=range_end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            filters=frozenset(filters),
            progress_notify=progress_notify,
            on_ready=on_ready,
        )
        self._open += 1
        current = self._store.current_revision
        if start_revision == 0 or start_revision > current:
            # Nothing in the store to read yet: join the live path directly (as etcd).
            w._next_revision = current + 1 if start_revision == 0 else start_revision
            self._add_synced(w)
        else:
            w._next_revision = start_revision
            w._group = _Group.UNSYNCED
            self._unsynced[w] = None
            if start_revision < self._store.compact_revision:
                self._cancel_compacted(w)
            else:
                self._wake()
        return w

    def restore(self, store: EventSource) -> None:
        """Switch to a store replaced wholesale (a member installing the leader's snapshot).

        Synced watchers may have missed the revisions the new store jumped over, so they
        all go back to catching up from it (etcd's watchableStore.Restore does the same);
        one whose next revision was compacted away is cancelled with compact_revision.
        """
        self._store = store
        synced = [w for group in self._synced_keys.values() for w in group]
        synced += [w for group in self._synced_ranges.values() for w in group]
        for w in synced:
            self._remove_from_group(w)
            w._group = _Group.UNSYNCED
            self._unsynced[w] = None
        self._notified_revision = store.current_revision
        if self._unsynced:
            self._wake()

    def cancel(self, w: Watcher) -> None:
        """Stop a watcher at once; its buffered events are discarded."""
        if w._group is _Group.CLOSED:
            return
        self._remove_from_group(w)
        self._close(w)

    def __len__(self) -> int:
        """Watchers not yet closed."""
        return self._open

    @property
    def notified_revision(self) -> int:
        return self._notified_revision

    @property
    def has_unsynced(self) -> bool:
        return bool(self._unsynced)

    def counts(self) -> dict[str, int]:
        """Group sizes, for metrics."""
        synced = sum(len(s) for s in self._synced_ranges.values()) + sum(
            len(s) for s in self._synced_keys.values()
        )
        return {"synced": synced, "unsynced": len(self._unsynced), "victim": len(self._victims)}

    # --- live path ----------------------------------------------------------------------

    def notify(self, revision: int, events: Sequence[Event]) -> None:
        """Deliver one committed batch: `events` in revision order, all <= `revision`."""
        invariant(
            revision >= self._notified_revision,
            f"notify revision {revision} < notified {self._notified_revision}",
        )
        groups = _group_by_revision(events)
        invariant(
            not groups or (groups[0][0] > self._notified_revision and groups[-1][0] <= revision),
            f"notify({revision}) events outside ({self._notified_revision}, {revision}]",
        )
        previous = self._notified_revision
        self._notified_revision = revision
        fan = _FanOut(self, previous)
        # Revisions outer, watchers inner: each watcher still gets its revisions in order.
        # The matched tuples are shared by all watchers of one key or range.
        for rev, evs in groups:
            if self._synced_keys:
                by_key: dict[bytes, list[Event]] = {}
                for ev in evs:
                    if ev.kv.key in self._synced_keys:
                        by_key.setdefault(ev.kv.key, []).append(ev)
                for k, kevs in by_key.items():
                    fan.deliver(self._synced_keys[k], rev, tuple(kevs))
            for (key, range_end), ws in self._synced_ranges.items():
                matched = tuple(ev for ev in evs if _in_range(ev.kv.key, key, range_end))
                if matched:
                    fan.deliver(ws, rev, matched)
        # Slow consumers leave their synced group only now (it was being iterated).
        for w in fan.victims:
            self._drop_synced(w)
            self._victims[w] = None
        # Callbacks run once the hub is consistent again (they may call back into it).
        for w in fan.became_ready:
            if w.on_ready is not None:
                w.on_ready(w)

    # --- catch-up path --------------------------------------------------------------------

    def sync_unsynced(self, max_events: int) -> int:
        """Catch unsynced watchers up from the store; read at most ~max_events events.

        Returns the number of events read. Call again while `has_unsynced` is true (the
        wakeup callback fires when new work appears). A single revision is never split, so
        one call may read more than max_events when one revision is larger than that.
        """
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        current = self._store.current_revision
        invariant(
            current >= self._notified_revision,
            f"store revision {current} behind notified {self._notified_revision}",
        )
        budget = max_events
        for w in list(self._unsynced)[: self.sync_watchers_max]:
            if budget <= 0:
                break
            budget -= self._catch_up(w, current=current, budget=budget)
        return max_events - budget

    def _catch_up(self, w: Watcher, *, current: int, budget: int) -> int:
        """Read w's missed events into its buffer until it is synced, blocked or out of budget.

        `events_since` may stop short of `limit` (it never splits a revision), so only an
        empty read proves that the watcher has seen everything up to `current`.
        """
        del self._unsynced[w]
        was_empty = w._buffered_events == 0
        read = 0
        while True:
            if w._next_revision < self._store.compact_revision:
                self._unsynced[w] = None  # _cancel_compacted takes it out again
                self._cancel_compacted(w)
                return read
            room = self.buffer_events_max - w._buffered_events
            if room <= 0:
                self._victims[w] = None
                w._group = _Group.VICTIM
                break
            if read >= budget:
                self._unsynced[w] = None  # to the back of the queue: round-robin
                break
            try:
                events = self._store.events_since(
                    w._next_revision,
                    key=w.key,
                    range_end=w.range_end,
                    end_revision=current,
                    limit=min(room, budget - read),
                )
            except CompactedError:
                self._unsynced[w] = None
                self._cancel_compacted(w)
                return read
            if not events:
                w._next_revision = current + 1
                self._add_synced(w)
                break
            read += len(events)
            if not self._buffer_from_store(w, events, current=current):
                # Keep the buffer bound strict: wait for the consumer, then re-read.
                self._victims[w] = None
                w._group = _Group.VICTIM
                break
        if was_empty and w._buffered_events and w.on_ready is not None:
            w.on_ready(w)
        return read

    def _buffer_from_store(self, w: Watcher, events: Sequence[Event], *, current: int) -> bool:
        """Buffer whole revisions read from the store; False if one did not fit."""
        for rev, evs in _group_by_revision(events):
            invariant(
                w._next_revision <= rev <= current,
                f"store returned revision {rev} outside [{w._next_revision}, {current}]",
            )
            delivered = self._filter(w, tuple(evs), None)
            if delivered and not self._has_room(w, len(delivered)):
                return False
            if delivered:
                self._push(w, rev, delivered)
            w._next_revision = rev + 1
        return True

    # --- consumer side ----------------------------------------------------------------------

    def progress_revision(self, w: Watcher) -> int:
        """A header revision safe for a progress notification to this watcher (see module doc)."""
        if w._buffer:
            return w._buffer[0][0] - 1
        # Everything below next_revision has been looked at for this watcher. A synced
        # watcher has also seen every notified revision, but not a revision committed and not
        # yet notified (unless a catch-up read it from the store, which moved next_revision).
        seen = w._next_revision - 1
        if w._group is _Group.SYNCED:
            seen = max(seen, self._notified_revision)
        # A future start revision has not happened yet: claim no more than the store has.
        return min(seen, self._store.current_revision)

    def is_synced(self, w: Watcher) -> bool:
        """True when the watcher is on the live path with nothing buffered (etcd sends
        periodic progress notifications only to such watchers)."""
        return w._group is _Group.SYNCED and not w._buffer

    def _take(self, w: Watcher, max_events: int) -> WatchBatch | None:
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        buf = w._buffer
        if buf:
            if len(buf) == 1:  # the live path's usual case: one revision, taken whole
                last, events = buf.popleft()
            else:
                taken: list[Event] = []
                last = 0
                while buf and (not taken or len(taken) + len(buf[0][1]) <= max_events):
                    rev, evs = buf.popleft()
                    taken.extend(evs)
                    last = rev
                events = tuple(taken)
            w._buffered_events -= len(events)
            revision = last if buf else max(last, self.progress_revision(w))
            if w._group is _Group.VICTIM and w._buffered_events <= self.buffer_events_max // 2:
                del self._victims[w]
                w._group = _Group.UNSYNCED
                self._unsynced[w] = None
                self._wake()
            return WatchBatch(watch_id=w.watch_id, events=events, revision=revision)
        if w._group is _Group.COMPACTED:
            compact_revision = w._compact_revision
            self._close(w)
            return WatchBatch(
                watch_id=w.watch_id,
                events=(),
                revision=self._store.current_revision,
                compact_revision=compact_revision,
            )
        return None

    # --- internals ----------------------------------------------------------------------

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup()

    def _has_room(self, w: Watcher, n: int) -> bool:
        # An empty buffer takes any one revision, however large, or the watcher would stall.
        return w._buffered_events == 0 or w._buffered_events + n <= self.buffer_events_max

    def _filter(
        self,
        w: Watcher,
        events: tuple[Event, ...],
        stripped: dict[int, tuple[Event, ...]] | None,
    ) -> tuple[Event, ...]:
        """The events w wants: filters applied, prev_kv dropped unless asked for.

        `stripped` caches, per shared events tuple (by id, valid during one notify), the
        prev_kv-less copy, so a fan-out to many watchers strips each event once.
        """
        if not w.filters:
            if w.prev_kv or all(ev.prev_kv is None for ev in events):
                return events
            if stripped is None:
                return tuple(replace(ev, prev_kv=None) for ev in events)
            cached = stripped.get(id(events))
            if cached is None:
                cached = stripped[id(events)] = tuple(replace(ev, prev_kv=None) for ev in events)
            return cached
        out: list[Event] = []
        for ev in events:
            if ev.type is EventType.PUT and WatchFilter.NOPUT in w.filters:
                continue
            if ev.type is EventType.DELETE and WatchFilter.NODELETE in w.filters:
                continue
            if not w.prev_kv and ev.prev_kv is not None:
                ev = replace(ev, prev_kv=None)
            out.append(ev)
        return tuple(out)

    def _push(self, w: Watcher, rev: int, events: tuple[Event, ...]) -> None:
        buf = w._buffer
        if buf and buf[-1][0] >= rev:  # (the message is built only when it is needed)
            invariant(False, f"watcher {w.watch_id}: revision {rev} buffered out of order")
        buf.append((rev, events))
        w._buffered_events += len(events)

    def _add_synced(self, w: Watcher) -> None:
        w._group = _Group.SYNCED
        if w.range_end:
            self._synced_ranges.setdefault((w.key, w.range_end), {})[w] = None
        else:
            self._synced_keys.setdefault(w.key, {})[w] = None

    def _remove_from_group(self, w: Watcher) -> None:
        if w._group is _Group.SYNCED:
            self._drop_synced(w)
        elif w._group is _Group.UNSYNCED:
            del self._unsynced[w]
        elif w._group is _Group.VICTIM:
            del self._victims[w]

    def _drop_synced(self, w: Watcher) -> None:
        """Take w out of the synced index (whatever its group says now)."""
        if w.range_end:
            group = self._synced_ranges[(w.key, w.range_end)]
            del group[w]
            if not group:
                del self._synced_ranges[(w.key, w.range_end)]
        else:
            keyed = self._synced_keys[w.key]
            del keyed[w]
            if not keyed:
                del self._synced_keys[w.key]

    def _cancel_compacted(self, w: Watcher) -> None:
        self._remove_from_group(w)
        w._group = _Group.COMPACTED
        w._compact_revision = self._store.compact_revision
        if w.on_ready is not None:
            w.on_ready(w)

    def _close(self, w: Watcher) -> None:
        w._group = _Group.CLOSED
        w._buffer.clear()
        w._buffered_events = 0
        self._open -= 1


class _FanOut:
    """One notify's delivery to synced watchers (WatchHub.notify's inner loop)."""

    __slots__ = ("_keep", "became_ready", "hub", "previous", "stripped", "victims")

    def __init__(self, hub: WatchHub, previous: int) -> None:
        self.hub = hub
        self.previous = previous
        self.became_ready: list[Watcher] = []
        self.victims: list[Watcher] = []
        # _filter's cache is keyed by id(events tuple): keeping every matched tuple alive
        # until notify returns keeps those ids unique.
        self.stripped: dict[int, tuple[Event, ...]] = {}
        self._keep: list[tuple[Event, ...]] = []

    def deliver(self, ws: dict[Watcher, None], rev: int, matched: tuple[Event, ...]) -> None:
        """Buffer `matched` (revision `rev`) for each watcher of `ws` that wants it."""
        self._keep.append(matched)
        hub, floor = self.hub, self.previous + 1
        plain: tuple[Event, ...] | None = None
        for w in ws:
            if w._group is not _Group.SYNCED:
                continue  # became a victim at an earlier revision of this notify
            if rev < w._next_revision or rev < floor:
                continue  # already read from the store by sync_unsynced
            if w.filters:
                delivered = hub._filter(w, matched, self.stripped)
            elif w.prev_kv:
                delivered = matched
            else:
                if plain is None:
                    plain = hub._filter(w, matched, self.stripped)
                delivered = plain
            if delivered and not hub._has_room(w, len(delivered)):
                # Slow consumer: leave the live path at `rev`; the store keeps the rest.
                w._next_revision = rev
                w._group = _Group.VICTIM
                self.victims.append(w)
                continue
            w._next_revision = rev + 1
            if delivered:
                was_empty = not w._buffered_events
                hub._push(w, rev, delivered)
                if was_empty and w.on_ready is not None:
                    self.became_ready.append(w)


def _group_by_revision(events: Sequence[Event]) -> list[tuple[int, list[Event]]]:
    groups: list[tuple[int, list[Event]]] = []
    for ev in events:
        rev = ev.kv.mod_revision
        if groups and groups[-1][0] == rev:
            groups[-1][1].append(ev)
        else:
            invariant(not groups or groups[-1][0] < rev, f"events out of revision order at {rev}")
            groups.append((rev, [ev]))
    return groups


def _in_range(k: bytes, key: bytes, range_end: bytes) -> bool:
    if not range_end:
        return k == key
    if range_end == FROM_KEY:
        return k >= key
    return key <= k < range_end
