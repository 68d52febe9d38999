"""Golden-file tests in the datadriven style (after cockroachdb/datadriven, used by etcd-io/raft).

A file is a sequence of test cases:

    command arg1 key=value key=(a,b)
    optional input lines
    ----
    expected output, ending at the first blank line

When the expected output itself contains blank lines, the case uses a double separator:

    command
    ----
    ----
    output with

    blank lines
    ----
    ----

Lines starting with `#` outside a case are comments. `run_file(path, handler)` calls
`handler(case) -> str` for each case and compares; with `--rewrite` (pytest option) or
DATADRIVEN_REWRITE=1 it rewrites the file with the actual outputs instead.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CmdArg:
    key: str
    values: list[str]

    def int(self) -> int:
        return int(self.values[0])


@dataclass
class Case:
    path: str
    line: int
    command: str
    args: list[CmdArg]
    input: str
    expected: str
    directive: str = ""
    _out_start: int = 0
    _out_end: int = 0
    extras: dict[str, object] = field(default_factory=dict)

    def arg(self, key: str) -> CmdArg | None:
        for a in self.args:
            if a.key == key:
                return a
        return None

    def has(self, key: str) -> bool:
        return self.arg(key) is not None

    def int_arg(self, key: str, default: int | None = None) -> int:
        a = self.arg(key)
        if a is None:
            if default is None:
                raise ValueError(f"{self.path}:{self.line}: missing argument {key}")
            return default
        return a.int()

    def positional(self) -> list[str]:
        return [a.key for a in self.args if not a.values]


def _parse_args(text: str) -> list[CmdArg]:
    args: list[CmdArg] = []
    for token in shlex.split(text):
        if "=" in token:
            key, value = token.split("=", 1)
            if value.startswith("(") and value.endswith(")"):
                vals = [v.strip() for v in value[1:-1].split(",") if v.strip()]
            else:
                vals = [value]
            args.append(CmdArg(key, vals))
        else:
            args.append(CmdArg(token, []))
    return args


def parse(path: str | Path) -> tuple[list[str], list[Case]]:
    lines = Path(path).read_text().split("\n")
    cases: list[Case] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            i += 1
            continue
        start = i
        directive = line
        parts = line.split(None, 1)
        command, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        i += 1
        input_lines: list[str] = []
        while i < len(lines) and lines[i] != "----":
            input_lines.append(lines[i])
            i += 1
        if i >= len(lines):
            raise ValueError(f"{path}:{start + 1}: missing ---- separator")
        i += 1
        out_start = i
        expected: list[str] = []
        if i < len(lines) and lines[i] == "----":
            i += 1
            while i < len(lines) and not (
                lines[i] == "----" and i + 1 < len(lines) and lines[i + 1] == "----"
            ):
                expected.append(lines[i])
                i += 1
            i += 2
        else:
            while i < len(lines) and lines[i].strip():
                expected.append(lines[i])
                i += 1
        cases.append(
            Case(
                path=str(path),
                line=start + 1,
                command=command,
                args=_parse_args(rest),
                input="\n".join(input_lines),
                expected="\n".join(expected),
                directive=directive,
                _out_start=out_start,
                _out_end=i,
            )
        )
    return lines, cases


def _format_case(case: Case, output: str) -> str:
    head = case.directive + ("\n" + case.input if case.input else "")
    output = output.rstrip("\n")
    if "\n\n" in output or output.startswith("\n"):
        return f"{head}\n----\n----\n{output}\n----\n----"
    return f"{head}\n----\n{output}"


def rewrite_enabled() -> bool:
    return os.environ.get("DATADRIVEN_REWRITE") == "1"


def run_file(path: str | Path, handler: Callable[[Case], str]) -> None:
    """Run every case in `path`; fail on the first mismatch (or rewrite the file)."""
    _, cases = parse(path)
    rewrite = rewrite_enabled()
    blocks: list[str] = []
    for case in cases:
        actual = handler(case).rstrip("\n")
        if rewrite:
            blocks.append(_format_case(case, actual))
        elif actual != case.expected.rstrip("\n"):
            raise AssertionError(
                f"{case.path}:{case.line}: {case.directive}\n"
                f"--- expected\n{case.expected}\n--- actual\n{actual}\n"
            )
    if rewrite:
        header = _leading_comments(path)
        Path(path).write_text(header + "\n\n".join(blocks) + "\n")


def _leading_comments(path: str | Path) -> str:
    out = []
    for line in Path(path).read_text().split("\n"):
        if line.startswith("#") or not line.strip():
            out.append(line)
        else:
            break
    text = "\n".join(out).strip("\n")
    return text + "\n\n" if text else ""
