"""api/server/commit_hold.py: commit-only MsgApps wait, are superseded by the next MsgApp to
the same peer, and go out when the hold ends; everything else passes straight through."""

from __future__ import annotations

import asyncio

from api.server.commit_hold import CommitHold
from raft.types import Entry, Message, MessageType


def _app(to: int, commit: int, *entries: int) -> Message:
    return Message(MessageType.APP, from_=1, to=to, term=2, commit=commit,
                   entries=tuple(Entry(2, i) for i in entries))


def _run(body: object) -> None:
    asyncio.run(body)  # type: ignore[arg-type]


def _recording(hold_s: float) -> tuple[list[list[Message]], CommitHold]:
    """A hold whose sends are recorded, batch by batch."""
    sent: list[list[Message]] = []
    return sent, CommitHold(sent.append, hold_s=hold_s)


def test_commit_only_appends_are_held_then_sent_when_the_hold_ends() -> None:
    async def body() -> None:
        sent, hold = _recording(0.01)
        hb = Message(MessageType.HEARTBEAT, from_=1, to=2, term=2)
        hold.send([_app(2, 5), _app(3, 5), hb])
        assert sent == [[hb]] and hold.held == 2
        await asyncio.sleep(0.05)
        assert sent[1:] == [[_app(2, 5), _app(3, 5)]] and hold.held == 0

    _run(body())


def test_a_later_append_to_the_peer_supersedes_the_held_one() -> None:
    async def body() -> None:
        sent, hold = _recording(0.01)
        hold.send([_app(2, 5), _app(3, 5)])
        hold.send([_app(2, 5, 6)])  # the next write's MsgApp to 2 carries commit 5 too
        assert sent == [[_app(2, 5, 6)]]
        await asyncio.sleep(0.05)
        assert sent == [[_app(2, 5, 6)], [_app(3, 5)]]  # only 3's is still owed

    _run(body())


def test_a_newer_commit_replaces_an_older_held_one_and_order_within_a_batch_counts() -> None:
    async def body() -> None:
        sent, hold = _recording(0.01)
        # An append with entries, then a commit-only one in the same Ready: the latter is
        # newer news and must still arrive.
        hold.send([_app(2, 4, 5), _app(2, 5)])
        hold.send([_app(2, 6)])
        assert sent == [[_app(2, 4, 5)]]
        hold.flush()
        assert sent[1:] == [[_app(2, 6)]]
        await asyncio.sleep(0.03)
        assert len(sent) == 2  # the cancelled timer sends nothing twice

    _run(body())


def test_each_hold_gets_its_full_time_after_everything_held_was_superseded() -> None:
    async def body() -> None:
        sent, hold = _recording(0.2)
        hold.send([_app(2, 5)])
        await asyncio.sleep(0.1)
        hold.send([_app(2, 5, 6)])  # supersedes: nothing held, the timer is dropped
        hold.send([_app(2, 6)])  # held afresh at 0.1 s: due at 0.3 s, not at 0.2 s
        await asyncio.sleep(0.15)
        assert sent == [[_app(2, 5, 6)]]
        await asyncio.sleep(0.25)
        assert sent == [[_app(2, 5, 6)], [_app(2, 6)]]

    _run(body())


def test_close_drops_what_is_held() -> None:
    async def body() -> None:
        sent, hold = _recording(0.01)
        hold.send([_app(2, 5)])
        hold.close()
        await asyncio.sleep(0.03)
        assert sent == [] and hold.held == 0

    _run(body())
