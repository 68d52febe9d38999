"""Watch streams against the cluster's full revision history.

Theory of operation. After the run the cluster's whole event history is read back once (a
watch from revision 1 over the workload's prefix; nothing is ever compacted), giving the
truth each watcher is held to. checker_misc.py separately checks that this truth holds
every acknowledged write, so a server that lies consistently to the final read and to the
watchers is still caught there.

For every watcher, over its whole life (it re-creates its watch from last revision + 1
after an error), with s the revision it first asked for and r the last it received:

* revisions never go down, and no (revision, key) is delivered twice  (watch-order,
  watch-duplicate);
* every delivered event is in the full history with the same type and value
  (watch-mismatch);
* every event of the full history with s <= revision <= r was delivered (watch-gap).

Events within one revision (a lease revoke deleting several keys) are compared as sets,
so their order inside the revision does not matter.
"""

from __future__ import annotations

from bench.jepsen.history import Anomaly, CheckResult, History, WatchEvent, WatchLog

EXAMPLES_MAX = 5


def _ev(e: WatchEvent) -> str:
    return f"rev={e.revision} {e.type} {e.key}={e.value!r} (received at {e.at_s:.3f})"


def check_watcher(log: WatchLog, full: list[tuple[int, str, str, str]]) -> list[Anomaly]:
    truth = {(r, k): (t, v) for r, k, t, v in full}
    out: list[Anomaly] = []
    seen: set[tuple[int, str]] = set()
    last_rev = 0
    dup: list[str] = []
    order: list[str] = []
    mismatch: list[str] = []
    for e in log.events:
        rk = (e.revision, e.key)
        if rk in seen:
            dup.append(_ev(e))
            continue
        if e.revision < last_rev:
            order.append(f"{_ev(e)} after rev={last_rev}")
            continue
        seen.add(rk)
        last_rev = e.revision
        want = truth.get(rk)
        if want != (e.type, e.value):
            told = "no such event" if want is None else f"{want[0]} {e.key}={want[1]!r}"
            mismatch.append(f"{_ev(e)}; the history has {told}")
    w = f"watcher {log.watcher}"
    if dup:
        out.append(Anomaly("watch-duplicate", f"{w}: {len(dup)} events delivered twice",
                           dup[:EXAMPLES_MAX]))
    if order:
        out.append(Anomaly("watch-order", f"{w}: {len(order)} events went back in revision",
                           order[:EXAMPLES_MAX]))
    if mismatch:
        out.append(Anomaly("watch-mismatch", f"{w}: {len(mismatch)} events differ from the history",
                           mismatch[:EXAMPLES_MAX]))
    if log.starts and last_rev:
        start = log.starts[0][1]
        missing = [(r, k, t, v) for r, k, t, v in full
                   if start <= r <= last_rev and (r, k) not in seen]
        if missing:
            ex = [f"missing rev={r} {t} {k}={v!r}" for r, k, t, v in missing[:EXAMPLES_MAX]]
            first = missing[0][0]
            before = [e for e in log.events if e.revision < first][-1:]
            after = [e for e in log.events if e.revision > first][:1]
            ex += [f"delivered before it: {_ev(e)}" for e in before]
            ex += [f"delivered after it: {_ev(e)}" for e in after]
            out.append(Anomaly(
                "watch-gap",
                f"{w}: {len(missing)} events between rev {start} and {last_rev} never delivered",
                ex))
    return out


def check(history: History) -> CheckResult:
    result = CheckResult("watch", True)
    if not history.full_events and history.final_revision > 1:
        result.valid = None
        result.notes.append("no full history could be read: watch streams not checked")
        return result
    for log in history.watches:
        if history.final_revision:  # later events (leases expiring after the end) are unread
            log = WatchLog(log.watcher, [e for e in log.events if e.revision <= history.final_revision],
                           log.starts, log.errors)
        found = check_watcher(log, history.full_events)
        result.anomalies += found
        last = log.events[-1].revision if log.events else 0
        result.notes.append(
            f"watcher {log.watcher}: {len(log.events)} events up to rev {last}, "
            f"{len(log.starts)} (re)starts, {len(log.errors)} errors")
    if result.anomalies:
        result.valid = False
    return result
