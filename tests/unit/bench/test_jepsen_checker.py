"""The jepsen checkers on hand-written histories, and a property: any history produced by
a sequential execution, with random overlapping timings around each linearization point,
is accepted."""

from __future__ import annotations

import random
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.jepsen import checker_linear, checker_misc, checker_watch, report
from bench.jepsen.history import FAIL, OK, UNKNOWN, History, Op, WatchEvent, WatchLog


def op(h: History, p: int, f: str, key: str, t0: float, t1: float | None, outcome: str = OK,
       rev: int = 0, **kw: object) -> Op:
    arg_names = {"put": ("value",), "lease_put": ("value", "lease_id"), "cas": ("expect", "new"),
                 "lease_revoke": ("lease_id",), "lease_ttl": ("lease_id",)}.get(f, ())
    args = {k: v for k, v in kw.items() if k in arg_names}
    res = {k: v for k, v in kw.items() if k not in args}
    o = h.invoke(p, f, key, args, t0)
    o.complete_s, o.outcome, o.result, o.revision = t1, outcome, res, rev
    return o


def linear(h: History, key: str = "k") -> bool | None:
    r = checker_linear.check_key(key, checker_linear.register_ops(h, key),
                                 deadline=time.monotonic() + 10)
    return r.valid


def test_linearizable_overlapping() -> None:
    h = History()
    op(h, 1, "put", "k", 0, 2, value="a")
    op(h, 2, "get", "k", 1, 3, value="a")  # overlaps the put: may see it
    op(h, 3, "get", "k", 0.5, 1.5, value=None)  # or not
    op(h, 1, "cas", "k", 4, 5, expect="a", new="b", succeeded=True)
    op(h, 2, "cas", "k", 4.5, 6, expect="a", new="c", succeeded=False, value="b")
    op(h, 3, "delete", "k", 7, 8, deleted=1)
    op(h, 1, "get", "k", 9, 10, value=None)
    assert linear(h) is True


def test_stale_read() -> None:
    h = History()
    op(h, 1, "put", "k", 0, 1, value="a")
    op(h, 1, "put", "k", 2, 3, value="b")
    op(h, 2, "get", "k", 4, 5, value="a")  # b was acknowledged before this read began
    assert linear(h) is False
    res = checker_linear.check(h, keys=["k"], budget_s=5)
    assert res.anomalies[0].kind == "nonlinearizable"
    assert any("cannot go next" in line and "get" in line for line in res.anomalies[0].example)


def test_lost_write_is_nonlinearizable_and_not_durable() -> None:
    h = History()
    op(h, 1, "put", "k", 0, 1, rev=2, value="a")
    op(h, 1, "put", "k", 2, 3, rev=3, value="b")  # acknowledged, then gone
    op(h, 2, "get", "k", 4, 5, value="a", mod_revision=2)
    h.full_events = [(2, "k", "PUT", "a")]
    h.final_revision = 2
    assert linear(h) is False
    kinds = {a.kind for a in checker_misc.check(h).anomalies}
    assert kinds == {"lost-write"}


def test_indeterminate_write_that_happened() -> None:
    h = History()
    op(h, 1, "put", "k", 0, 1, value="a")
    op(h, 2, "put", "k", 2, None, outcome=UNKNOWN, value="b")  # timed out
    op(h, 3, "get", "k", 10, 11, value="b")  # ... but it took effect, long after
    op(h, 3, "get", "k", 12, 13, value="b")
    assert linear(h) is True


def test_indeterminate_write_that_did_not_happen() -> None:
    h = History()
    op(h, 1, "put", "k", 0, 1, value="a")
    op(h, 2, "put", "k", 2, None, outcome=UNKNOWN, value="b")
    op(h, 3, "get", "k", 10, 11, value="a")
    op(h, 3, "get", "k", 12, 13, value="a")
    assert linear(h) is True


def test_indeterminate_write_cannot_happen_twice_or_before_invocation() -> None:
    h = History()
    op(h, 1, "put", "k", 0, 1, value="a")
    op(h, 3, "get", "k", 1.5, 1.8, value="b")  # before b was even invoked
    op(h, 2, "put", "k", 2, None, outcome=UNKNOWN, value="b")
    assert linear(h) is False
    h = History()
    op(h, 2, "put", "k", 0, None, outcome=UNKNOWN, value="b")
    op(h, 1, "put", "k", 1, 2, value="a")
    op(h, 3, "get", "k", 3, 4, value="b")
    op(h, 3, "get", "k", 5, 6, value="a")  # b again would need a second application
    assert linear(h) is False


def test_failed_ops_have_no_effect() -> None:
    h = History()
    op(h, 1, "put", "k", 0, 1, value="a")
    op(h, 2, "put", "k", 2, 3, outcome=FAIL, value="b")
    op(h, 3, "get", "k", 4, 5, value="b")
    assert linear(h) is False


def test_delete_count_must_match() -> None:
    h = History()
    op(h, 1, "delete", "k", 0, 1, deleted=1)  # nothing there to delete
    assert linear(h) is False


def test_many_unknown_writes_stay_cheap() -> None:
    h = History()
    for i in range(40):
        op(h, 100 + i, "put", "k", i, None, outcome=UNKNOWN, value=f"u{i}")
        op(h, 1, "put", "k", i + 0.1, i + 0.2, value=f"v{i}")
        op(h, 2, "get", "k", i + 0.3, i + 0.4, value=f"v{i}")
    op(h, 2, "get", "k", 50, 51, value="u3")  # an old unknown write may land at any time
    assert linear(h) is True
    op(h, 2, "get", "k", 52, 53, value="v5")  # but nothing brings v5 back: fails, quickly
    t0 = time.monotonic()
    assert linear(h) is False
    assert time.monotonic() - t0 < 5


def watch_history(events: list[tuple[int, str, str, str]]) -> History:
    h = History()
    h.full_events = [(2, "k", "PUT", "a"), (3, "j", "PUT", "b"), (4, "k", "DELETE", ""),
                     (5, "k", "PUT", "c")]
    h.final_revision = 5
    log = WatchLog(0, starts=[(0.0, 1)])
    log.events = [WatchEvent(r, k, t, v, 1.0) for r, k, t, v in events]
    h.watches.append(log)
    return h


def test_watch_complete_stream_passes() -> None:
    h = watch_history([(2, "k", "PUT", "a"), (3, "j", "PUT", "b"), (4, "k", "DELETE", ""),
                       (5, "k", "PUT", "c")])
    assert checker_watch.check(h).valid is True


def test_watch_gap() -> None:
    h = watch_history([(2, "k", "PUT", "a"), (4, "k", "DELETE", ""), (5, "k", "PUT", "c")])
    res = checker_watch.check(h)
    assert [a.kind for a in res.anomalies] == ["watch-gap"]
    assert "rev=3" in res.anomalies[0].example[0]


def test_watch_duplicate_and_mismatch() -> None:
    h = watch_history([(2, "k", "PUT", "a"), (3, "j", "PUT", "b"), (3, "j", "PUT", "b"),
                       (4, "k", "DELETE", ""), (5, "k", "PUT", "zzz")])
    kinds = sorted(a.kind for a in checker_watch.check(h).anomalies)
    assert kinds == ["watch-duplicate", "watch-mismatch"]


def test_revision_regress_and_lease_violation() -> None:
    h = History()
    op(h, 1, "put", "k", 0, 1, rev=5, value="a")
    op(h, 1, "get", "k", 2, 3, rev=4, value="a", mod_revision=5)
    op(h, 2, "lease_put", "l", 0, 1, rev=6, value="x", lease_id=7)
    op(h, 2, "lease_revoke", "", 2, 3, rev=7, lease_id=7)
    op(h, 3, "get", "l", 4, 5, rev=7, value="x", mod_revision=6)
    h.full_events = [(5, "k", "PUT", "a"), (6, "l", "PUT", "x"), (7, "l", "DELETE", "")]
    h.final_revision = 7
    kinds = sorted(a.kind for a in checker_misc.check(h).anomalies)
    assert kinds == ["lease-violation", "revision-regress"]


def test_verdict_line() -> None:
    h = History()
    op(h, 1, "put", "k", 0, 1, rev=2, value="a")
    op(h, 1, "get", "k", 2, 3, rev=2, value="a", mod_revision=2)
    h.full_events = [(2, "k", "PUT", "a")]
    h.final_revision = 2
    v = report.judge(h, budget_s=5)
    assert v.line() == "verdict: PASS ops=2 anomalies=0 faults=0"


# ---- property: sequential executions with random timings are linearizable ----------------


def sequential_history(seed: int, n_ops: int, n_proc: int) -> History:
    """Run a register sequentially; give each op a random interval around its (strictly
    increasing) linearization point, keeping each process's ops non-overlapping; make some
    writes indeterminate (their effect stays, or is dropped with the op left pending)."""
    rnd = random.Random(seed)
    h = History()
    state: str | None = None
    free_at = [0.0] * n_proc
    t = 0.0
    for i in range(n_ops):
        t += rnd.uniform(0.01, 1.0)
        choices = [p for p in range(n_proc) if free_at[p] < t]
        if not choices:
            continue
        p = rnd.choice(choices)
        call = rnd.uniform(free_at[p], t)
        ret = t + rnd.expovariate(1.0)
        f = rnd.choice(["put", "get", "cas", "delete"])
        unknown = f != "get" and rnd.random() < 0.15
        applied = not unknown or rnd.random() < 0.5
        kw: dict[str, object] = {}
        if f == "put":
            kw = {"value": f"v{i}"}
            if applied:
                state = f"v{i}"
        elif f == "get":
            kw = {"value": state}
        elif f == "cas":
            expect = state if rnd.random() < 0.5 else rnd.choice([None, f"v{max(i - 3, 0)}"])
            ok = state == expect
            kw = {"expect": expect, "new": f"v{i}", "succeeded": ok}
            if not ok:
                kw["value"] = state
            if ok and applied:
                state = f"v{i}"
        else:
            kw = {"deleted": 1 if state is not None else 0}
            if applied:
                state = None
        if unknown:
            op(h, p, f, "k", call, None, outcome=UNKNOWN, **kw)
            free_at[p] = 10**9  # a process with a pending op does nothing more
        else:
            op(h, p, f, "k", call, ret, **kw)
            free_at[p] = ret
        if all(x >= 10**9 for x in free_at):
            break
    h.ops.sort(key=lambda o: o.invoke_s)
    return h


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), n_ops=st.integers(1, 60), n_proc=st.integers(1, 6))
def test_sequential_executions_are_accepted(seed: int, n_ops: int, n_proc: int) -> None:
    assert linear(sequential_history(seed, n_ops, n_proc)) is True
