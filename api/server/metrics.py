"""A small Prometheus metrics registry: Counter, Gauge, Histogram, text exposition 0.0.4.

Why not `prometheus_client`: we need a few dozen series with labels and the text format,
and the node updates them from one event loop. A hundred and fifty lines give exactly that
with no new dependency and no background threads (prometheus_client would also be fine;
this keeps the server's import time and dependency list small).

Theory of operation: a `Registry` holds metric families by name, in registration order.
A family has a fixed tuple of label names; `labels(*values)` returns (creating on first
use) the child series for those values. Unlabelled families act as their own single
child. Gauges may be bound to a function (`set_function`) read at scrape time, which is
how values that the node already knows (db size, leader) are exported without copying.
`render()` produces the text format: `# HELP`, `# TYPE`, then one line per series
(histograms: cumulative `_bucket{le=...}`, `_sum`, `_count`).

Everything runs on the event loop thread; there is no locking.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import cast

__all__ = [
    "DEFAULT_REGISTRY",
    "METRICS",
    "Counter",
    "EtcdMetrics",
    "Gauge",
    "Histogram",
    "Registry",
    "exponential_buckets",
]


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """Prometheus's ExponentialBuckets (etcd's fsync histogram: start 0.001, factor 2, 14)."""
    if start <= 0 or factor <= 1 or count < 1:
        raise ValueError("exponential_buckets needs start > 0, factor > 1, count >= 1")
    return tuple(start * factor**i for i in range(count))


def _format_value(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def _escape_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def _labels_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Family:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _Family] = {}

    def labels(self, *values: str) -> _Family:
        child = self._children.get(values)  # hot path: every request looks up its series
        if child is not None:
            return child
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._new_child()
            self._children[key] = child
        return child

    def _new_child(self) -> _Family:
        raise NotImplementedError

    def _series(self) -> list[tuple[tuple[str, ...], _Family]]:
        if self.labelnames:
            return list(self._children.items())
        return [((), self)]

    def _check_unlabelled(self) -> None:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: use .labels(...)")

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for values, child in self._series():
            lines.extend(child._sample_lines_for(self, values))
        return lines

    def _sample_lines_for(self, family: _Family, values: tuple[str, ...]) -> list[str]:
        raise NotImplementedError


class Counter(_Family):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self.value = 0.0

    def _new_child(self) -> Counter:
        return Counter(self.name, self.help)

    def labels(self, *values: str) -> Counter:
        return cast(Counter, super().labels(*values))

    def inc(self, amount: float = 1.0) -> None:
        self._check_unlabelled()
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount

    def _sample_lines_for(self, family: _Family, values: tuple[str, ...]) -> list[str]:
        return [f"{family.name}{_labels_text(family.labelnames, values)} {_format_value(self.value)}"]


class Gauge(_Family):
    kind = "gauge"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self.value = 0.0
        self._fn: Callable[[], float] | None = None

    def _new_child(self) -> Gauge:
        return Gauge(self.name, self.help)

    def labels(self, *values: str) -> Gauge:
        return cast(Gauge, super().labels(*values))

    def set(self, value: float) -> None:
        self._check_unlabelled()
        self.value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        self._check_unlabelled()
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self._check_unlabelled()
        self.value -= amount

    def set_function(self, fn: Callable[[], float] | None) -> None:
        """Read the value from `fn()` at scrape time (None: back to the stored value)."""
        self._check_unlabelled()
        self._fn = fn

    def get(self) -> float:
        return float(self._fn()) if self._fn is not None else self.value

    def _sample_lines_for(self, family: _Family, values: tuple[str, ...]) -> list[str]:
        return [f"{family.name}{_labels_text(family.labelnames, values)} {_format_value(self.get())}"]


class Histogram(_Family):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = exponential_buckets(0.001, 2, 14),
    ) -> None:
        super().__init__(name, help_text, labelnames)
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds:
            raise ValueError("a histogram needs at least one finite bucket")
        self.buckets = tuple(bounds)
        self.counts = [0] * (len(self.buckets) + 1)  # last slot: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0

    def _new_child(self) -> Histogram:
        return Histogram(self.name, self.help, buckets=self.buckets)

    def labels(self, *values: str) -> Histogram:
        return cast(Histogram, super().labels(*values))

    def observe(self, value: float) -> None:
        self._check_unlabelled()
        # Prometheus buckets are "less than or equal": bisect_left puts value == bound in it.
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def _sample_lines_for(self, family: _Family, values: tuple[str, ...]) -> list[str]:
        names, name = family.labelnames, family.name
        lines = []
        cumulative = 0
        for bound, n in zip((*self.buckets, math.inf), self.counts, strict=True):
            cumulative += n
            le = f'le="{_format_value(bound)}"'
            lines.append(f"{name}_bucket{_labels_text(names, values, le)} {cumulative}")
        lines.append(f"{name}_sum{_labels_text(names, values)} {_format_value(self.sum)}")
        lines.append(f"{name}_count{_labels_text(names, values)} {self.count}")
        return lines


class Registry:
    """Metric families by name; `render()` is the /metrics body."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def register(self, family: _Family) -> None:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} already registered")
        self._families[family.name] = family

    def counter(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Counter:
        c = Counter(name, help_text, labelnames)
        self.register(c)
        return c

    def gauge(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Gauge:
        g = Gauge(name, help_text, labelnames)
        self.register(g)
        return g

    def histogram(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = exponential_buckets(0.001, 2, 14),
    ) -> Histogram:
        h = Histogram(name, help_text, labelnames, buckets=buckets)
        self.register(h)
        return h

    def get(self, name: str) -> _Family | None:
        return self._families.get(name)

    def render(self) -> str:
        lines: list[str] = []
        for family in self._families.values():
            lines.extend(family.render())
        return "\n".join(lines) + "\n"


DEFAULT_REGISTRY = Registry()


class EtcdMetrics:
    """etcd's metric families that kvstore exports, under etcd's names, types and help.

    The node updates the raft/disk/proposal series; the gRPC layer the grpc_server_* ones;
    the HTTP server binds the db-size and leader gauges to the backend at scrape time.
    """

    def __init__(self, registry: Registry) -> None:
        r = registry
        self.has_leader = r.gauge(
            "etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not."
        )
        self.leader_changes_seen_total = r.counter(
            "etcd_server_leader_changes_seen_total", "The number of leader changes seen."
        )
        self.proposals_committed_total = r.gauge(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
        )
        self.proposals_applied_total = r.gauge(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
        )
        self.proposals_pending = r.gauge(
            "etcd_server_proposals_pending", "The current number of pending proposals to commit."
        )
        self.proposals_failed_total = r.counter(
            "etcd_server_proposals_failed_total", "The total number of failed proposals seen."
        )
        self.db_total_size_in_bytes = r.gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
        )
        self.db_total_size_in_use_in_bytes = r.gauge(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
        )
        self.keys_total = r.gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.")
        self.wal_fsync_duration_seconds = r.histogram(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            buckets=exponential_buckets(0.001, 2, 14),
        )
        self.backend_commit_duration_seconds = r.histogram(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            buckets=exponential_buckets(0.001, 2, 14),
        )
        self.grpc_started_total = r.counter(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            ("grpc_type", "grpc_service", "grpc_method"),
        )
        self.grpc_handled_total = r.counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            ("grpc_type", "grpc_service", "grpc_method", "grpc_code"),
        )


METRICS = EtcdMetrics(DEFAULT_REGISTRY)
