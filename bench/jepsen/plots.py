"""PNG plots of a history (matplotlib, Agg backend: no display needed).

latency.png: one point per operation (x = invocation time, y = latency, log scale),
coloured by operation type, marked by outcome (unknown ops drawn at the top, at the
timeout); throughput.png: completed ok / fail operations per second, and unknown ones.
Both shade every fault window, one colour per fault kind.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.jepsen.history import FAIL, OK, UNKNOWN, History  # noqa: E402

FAULT_COLOURS = {"kill": "tab:red", "pause": "tab:orange", "partition": "tab:purple",
                 "delay": "tab:olive", "membership": "tab:cyan", "failpoints": "tab:brown"}


def _shade(ax: plt.Axes, history: History, end_s: float) -> None:
    labelled: set[str] = set()
    for f in history.faults:
        colour = FAULT_COLOURS.get(f.kind, "grey")
        label = f.kind if f.kind not in labelled else None
        labelled.add(f.kind)
        ax.axvspan(f.start_s, f.end_s if f.end_s is not None else end_s, color=colour,
                   alpha=0.15, label=label)


def latency(history: History, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(12, 5))
    end = max((o.complete_s or o.invoke_s for o in history.ops), default=1.0)
    _shade(ax, history, end)
    top = max((o.complete_s - o.invoke_s for o in history.ops if o.complete_s), default=1.0)
    for f in sorted({o.f for o in history.ops}):
        for outcome, marker in ((OK, "."), (FAIL, "x"), (UNKNOWN, "^")):
            pts = [(o.invoke_s, (o.complete_s - o.invoke_s) if o.complete_s else top * 1.5)
                   for o in history.ops if o.f == f and o.outcome == outcome]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.scatter(xs, [max(y, 1e-4) * 1000 for y in ys], s=4 if outcome == OK else 14,
                           marker=marker, label=f"{f} {outcome}", alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("latency by operation (x fail, ^ unknown) with fault windows")
    ax.legend(fontsize=6, ncol=4, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def throughput(history: History, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(12, 4))
    end = max((o.complete_s or o.invoke_s for o in history.ops), default=1.0)
    _shade(ax, history, end)
    for outcome in (OK, FAIL, UNKNOWN):
        t_of = (lambda o: o.complete_s) if outcome != UNKNOWN else (lambda o: o.invoke_s)
        counts = Counter(int(t_of(o)) for o in history.ops if o.outcome == outcome)
        xs = list(range(int(end) + 1))
        ax.plot(xs, [counts.get(x, 0) for x in xs], label=outcome, drawstyle="steps-post")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("operations / s")
    ax.set_title("throughput (unknown: at invocation) with fault windows")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(history: History, results: Path) -> None:
    latency(history, results / "latency.png")
    throughput(history, results / "throughput.png")
