"""FakeNetwork and FakeClock: a deterministic, fault-injecting message fabric for the simulator.

Theory of operation
-------------------
Every message handed to `FakeNetwork.send` becomes an `Envelope` with a delivery time in
simulator steps. The fate of the message (dropped, delayed by how much, duplicated, pushed
back behind later messages) is drawn from the ONE `random.Random` the network was built
with, in the order the messages are sent, so the same seed and the same sequence of calls
give the same deliveries, bit for bit. Nothing here reads a clock or the OS.

Faults:
- *loss*: a message is silently dropped with probability `drop_rate`;
- *duplication*: a second copy is scheduled with its own delay (`duplicate_rate`);
- *delay and reordering*: each copy waits `delay_min..delay_max` steps; with probability
  `reorder_rate` it waits up to `reorder_extra_max` more, overtaking nothing but being
  overtaken by later messages;
- *partitions*: a set of blocked directed links (`frm -> to`); a symmetric partition blocks
  both directions, an asymmetric one only one. Blocked links are checked when a message is
  sent AND when it is delivered, so a message in flight when the partition starts is lost,
  as on a real cut cable.
- *crash*: `drop_to(node)` discards everything in flight to a node that just crashed; its
  unsent output is discarded by the simulator itself.

`deliver_due(now)` pops every envelope whose time has come, ordered by (due step, send
sequence number): a total order, so delivery never depends on heap or dict layout.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class NetworkFaults:
    """Probabilities and delay bounds of the fault model (delays are in simulator steps)."""

    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    delay_min: int = 0
    delay_max: int = 0
    reorder_extra_max: int = 0

    @staticmethod
    def none() -> NetworkFaults:
        """A perfect network: no loss, no duplication, delivery at the next step."""
        return NetworkFaults()


@dataclass(order=True, slots=True)
class Envelope(Generic[M]):
    """One copy of a message in flight; ordered by (due, seq) so delivery is a total order."""

    due: int
    seq: int
    frm: int = field(compare=False)
    to: int = field(compare=False)
    msg: M = field(compare=False)


@dataclass(slots=True)
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    blocked: int = 0


class FakeClock:
    """Logical time of the simulation, advanced only by the simulator."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0

    def advance(self, steps: int = 1) -> int:
        if steps < 0:
            raise ValueError("a clock never goes back")
        self.now += steps
        return self.now


class FakeNetwork(Generic[M]):
    """Lossy, duplicating, reordering, partitionable network driven by one random.Random."""

    def __init__(self, rng: random.Random, faults: NetworkFaults | None = None) -> None:
        self._rng = rng
        self.faults = faults if faults is not None else NetworkFaults.none()
        self._queue: list[Envelope[M]] = []
        self._seq = 0
        self._blocked: set[tuple[int, int]] = set()
        self.stats = NetworkStats()
        # Told about every scheduled copy that is lost after all (cut link, crashed
        # receiver), e.g. so that a leader learns its MsgSnap stream failed.
        self.on_discard: Callable[[Envelope[M]], None] | None = None

    # -- partitions -------------------------------------------------------------------

    def block(self, frm: int, to: int) -> None:
        """Cut the one-way link frm -> to (an asymmetric partition)."""
        if frm != to:
            self._blocked.add((frm, to))

    def unblock(self, frm: int, to: int) -> None:
        self._blocked.discard((frm, to))

    def is_blocked(self, frm: int, to: int) -> bool:
        return (frm, to) in self._blocked

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Split the nodes into groups that cannot talk across (symmetric); adds to existing cuts."""
        sets = [sorted(g) for g in groups]
        for i, a in enumerate(sets):
            for b in sets[i + 1 :]:
                for x in a:
                    for y in b:
                        self.block(x, y)
                        self.block(y, x)

    def isolate(self, node: int, others: Iterable[int]) -> None:
        self.partition([[node], [o for o in others if o != node]])

    def heal(self) -> None:
        """Remove every partition (messages already dropped stay dropped)."""
        self._blocked.clear()

    @property
    def blocked_links(self) -> frozenset[tuple[int, int]]:
        return frozenset(self._blocked)

    # -- traffic ------------------------------------------------------------------------

    def send(self, frm: int, to: int, msg: M, *, now: int) -> list[Envelope[M]]:
        """Hand one message to the network at step `now`; it is delivered at a step > now.

        Returns the copies scheduled (none if it was lost at once, two if duplicated)."""
        self.stats.sent += 1
        f = self.faults
        if (frm, to) in self._blocked:
            self.stats.blocked += 1
            return []
        if f.drop_rate and self._rng.random() < f.drop_rate:
            self.stats.dropped += 1
            return []
        copies = 1
        if f.duplicate_rate and self._rng.random() < f.duplicate_rate:
            copies = 2
            self.stats.duplicated += 1
        scheduled: list[Envelope[M]] = []
        for _ in range(copies):
            delay = 1 + (self._rng.randint(f.delay_min, f.delay_max) if f.delay_max else 0)
            if f.reorder_rate and f.reorder_extra_max and self._rng.random() < f.reorder_rate:
                delay += self._rng.randint(1, f.reorder_extra_max)
            self._seq += 1
            env = Envelope(now + delay, self._seq, frm, to, msg)
            heapq.heappush(self._queue, env)
            scheduled.append(env)
        return scheduled

    def deliver_due(self, now: int) -> list[Envelope[M]]:
        """Pop every envelope due at or before `now`, in (due, seq) order, minus cut links."""
        out: list[Envelope[M]] = []
        q = self._queue
        while q and q[0].due <= now:
            env = heapq.heappop(q)
            if (env.frm, env.to) in self._blocked:
                self.stats.blocked += 1
                if self.on_discard is not None:
                    self.on_discard(env)
                continue
            self.stats.delivered += 1
            out.append(env)
        return out

    def drop_to(self, node: int) -> int:
        """Discard every message in flight to `node` (it crashed); returns how many."""
        keep = [e for e in self._queue if e.to != node]
        dropped = len(self._queue) - len(keep)
        if dropped:
            lost = [e for e in self._queue if e.to == node]
            heapq.heapify(keep)
            self._queue = keep
            self.stats.dropped += dropped
            if self.on_discard is not None:
                for env in sorted(lost):
                    self.on_discard(env)
        return dropped

    def drop_all(self) -> None:
        self.stats.dropped += len(self._queue)
        lost, self._queue = sorted(self._queue), []
        if self.on_discard is not None:
            for env in lost:
                self.on_discard(env)

    def in_flight(self) -> int:
        return len(self._queue)
