"""The recorded history: one `Op` per client operation, plus watcher streams and faults.

Every operation gets its invocation and completion times (seconds on the monotonic clock,
relative to the start of the run) and an outcome:

* `ok`      the server answered; `result` holds what it said;
* `fail`    the operation certainly had no effect (a read that failed, or a write refused
            before it could be proposed: connection refused, "no leader");
* `unknown` it may or may not have taken effect (a timeout, "leader changed", a reset
            after sending). The checkers let such an operation take effect at any time
            after its invocation, or never.

Values written by the workload are unique per run ("<process>.<seq>"), so a value names
the one write that produced it; the checkers rely on that.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from api.client import (
    ConnectionFailedError,
    EmptyKeyError,
    EtcdError,
    LeaseNotFoundError,
    NoLeaderError,
    TooManyRequestsError,
)

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"

# Writes that provably never reached the apply path, or were refused by it without effect.
_DEFINITE_WRITE_ERRORS = (
    ConnectionFailedError, NoLeaderError, LeaseNotFoundError, EmptyKeyError,
    TooManyRequestsError,
)


def outcome_of(err: BaseException, *, read_only: bool) -> str:
    """`fail` or `unknown` for an operation that raised `err`."""
    if read_only:
        return FAIL  # a failed read changed nothing
    if isinstance(err, _DEFINITE_WRITE_ERRORS):
        return FAIL
    return UNKNOWN


def error_text(err: BaseException) -> str:
    if isinstance(err, EtcdError):
        return f"{type(err).__name__}: {err.message}"
    return f"{type(err).__name__}: {err}"


@dataclass(slots=True)
class Op:
    """One client operation. `f` is put|get|cas|delete|lease_grant|lease_put|lease_revoke|
    lease_ttl; `args` and `result` are small JSON-able dicts (values as str)."""

    index: int
    process: int
    f: str
    key: str
    args: dict[str, Any]
    invoke_s: float
    complete_s: float | None = None
    outcome: str = UNKNOWN
    result: dict[str, Any] = field(default_factory=dict)
    revision: int = 0  # response header revision of an ok answer
    error: str = ""


@dataclass(frozen=True, slots=True)
class WatchEvent:
    revision: int
    key: str
    type: str  # PUT | DELETE
    value: str
    at_s: float


@dataclass(slots=True)
class WatchLog:
    """What one watcher received, in order; `starts` are (time, start revision) of each
    (re)creation after an error."""

    watcher: int
    events: list[WatchEvent] = field(default_factory=list)
    starts: list[tuple[float, int]] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)


@dataclass(slots=True)
class Fault:
    kind: str
    target: str
    start_s: float
    end_s: float | None = None
    detail: str = ""


@dataclass(slots=True)
class History:
    ops: list[Op] = field(default_factory=list)
    watches: list[WatchLog] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # The cluster's full event history, read after the run: (revision, key, type, value).
    full_events: list[tuple[int, str, str, str]] = field(default_factory=list)
    final_revision: int = 0
    fresh_cluster: bool = True  # started by us, empty: every revision >= 2 is ours
    meta: dict[str, Any] = field(default_factory=dict)

    def invoke(self, process: int, f: str, key: str, args: dict[str, Any], now_s: float) -> Op:
        op = Op(index=len(self.ops), process=process, f=f, key=key, args=args, invoke_s=now_s)
        self.ops.append(op)
        return op

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "ops": [asdict(o) for o in self.ops],
            "watches": [asdict(w) for w in self.watches],
            "faults": [asdict(f) for f in self.faults],
            "full_events": self.full_events,
            "final_revision": self.final_revision,
            "fresh_cluster": self.fresh_cluster,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> History:
        h = cls(meta=data.get("meta", {}))
        h.ops = [Op(**o) for o in data["ops"]]
        for w in data["watches"]:
            log = WatchLog(w["watcher"])
            log.events = [WatchEvent(**e) for e in w["events"]]
            log.starts = [tuple(s) for s in w["starts"]]  # type: ignore[misc]
            log.errors = [tuple(e) for e in w["errors"]]  # type: ignore[misc]
            h.watches.append(log)
        h.faults = [Fault(**f) for f in data["faults"]]
        h.full_events = [tuple(e) for e in data["full_events"]]  # type: ignore[misc]
        h.final_revision = data["final_revision"]
        h.fresh_cluster = data.get("fresh_cluster", True)
        return h

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> History:
        return cls.from_json(json.loads(path.read_text()))


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One checker finding: `kind` (stable name), a sentence, and a minimal example."""

    kind: str
    message: str
    example: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CheckResult:
    """A checker's verdict: valid True/False/None (None = could not decide in budget)."""

    name: str
    valid: bool | None
    anomalies: list[Anomaly] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
