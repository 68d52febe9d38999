"""Per-key linearizability of the register operations (put, get, cas, delete).

Theory of operation. etcd keys are independent registers, and linearizability is local
(Herlihy & Wing: a history is linearizable iff each object's sub-history is), so each key
is checked alone ("P-compositionality"). Per key, the search is Wing & Gong's: repeatedly
pick an operation that may take effect next, apply it to a sequential model, and backtrack
on a contradiction, with Lowe's memoization: a configuration (set of operations already
linearized, model state) that failed once is never explored again.

An operation may go next iff it was invoked before every not-yet-linearized operation
completed (no op that finished earlier is left behind). Completed operations are sorted by
invocation, so the candidates are a short window after the first unlinearized one.

Indeterminate operations (`unknown` outcome) get completion time +infinity: they may take
effect at any point after their invocation, and since nothing forces them, "never" is the
same as "after everything". Failed operations are dropped (they had no effect), and so are
reads of unknown outcome (they observed nothing we know). One more prune makes unknown
writes cheap: if (S, state) failed, then (S plus some unknown ops, state) fails too, as any
way to finish from the larger set works from the smaller one by leaving those unknown ops
unapplied; so the memo is keyed by the completed ops and keeps, per key, the sets of
unknown ops that failed. And an unconditional unknown write (put, delete) is only tried
right after a completed op: if it directly followed another unknown op, that one could be
left out (its effect is overwritten before anyone sees it), so such orders add nothing.

The model is a register over unique values: put v sets v; get returns the value (None if
absent); cas(expect, new) sets new iff the value equals expect, else it fails and reports
the value it saw (the txn's else branch reads the key); delete answers deleted=1 iff the key
existed. A CAS on mod_revision is recorded with the value that had that revision (values
are unique, so "mod_revision == r" and "value == the value written at r" are the same
condition).

The search has a time budget: when it runs out the key is reported "unknown", never valid
or invalid by guess.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from bench.jepsen.history import OK, UNKNOWN, Anomaly, CheckResult, History, Op

REGISTER_FS = ("put", "get", "cas", "delete")
_ABSENT = "<absent>"


@dataclass(frozen=True, slots=True)
class LinOp:
    call: float
    ret: float
    op: Op


def describe(op: Op) -> str:
    """One readable line for an operation (used in every example)."""
    end = "?" if op.complete_s is None else f"{op.complete_s:.3f}"
    args = " ".join(f"{k}={v!r}" for k, v in op.args.items())
    res = " ".join(f"{k}={v!r}" for k, v in op.result.items())
    rev = f" rev={op.revision}" if op.revision else ""
    err = f" ({op.error})" if op.error else ""
    return (f"#{op.index} p{op.process} {op.f} {op.key} {args} -> {op.outcome} {res}{rev}{err}"
            f" [{op.invoke_s:.3f}, {end}]")


def step(state: str | None, op: Op) -> tuple[bool, str | None]:
    """Apply `op` (linearized now) to the register state; (legal, new state)."""
    f, a, r = op.f, op.args, op.result
    if f == "put":
        return True, a["value"]
    if f == "get":
        return state == r.get("value"), state
    if f == "cas":
        if op.outcome == UNKNOWN:  # linearized = it took effect, so its compare held
            return state == a["expect"], a["new"]
        if r["succeeded"]:
            return state == a["expect"], a["new"]
        return state != a["expect"] and state == r.get("value"), state
    if f == "delete":
        if op.outcome == UNKNOWN:
            return True, None
        return (r["deleted"] > 0) == (state is not None), None
    raise ValueError(f"not a register op: {f}")


def register_ops(history: History, key: str) -> list[Op]:
    return [
        o for o in history.ops
        if o.key == key and o.f in REGISTER_FS
        and (o.outcome == OK or (o.outcome == UNKNOWN and o.f != "get"))
    ]


@dataclass(slots=True)
class KeyResult:
    key: str
    valid: bool | None
    ops: int
    explored: int
    example: list[str]


def check_key(key: str, ops: list[Op], *, deadline: float, initial: str | None = None) -> KeyResult:
    done = sorted(
        (LinOp(o.invoke_s, o.complete_s, o) for o in ops if o.outcome == OK and o.complete_s is not None),
        key=lambda x: (x.call, x.ret),
    )
    unk = sorted(
        (LinOp(o.invoke_s, math.inf, o) for o in ops if o.outcome == UNKNOWN),
        key=lambda x: x.call,
    )
    n = len(done)
    # Completed ops below `first` are all linearized, so the set of linearized ones is kept
    # relative to it: bit b of `rel` is done[first + b]. That keeps the masks window-sized.
    failed: dict[tuple[int, int, str | None, bool], list[int]] = {}
    # Frame: (rel, first unlinearized done index, unknown mask, state, candidates, next)
    Frame = list[Any]
    stack: list[Frame] = []
    explored = 0
    best: tuple[int, int, int, str | None] = (-1, 0, 0, initial)

    def candidates(rel: int, first: int, umask: int, after_unknown: bool) -> list[tuple[int, bool]]:
        out: list[tuple[int, bool]] = []
        minret = math.inf
        i = first
        while i < n:
            if not (rel >> (i - first)) & 1:
                c = done[i]
                if c.call >= minret:
                    break
                out.append((i, False))
                if c.ret < minret:
                    minret = c.ret
            i += 1
        for j, u in enumerate(unk):
            if u.call >= minret:
                break
            if not (umask >> j) & 1 and not (after_unknown and u.op.f != "cas"):
                out.append((j, True))
        return out

    def push(rel: int, first: int, umask: int, state: str | None, after_unknown: bool) -> bool:
        """False if this configuration is already known to fail."""
        nonlocal best
        tried = failed.setdefault((first, rel, state, after_unknown), [])
        for u in tried:
            if u & ~umask == 0:
                return False
        tried.append(umask)
        if first > best[0]:
            best = (first, rel, umask, state)
        stack.append([rel, first, umask, state, candidates(rel, first, umask, after_unknown), 0])
        return True

    push(0, 0, 0, initial, False)
    while stack:
        frame = stack[-1]
        rel, first, umask, state, cands, ci = frame
        if first >= n:
            return KeyResult(key, True, len(ops), explored, [])
        if ci >= len(cands):
            stack.pop()
            continue
        frame[5] = ci + 1
        explored += 1
        if explored % 2000 == 0 and time.monotonic() > deadline:
            return KeyResult(key, None, len(ops), explored, [])
        idx, is_unknown = cands[ci]
        lop = unk[idx] if is_unknown else done[idx]
        legal, new_state = step(state, lop.op)
        if not legal:
            continue
        if is_unknown:
            push(rel, first, umask | (1 << idx), new_state, True)
        else:
            nrel = rel | (1 << (idx - first))
            nfirst = first
            while nrel & 1:
                nrel >>= 1
                nfirst += 1
            push(nrel, nfirst, umask, new_state, False)
    return KeyResult(key, False, len(ops), explored, _example(done, unk, best))


def _example(done: list[LinOp], unk: list[LinOp], best: tuple[int, int, int, str | None]) -> list[str]:
    """The furthest the search got: the state there, the last ops it had linearized and the
    ops none of which could go next."""
    first, rel, umask, state = best
    lines = [f"value after the longest linearizable prefix: {state if state is not None else _ABSENT}"]
    before = done[max(0, first - 4):first]
    lines += ["  linearized: " + describe(d.op) for d in before]
    applied_unknown = [u for j, u in enumerate(unk) if (umask >> j) & 1][-2:]
    lines += ["  applied (unknown outcome): " + describe(u.op) for u in applied_unknown]
    minret = math.inf
    stuck = []
    for i in range(first, len(done)):
        if (rel >> (i - first)) & 1:
            continue
        if done[i].call >= minret:
            break
        stuck.append(done[i])
        minret = min(minret, done[i].ret)
    lines += ["  cannot go next: " + describe(d.op) for d in stuck[:6]]
    return lines


def check(history: History, *, keys: list[str], budget_s: float) -> CheckResult:
    result = CheckResult("linearizability", True)
    deadline = time.monotonic() + budget_s
    undecided = []
    for key in keys:
        ops = register_ops(history, key)
        r = check_key(key, ops, deadline=deadline)
        result.notes.append(f"{key}: {r.ops} ops, {r.explored} steps, valid={r.valid}")
        if r.valid is False:
            result.anomalies.append(Anomaly(
                "nonlinearizable", f"key {key}: no linearization of {r.ops} ops", r.example))
        elif r.valid is None:
            undecided.append(key)
    if result.anomalies:
        result.valid = False
    elif undecided:
        result.valid = None
        result.notes.append(f"time budget ran out on keys {undecided}")
    return result
