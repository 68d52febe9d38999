"""The leader's lease clock: when each lease expires, in this process's monotonic time.

Only the leader counts TTLs (etcd's lessor). The persisted lease state (ID, granted TTL,
last checkpointed remaining TTL) lives in kvstore; this module only knows deadlines. Expiry
is never applied directly: the node *proposes* a LeaseRevoke for each expired lease, so
every member deletes the attached keys at the same log position.

On promotion (a new leader, or a restart) the deadlines are rebuilt from the store: a lease
with a checkpointed remaining TTL gets that much time, otherwise its full TTL (etcd's rule
without checkpoints). `checkpoints()` yields the remaining TTLs worth persisting so that a
leader change or a restart does not reset them.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable

from kvstore.types import Lease


class Lessor:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._deadline: dict[int, float] = {}
        self._ttl: dict[int, int] = {}
        self._heap: list[tuple[float, int]] = []
        self._checkpointed: dict[int, int] = {}

    def __contains__(self, lease_id: int) -> bool:
        return lease_id in self._deadline

    def promote(self, leases: Iterable[Lease], *, extend_s: float = 0.0) -> None:
        """Start counting every lease (this member just became the one that counts)."""
        self._deadline.clear()
        self._ttl.clear()
        self._heap.clear()
        self._checkpointed.clear()
        for lease in leases:
            remaining = lease.remaining_ttl if lease.remaining_ttl > 0 else lease.ttl
            self._ttl[lease.id] = lease.ttl
            self._checkpointed[lease.id] = remaining
            self._set(lease.id, self._clock() + remaining + extend_s)

    def demote(self) -> None:
        self._deadline.clear()
        self._heap.clear()

    def grant(self, lease_id: int, ttl: int) -> None:
        self._ttl[lease_id] = ttl
        self._set(lease_id, self._clock() + ttl)

    def revoke(self, lease_id: int) -> None:
        self._deadline.pop(lease_id, None)
        self._ttl.pop(lease_id, None)
        self._checkpointed.pop(lease_id, None)

    def renew(self, lease_id: int) -> int:
        """Reset a lease's deadline to now + TTL; returns the TTL, or 0 if it is unknown."""
        ttl = self._ttl.get(lease_id)
        if ttl is None or lease_id not in self._deadline:
            return 0
        self._set(lease_id, self._clock() + ttl)
        return ttl

    def remaining_s(self, lease_id: int) -> int | None:
        deadline = self._deadline.get(lease_id)
        if deadline is None:
            return None
        return max(0, math.floor(deadline - self._clock()))

    def sort_key(self, lease_id: int) -> tuple[float, int]:
        """Order by deadline (leases this member does not count go last), then by ID."""
        return (self._deadline.get(lease_id, math.inf), lease_id)

    def expired(self, limit: int) -> list[int]:
        """Up to `limit` leases whose deadline has passed (each reported until revoked)."""
        now = self._clock()
        out: list[int] = []
        while self._heap and len(out) < limit:
            deadline, lease_id = self._heap[0]
            if self._deadline.get(lease_id) != deadline:
                heapq.heappop(self._heap)  # superseded by a renewal or revoked
                continue
            if deadline > now:
                break
            heapq.heappop(self._heap)
            out.append(lease_id)
            # Re-arm shortly so a lost revoke proposal is retried.
            self._set(lease_id, now + 1.0)
        return out

    def checkpoints(self, *, min_change_s: int) -> list[tuple[int, int]]:
        """(lease_id, remaining_s) for leases whose remaining TTL moved by >= min_change_s."""
        out = []
        for lease_id in list(self._deadline):
            remaining = self.remaining_s(lease_id)
            if remaining is None:
                continue
            if abs(self._checkpointed.get(lease_id, 0) - remaining) >= min_change_s:
                self._checkpointed[lease_id] = remaining
                out.append((lease_id, remaining))
        return out

    def _set(self, lease_id: int, deadline: float) -> None:
        self._deadline[lease_id] = deadline
        heapq.heappush(self._heap, (deadline, lease_id))
