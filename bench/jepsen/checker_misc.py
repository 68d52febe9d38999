"""Checks that need no search: header revisions, durability, leases.

* revision-regress: per client process, the response-header revision of successive
  answered operations never goes down (a process runs one operation at a time, and each
  operation is linearizable, so it sees a store at least as new as the previous one).
* lost-write: every acknowledged write (put, successful cas, delete that deleted, put with
  a lease) is in the final full history at its header revision, with its key and value.
* phantom-write: (clusters we started empty) every PUT in the full history carries a value
  some client tried to write.
* revision-mismatch: a read's mod_revision for a value is the revision that value was
  written at.
* lease-violation: once a lease's revoke was acknowledged (or its TTL read back as
  expired), no read invoked after that returns a key written with that lease.
"""

from __future__ import annotations

from bench.jepsen.checker_linear import describe
from bench.jepsen.history import OK, Anomaly, CheckResult, History, Op

EXAMPLES_MAX = 5


def _acked_write(op: Op) -> tuple[str, str] | None:
    """(type, value) an acknowledged write must have left in the history, else None."""
    if op.outcome != OK:
        return None
    if op.f in ("put", "lease_put"):
        return "PUT", op.args["value"]
    if op.f == "cas" and op.result.get("succeeded"):
        return "PUT", op.args["new"]
    if op.f == "delete" and op.result.get("deleted", 0) > 0:
        return "DELETE", ""
    return None


def check_revisions(history: History) -> list[Anomaly]:
    last: dict[int, Op] = {}
    bad: list[str] = []
    for op in history.ops:  # ops are appended at invocation; one at a time per process
        if op.outcome != OK or op.revision <= 0:
            continue
        prev = last.get(op.process)
        if prev is not None and op.revision < prev.revision:
            bad.append(f"{describe(prev)}  THEN  {describe(op)}")
        last[op.process] = op
    if not bad:
        return []
    return [Anomaly("revision-regress",
                    f"{len(bad)} answers with a header revision below the process's previous one",
                    bad[:EXAMPLES_MAX])]


def check_durability(history: History) -> list[Anomaly]:
    out: list[Anomaly] = []
    truth = {(r, k): (t, v) for r, k, t, v in history.full_events}
    lost: list[str] = []
    for op in history.ops:
        want = _acked_write(op)
        if want is None:
            continue
        got = truth.get((op.revision, op.key))
        if got is None or got[0] != want[0] or (want[0] == "PUT" and got[1] != want[1]):
            seen = "nothing" if got is None else f"{got[0]} {got[1]!r}"
            lost.append(f"{describe(op)}; the history has {seen} at rev {op.revision}")
    if lost:
        out.append(Anomaly("lost-write",
                           f"{len(lost)} acknowledged writes are missing from the final history",
                           lost[:EXAMPLES_MAX]))
    if history.fresh_cluster:
        tried = {o.args.get("value") for o in history.ops} | {o.args.get("new") for o in history.ops}
        phantom = [f"rev={r} PUT {k}={v!r}" for r, k, t, v in history.full_events
                   if t == "PUT" and v not in tried]
        if phantom:
            out.append(Anomaly("phantom-write",
                               f"{len(phantom)} values in the history that nobody wrote",
                               phantom[:EXAMPLES_MAX]))
    written_at = {(k, v): r for r, k, t, v in history.full_events if t == "PUT"}
    mism: list[str] = []
    for op in history.ops:
        if op.f == "get" and op.outcome == OK and op.result.get("value") is not None:
            at = written_at.get((op.key, op.result["value"]))
            if at is not None and at != op.result.get("mod_revision"):
                mism.append(f"{describe(op)}; written at rev {at}")
    if mism:
        out.append(Anomaly("revision-mismatch",
                           f"{len(mism)} reads report a mod_revision other than the write's",
                           mism[:EXAMPLES_MAX]))
    return out


def check_leases(history: History) -> list[Anomaly]:
    gone_at: dict[int, tuple[float, Op]] = {}  # lease_id -> (time known gone, evidence)
    for op in history.ops:
        if op.outcome != OK or op.complete_s is None:
            continue
        lid = op.args.get("lease_id")
        # TTL -1 with granted TTL 0 is "lease not found"; an expired lease not yet revoked
        # can also read back a negative TTL, but with its granted TTL.
        if op.f == "lease_revoke" or (op.f == "lease_ttl" and op.result.get("ttl_s", 0) < 0
                                      and op.result.get("granted_ttl_s", 0) == 0):
            if lid not in gone_at or op.complete_s < gone_at[lid][0]:
                gone_at[lid] = (op.complete_s, op)
    lease_of = {(o.key, o.args["value"]): o.args["lease_id"] for o in history.ops
                if o.f == "lease_put"}
    bad: list[str] = []
    for op in history.ops:
        if op.f != "get" or op.outcome != OK or op.result.get("value") is None:
            continue
        lid = lease_of.get((op.key, op.result["value"]))
        if lid is None or lid not in gone_at:
            continue
        t, evidence = gone_at[lid]
        if op.invoke_s > t:
            bad.append(f"{describe(op)}  AFTER  {describe(evidence)}")
    if not bad:
        return []
    return [Anomaly("lease-violation",
                    f"{len(bad)} reads returned a key of a revoked or expired lease",
                    bad[:EXAMPLES_MAX])]


def check(history: History) -> CheckResult:
    result = CheckResult("misc", True)
    result.anomalies += check_revisions(history)
    if history.full_events or history.final_revision <= 1:
        result.anomalies += check_durability(history)
    else:
        result.valid = None
        result.notes.append("no full history could be read: durability not checked")
    result.anomalies += check_leases(history)
    if result.anomalies:
        result.valid = False
    return result
