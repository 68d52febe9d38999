"""ReadOnly: ReadIndex requests waiting for the leader to confirm its leadership.

Theory (Raft thesis §6.4): the leader records its commit index as the read index of a
request, then proves it is still leader by a heartbeat round carrying the request's context;
once a quorum acknowledged that context (or any later one: heartbeats are answered in
order and a later round subsumes earlier ones) every request queued up to it is answered.
Requests are kept in arrival order in `queue`; `pending` maps a context to its status.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raft.types import Message, ReadOnlyOption


@dataclass(slots=True)
class ReadIndexStatus:
    req: Message
    index: int
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    __slots__ = ("option", "pending", "queue")

    def __init__(self, option: ReadOnlyOption) -> None:
        self.option = option
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, m: Message) -> None:
        ctx = m.entries[0].data
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(req=m, index=index)
        self.queue.append(ctx)

    def recv_ack(self, id: int, ctx: bytes) -> set[int] | None:
        """Record `id`'s acknowledgement of `ctx`; returns the acks so far (None if unknown)."""
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks.add(id)
        return rs.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Dequeue and return every request up to and including `ctx`."""
        if ctx not in self.pending:
            return []
        i = self.queue.index(ctx)
        done = [self.pending.pop(c) for c in self.queue[: i + 1]]
        del self.queue[: i + 1]
        return done

    def last_pending_request_ctx(self) -> bytes:
        return self.queue[-1] if self.queue else b""
