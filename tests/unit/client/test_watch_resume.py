"""The Watcher's resume bookkeeping, fed protobuf responses directly (no server, no sockets).

A reconnecting watch asks for events from `next_revision` and drops anything below it, so a
server that re-sends part of the history after a reconnect never produces duplicates and a
gap can only come from the server.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.client import CompactedError, Event, WatchCanceledError
from api.client._watch import Watcher, _Disconnected
from api.proto import kv_pb2, rpc_pb2


def watcher(start_revision: int = 0) -> Watcher:
    return Watcher(
        None, key=b"k", range_end=b"", start_revision=start_revision, prev_kv=False,
        no_put=False, no_delete=False, progress_notify=False, callback=None,
    )


def events(*revs: int) -> rpc_pb2.WatchResponse:
    return rpc_pb2.WatchResponse(
        header=rpc_pb2.ResponseHeader(revision=max(revs)), watch_id=1,
        events=[kv_pb2.Event(kv=kv_pb2.KeyValue(key=b"k", mod_revision=r)) for r in revs],
    )


def created(revision: int) -> rpc_pb2.WatchResponse:
    return rpc_pb2.WatchResponse(
        header=rpc_pb2.ResponseHeader(revision=revision), watch_id=1, created=True
    )


def drain(w: Watcher) -> list[int]:
    out: list[int] = []
    while not w._queue.empty():
        item = w._queue.get_nowait()
        assert isinstance(item, Event)
        out.append(item.kv.mod_revision)
    return out


def test_created_then_events_then_resume_request_and_duplicates_dropped() -> None:
    async def main() -> None:
        w = watcher()
        await w._handle(created(5))
        assert w.next_revision == 6
        await w._handle(events(6, 7))
        assert drain(w) == [6, 7] and w.next_revision == 8
        # Reconnect: the new create request starts at 8; a server that re-sends 7 is ignored.
        assert w._create_request().create_request.start_revision == 8
        await w._handle(created(9))
        assert w.next_revision == 8  # an explicit resume point is kept
        await w._handle(events(7, 8, 8, 9))  # 8 twice: two events of one txn revision
        assert drain(w) == [8, 8, 9] and w.next_revision == 10

    asyncio.run(main())


def test_progress_notification_advances_the_resume_point() -> None:
    async def main() -> None:
        w = watcher()
        await w._handle(created(3))
        await w._handle(rpc_pb2.WatchResponse(header=rpc_pb2.ResponseHeader(revision=12),
                                              watch_id=1))
        assert (w.progress_revision, w.next_revision) == (12, 13)

    asyncio.run(main())


def test_cancellations() -> None:
    async def main() -> None:
        w = watcher(2)
        with pytest.raises(CompactedError) as ei:
            await w._handle(rpc_pb2.WatchResponse(watch_id=1, canceled=True, compact_revision=7))
        assert ei.value.compact_revision == 7  # type: ignore[attr-defined]
        with pytest.raises(_Disconnected):  # transient: resume elsewhere
            await w._handle(rpc_pb2.WatchResponse(watch_id=1, canceled=True,
                                                  cancel_reason="etcdserver: no leader"))
        with pytest.raises(WatchCanceledError):
            await w._handle(rpc_pb2.WatchResponse(watch_id=1, canceled=True,
                                                  cancel_reason="permission denied"))

    asyncio.run(main())


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=30),
    st.data(),
)
def test_any_redelivery_pattern_yields_each_event_exactly_once(
    per_rev: list[int], data: st.DataObject
) -> None:
    """History: revision 10+i carries per_rev[i] events. After each response the stream may
    "break"; the server then re-sends from any revision <= next_revision (at-least-once)."""
    history = [10 + i for i, n in enumerate(per_rev) for _ in range(n)]
    revs = sorted(set(history))

    async def main() -> list[int]:
        w = watcher()
        await w._handle(created(9))
        pos = 0  # index into revs of the next revision the server sends
        disconnects = 0
        while pos < len(revs):
            take = data.draw(st.integers(min_value=1, max_value=3))
            chunk = revs[pos:pos + take]
            await w._handle(events(*[r for r in history if r in chunk]))
            pos += len(chunk)
            if disconnects < 5 and data.draw(st.booleans()):  # disconnect: server resumes at or before the point
                back = data.draw(st.integers(min_value=0, max_value=pos))
                pos = min(pos, revs.index(w.next_revision) if w.next_revision in revs
                          else len(revs)) - back
                pos = max(pos, 0)
                disconnects += 1
        return drain(w)

    assert asyncio.run(main()) == history
