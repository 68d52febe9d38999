"""The verdict: runs the checkers over a history and writes verdict.json / verdict.txt.

The overall verdict is FAIL if any checker found an anomaly, else UNKNOWN if any checker
could not decide (time budget, no final history), else PASS. The readable text gives each
anomaly with a minimal example: the few operations or events that show it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.jepsen import checker_linear, checker_misc, checker_watch
from bench.jepsen.history import CheckResult, History


@dataclass(slots=True)
class Verdict:
    verdict: str
    ops: int
    faults: int
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def anomalies(self) -> int:
        return sum(len(c.anomalies) for c in self.checks)

    @property
    def kinds(self) -> list[str]:
        return sorted({a.kind for c in self.checks for a in c.anomalies})

    def line(self) -> str:
        return f"verdict: {self.verdict} ops={self.ops} anomalies={self.anomalies} faults={self.faults}"

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "ops": self.ops, "faults": self.faults,
                "anomalies": self.anomalies, "kinds": self.kinds,
                "checks": [asdict(c) for c in self.checks]}

    def text(self) -> str:
        lines = [self.line(), ""]
        for c in self.checks:
            state = {True: "valid", False: "INVALID", None: "undecided"}[c.valid]
            lines.append(f"== {c.name}: {state}")
            lines += [f"   {n}" for n in c.notes]
            for a in c.anomalies:
                lines.append(f"-- anomaly {a.kind}: {a.message}")
                lines += [f"     {e}" for e in a.example]
            lines.append("")
        return "\n".join(lines)


def register_keys(history: History) -> list[str]:
    return sorted({o.key for o in history.ops if o.f in checker_linear.REGISTER_FS
                   and not o.args.get("lease_key")})


def judge(history: History, *, budget_s: float = 60.0) -> Verdict:
    checks = [
        checker_linear.check(history, keys=register_keys(history), budget_s=budget_s),
        checker_watch.check(history),
        checker_misc.check(history),
    ]
    if any(c.valid is False for c in checks):
        v = "FAIL"
    elif any(c.valid is None for c in checks):
        v = "UNKNOWN"
    else:
        v = "PASS"
    return Verdict(v, len(history.ops), len(history.faults), checks)


def write(verdict: Verdict, results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "verdict.json").write_text(json.dumps(verdict.to_json(), indent=2))
    (results / "verdict.txt").write_text(verdict.text())
