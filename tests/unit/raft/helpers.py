"""Helpers for raft unit tests: build cores and RawNodes, and a tiny in-memory network.

`Network` delivers messages between `core.Raft` instances synchronously (depth-first, like
etcd-io/raft's test network), persisting nothing: the cores keep their entries unstable,
which the RaftLog serves like any other. Drops and partitions are explicit.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from raft.core import Raft
from raft.raw_node import RawNode
from raft.ready import Ready
from raft.storage import MemoryStorage
from raft.types import (
    Config,
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)


def new_storage(
    voters: Sequence[int],
    learners: Sequence[int] = (),
    *,
    index: int = 0,
    term: int = 0,
    entries: Sequence[Entry] = (),
    hard_state: HardState | None = None,
) -> MemoryStorage:
    s = MemoryStorage()
    cs = ConfState(tuple(sorted(voters)), tuple(sorted(learners)))
    if index > 0:
        s.apply_snapshot(Snapshot(SnapshotMetadata(index, term, cs)))
    else:
        # No snapshot: the config still has to come from somewhere; a snapshot at 0 is
        # refused, so set it directly as a bootstrap would.
        s._snapshot = Snapshot(SnapshotMetadata(0, 0, cs))
    s.append(list(entries))
    if hard_state is not None:
        s.set_hard_state(hard_state)
    return s


def config(id: int, *, seed: int | None = None, **kw: object) -> Config:
    return Config(id=id, rng=random.Random(id if seed is None else seed), **kw)  # type: ignore[arg-type]


def new_raft(
    id: int,
    voters: Sequence[int] = (1, 2, 3),
    *,
    learners: Sequence[int] = (),
    storage: MemoryStorage | None = None,
    **kw: object,
) -> Raft:
    s = storage if storage is not None else new_storage(voters, learners)
    return Raft(config(id, **kw), s)


def new_raw_node(
    id: int, voters: Sequence[int] = (1, 2, 3), *, storage: MemoryStorage | None = None, **kw: object
) -> tuple[RawNode, MemoryStorage]:
    s = storage if storage is not None else new_storage(voters, index=1, term=1)
    return RawNode(config(id, **kw), s), s


def read_messages(r: Raft) -> list[Message]:
    msgs = r.msgs
    r.msgs = []
    return msgs


def ents(*terms: int, start: int = 1) -> list[Entry]:
    """Entries with the given terms at consecutive indexes from `start`."""
    return [Entry(t, start + i) for i, t in enumerate(terms)]


def handle_ready(node: RawNode, storage: MemoryStorage) -> Ready:
    """Follow the Ready contract with a MemoryStorage; returns the Ready."""
    rd = node.ready()
    if rd.snapshot is not None:
        storage.apply_snapshot(rd.snapshot)
    if rd.hard_state is not None:
        storage.set_hard_state(rd.hard_state)
    storage.append(rd.entries)
    node.advance(rd)
    return rd


class Network:
    """Synchronous delivery between cores; `send` delivers until quiescent."""

    def __init__(self, peers: dict[int, Raft]) -> None:
        self.peers = peers
        self.dropped: set[tuple[int, int]] = set()
        self.ignored: set[MessageType] = set()
        self.delivered: list[Message] = []
        # Random loss: each message is dropped with probability drop_rate (rng required).
        self.drop_rate = 0.0
        self.rng: random.Random | None = None

    @classmethod
    def of(cls, n: int, **kw: object) -> Network:
        ids = list(range(1, n + 1))
        return cls({i: new_raft(i, ids, **kw) for i in ids})

    def cut(self, a: int, b: int) -> None:
        self.dropped |= {(a, b), (b, a)}

    def isolate(self, id: int) -> None:
        for other in self.peers:
            if other != id:
                self.cut(id, other)

    def recover(self) -> None:
        self.dropped.clear()
        self.ignored.clear()

    def send(self, msgs: Iterable[Message]) -> None:
        queue = list(msgs)
        for _ in range(100_000):
            if not queue:
                return
            m = queue.pop(0)
            if (m.from_, m.to) in self.dropped or m.type in self.ignored or m.to not in self.peers:
                continue
            if self.rng is not None and self.rng.random() < self.drop_rate:
                continue
            self.delivered.append(m)
            p = self.peers[m.to]
            try:
                p.step(m)
            except Exception as e:  # a dropped proposal is fine here
                if type(e).__name__ != "ProposalDroppedError":
                    raise
            from raft.roles import leader

            leader.flush(p)
            queue.extend(read_messages(p))
        raise AssertionError("network did not quiesce")

    def campaign(self, id: int) -> None:
        self.send([Message(MessageType.HUP, to=id, from_=id)])

    def propose(self, id: int, data: bytes = b"x") -> None:
        self.send([Message(MessageType.PROP, to=id, from_=id, entries=[Entry(0, 0, data=data)])])
