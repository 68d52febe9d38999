"""A mergeable latency histogram with log-linear buckets (HDR-like, ~1.6% precision).

Values are integer microseconds. A value below 128 has its own bucket; a larger value `v`
with bit length `7 + e` falls in the bucket whose lower bound is `(v >> e) << e`, so each
power-of-two range is split into 64 equal buckets and the relative error of a reported
percentile is at most 1/64. Buckets are kept sparse (a dict of lower bound -> count), so a
histogram costs memory only for the latencies actually seen, merges by adding counts, and
serializes to plain JSON for the trip from a worker process to the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_LINEAR_BITS = 7


def bucket_of(value_us: int) -> int:
    """Lower bound of the bucket holding `value_us` (negative values clamp to 0)."""
    if value_us < (1 << _LINEAR_BITS):
        return max(0, value_us)
    shift = value_us.bit_length() - _LINEAR_BITS
    return (value_us >> shift) << shift


@dataclass(frozen=True, slots=True)
class Summary:
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


class Histogram:
    """Counts of latencies per bucket; `record` is the hot path, kept to a dict update."""

    __slots__ = ("counts", "total", "sum_us", "max_us")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.sum_us = 0
        self.max_us = 0

    def record(self, value_us: int) -> None:
        b = bucket_of(value_us)
        self.counts[b] = self.counts.get(b, 0) + 1
        self.total += 1
        self.sum_us += value_us
        if value_us > self.max_us:
            self.max_us = value_us

    def merge(self, other: Histogram) -> None:
        for b, n in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + n
        self.total += other.total
        self.sum_us += other.sum_us
        self.max_us = max(self.max_us, other.max_us)

    def percentile_us(self, q: float) -> int:
        """The bucket lower bound at quantile `q` in [0, 1] (0 when empty)."""
        if self.total == 0:
            return 0
        rank = max(1, int(q * self.total + 0.999999))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return b
        return self.max_us

    def summary(self) -> Summary:
        mean = self.sum_us / self.total if self.total else 0.0
        return Summary(
            count=self.total,
            mean_ms=mean / 1000.0,
            p50_ms=self.percentile_us(0.50) / 1000.0,
            p90_ms=self.percentile_us(0.90) / 1000.0,
            p99_ms=self.percentile_us(0.99) / 1000.0,
            max_ms=self.max_us / 1000.0,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "counts": {str(b): n for b, n in self.counts.items()},
            "sum_us": self.sum_us,
            "max_us": self.max_us,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Histogram:
        h = cls()
        counts = data.get("counts", {})
        if not isinstance(counts, Mapping):
            raise ValueError("histogram counts must be an object")
        for b, n in counts.items():
            h.counts[int(b)] = int(n)
        h.total = sum(h.counts.values())
        h.sum_us = int(data.get("sum_us", 0))  # type: ignore[call-overload]
        h.max_us = int(data.get("max_us", 0))  # type: ignore[call-overload]
        return h

    @classmethod
    def merged(cls, parts: Iterable[Histogram]) -> Histogram:
        h = cls()
        for part in parts:
            h.merge(part)
        return h
