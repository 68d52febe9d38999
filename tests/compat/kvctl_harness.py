"""Run the etcdctl session (tests/compat/etcdctl_session.py) with kvctl instead of etcdctl.

`run_kvctl_session` mirrors `run_session` step for step: the same arguments (ETCDCTL_API=3,
`--endpoints` and `--dial-timeout` prepended), the same stdin, lease bookkeeping and
normalisation. Most steps run kvctl in-process through `api.cli.main.main(argv)` with
captured stdin/stdout/stderr, which is equivalent to a process because main reads the
streams and the environment only when called; steps that must be stopped by a timeout
(watch, streaming keep-alive, lock, elect) or that run a child command run kvctl as a real
subprocess, as etcdctl is.

Member IDs of members added during a session are random in etcd, so they are tracked like
lease IDs (`{added1}` in arguments, `<ADDED1>` after normalisation).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.compat.etcdctl_session import Ids, Outcome, Step, _protobuf_hex, _subst, normalise

REPO = Path(__file__).resolve().parents[2]
RawResult = tuple[bytes, bytes, str]  # stdout, stderr, exit code ("timeout" if stopped)
Runner = Callable[[list[str], bytes | None, float, Path], RawResult]


@dataclass
class Tracked:
    added_members: list[int] = field(default_factory=list)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


@contextlib.contextmanager
def _swapped_environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_in_process(argv: list[str], stdin: bytes | None, timeout_s: float, cwd: Path) -> RawResult:
    from api.cli.main import main

    out, err = io.BytesIO(), io.BytesIO()
    streams = (
        io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        io.TextIOWrapper(err, encoding="utf-8", write_through=True),
    )
    saved = (sys.stdin, sys.stdout, sys.stderr)
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        with _swapped_environ(_clean_env()):
            code = main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
    return out.getvalue(), err.getvalue(), str(code)


def kvctl_command() -> list[str]:
    return [sys.executable, "-m", "api.cli.main"]


def run_subprocess(argv: list[str], stdin: bytes | None, timeout_s: float, cwd: Path,
                   *, binary: Sequence[str] | None = None) -> RawResult:
    env = _clean_env()
    env["PYTHONPATH"] = str(REPO)
    cmd = [*(binary or kvctl_command()), *argv]
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, env=env, timeout=timeout_s, cwd=cwd)
        return proc.stdout, proc.stderr, str(proc.returncode)
    except subprocess.TimeoutExpired as exc:
        return exc.stdout or b"", exc.stderr or b"", "timeout"


def etcdctl_runner() -> Runner:
    etcdctl = shutil.which("etcdctl")
    assert etcdctl is not None

    def run(argv: list[str], stdin: bytes | None, timeout_s: float, cwd: Path) -> RawResult:
        return run_subprocess(argv, stdin, timeout_s, cwd, binary=[etcdctl])

    return run


def needs_process(args: Sequence[str]) -> bool:
    """Steps a test must stop by timeout, or that run a child command, need a real process."""
    streaming_keepalive = "keep-alive" in args and "--once" not in args
    return bool({"watch", "lock", "elect", "version"} & set(args)) or streaming_keepalive or "--" in args[1:]


def kvctl_runner() -> Runner:
    def run(argv: list[str], stdin: bytes | None, timeout_s: float, cwd: Path) -> RawResult:
        if needs_process(argv):
            return run_subprocess(argv, stdin, timeout_s, cwd)
        return run_in_process(argv, stdin, timeout_s, cwd)

    return run


_ADDED = re.compile(rb"Member +([0-9a-f]+) added to cluster")
_ADDED_JSON = re.compile(rb'"member":\{"ID":(\d+)')


def _subst_all(text: str, ids: Ids, tracked: Tracked, workdir: Path) -> str:
    out = _subst(text, ids, workdir)
    if ids.leases:
        out = out.replace("{last_lease}", f"{ids.leases[-1]:x}")
    for i, member_id in enumerate(tracked.added_members, start=1):
        out = out.replace(f"{{added{i}}}", f"{member_id:x}")
    return out


_DURATION = re.compile(r"\b[0-9.]+(µs|ms|s)\b")
_RECIPE_KEY = re.compile(r"\b(demo-lock|demo-elect)/[0-9a-f]+")


def _sorted_members(text: str) -> str:
    """etcd lists members by ID and an added member's ID is random: order is not comparable."""
    m = re.search(r'"members":\[(.*)\]\}', text)
    if m is not None:
        items = sorted(re.split(r'(?<=\}),(?=\{"ID")', m.group(1)))
        return text[:m.start(1)] + ",".join(items) + text[m.end(1):]
    text = re.sub(r'(ETCD_INITIAL_CLUSTER=")([^"]*)"',
                  lambda m: m.group(1) + ",".join(sorted(m.group(2).split(","))) + '"', text)
    lines = text.split("\n")
    if all(", " in ln for ln in lines if ln):
        return "\n".join(sorted(ln for ln in lines if ln)) + "\n"
    return text


def _normalise_extra(text: str, tracked: Tracked, args: Sequence[str]) -> str:
    """What run_session's normaliser does not cover for the extra kvctl steps."""
    for i, member_id in enumerate(tracked.added_members, start=1):
        text = re.sub(rf"\b{member_id}\b", f"<ADDED{i}>", text)
        text = re.sub(rf"\b0*{member_id:x}\b", f"<ADDED{i}_HEX>", text)
    text = _RECIPE_KEY.sub(r"\1/<LEASE>", text)
    if "timetolive" in args:
        text = re.sub(r'"TTL" : \d+', '"TTL" : <R>', text)
    if "health" in args:
        text = _DURATION.sub("<TOOK>", text)
    if "hashkv" in args:
        text = re.sub(r"(<EP> \| )\d+", r"\1<HASH>", text)
    if "member" in args:
        # "Member %16x ... cluster %16x": the padding depends on each server's random IDs.
        text = re.sub(r" +(<(?:ADDED\d+|MEMBER|CLUSTER)_HEX>)", r" \1", text)
        text = _sorted_members(text)
    return text


def run_steps(run: Runner, ids: Ids, workdir: Path, steps: Sequence[Step]) -> list[Outcome]:
    """`run_session`'s loop with a pluggable runner (etcdctl or kvctl)."""
    tracked = Tracked()
    outcomes: list[Outcome] = []
    for step in steps:
        args = [_subst_all(a, ids, tracked, workdir) for a in step.args]
        stdin = step.stdin.encode() if isinstance(step.stdin, str) else step.stdin
        if stdin is not None:
            stdin = _subst_all(stdin.decode(errors="surrogateescape"), ids, tracked, workdir).encode(
                errors="surrogateescape")
        argv = [f"--endpoints={ids.endpoint}", "--dial-timeout=3s", *args]
        stdout, stderr, exit_code = run(argv, stdin, step.timeout_s, workdir)
        for m in re.finditer(rb"lease ([0-9a-f]+) granted", stdout):
            ids.leases.append(int(m.group(1), 16))
        if "grant" in args:
            for m in re.finditer(rb'"ID"( : |:)(\d+)', stdout):
                ids.leases.append(int(m.group(2)))
        for m in _ADDED.finditer(stdout):
            tracked.added_members.append(int(m.group(1), 16))
        for m in _ADDED_JSON.finditer(stdout):
            tracked.added_members.append(int(m.group(1)))
        label = step.label or " ".join(a if len(a) < 60 else a[:57] + "..." for a in step.args)
        if step.only_saved_line:
            saved = [ln for ln in stdout.decode(errors="replace").splitlines()
                     if ln.startswith("Snapshot saved at")]
            outcomes.append(Outcome(label, "\n".join(saved).replace(str(workdir), "<WORK>"), "", exit_code))
            continue
        if step.protobuf is not None and exit_code == "0":
            out_text = _protobuf_hex(stdout, step.protobuf)
        else:
            out_text = stdout.decode(errors="replace")
        norm_out = _normalise_extra(normalise(out_text, ids, step=step), tracked, args)
        norm_err = _normalise_extra(normalise(stderr.decode(errors="replace"), ids, step=step), tracked, args)
        outcomes.append(Outcome(label, norm_out.replace(str(workdir), "<WORK>"),
                                norm_err.replace(str(workdir), "<WORK>"), exit_code))
    return outcomes


def diff_outcomes(want: list[Outcome], got: list[Outcome], *, want_name: str, got_name: str) -> list[str]:
    diffs = []
    for w, g in zip(want, got, strict=True):
        if w == g:
            continue
        lines = [f"$ {w.label}"]
        for name in ("stdout", "stderr", "exit"):
            if getattr(w, name) != getattr(g, name):
                lines.append(f"  {name}:\n    {want_name}: {getattr(w, name)!r}\n    {got_name}: {getattr(g, name)!r}")
        diffs.append("\n".join(lines))
    return diffs
