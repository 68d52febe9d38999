"""Inflights: the flow-control window of MsgApp sent to one follower in REPLICATE state.

Each entry of the window is the last index carried by one in-flight MsgApp. The leader stops
sending when the window is full and frees slots as acknowledgements arrive (`free_le`), so
at most `size` messages are unacknowledged per follower. Indexes are added in increasing
order, so freeing is popping from the left.
"""

from __future__ import annotations

from collections import deque

from raft.errors import invariant


class Inflights:
    __slots__ = ("size", "_q")

    def __init__(self, size: int) -> None:
        self.size = size
        self._q: deque[int] = deque()

    def add(self, index: int) -> None:
        invariant(len(self._q) < self.size, "cannot add into a full inflights window")
        invariant(not self._q or self._q[-1] < index, "inflight indexes must increase")
        self._q.append(index)

    def free_le(self, to: int) -> None:
        """Free every in-flight message whose last index is <= `to`."""
        q = self._q
        while q and q[0] <= to:
            q.popleft()

    def free_first_one(self) -> None:
        """Free the oldest slot: a heartbeat response proves the follower is alive, so a full
        window (whose MsgApp may have been lost) must not stall replication forever."""
        invariant(bool(self._q), "free_first_one on an empty inflights window")
        self._q.popleft()

    def full(self) -> bool:
        return len(self._q) >= self.size

    def count(self) -> int:
        return len(self._q)

    def reset(self) -> None:
        self._q.clear()
