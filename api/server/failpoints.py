"""Arming the libraries' named failpoints from the environment (test and kvbench use only).

`KVSTORE_FAILPOINTS="wal.before_fsync=error(EIO)@5;apply.before_commit=sleep(200)"` arms
points by name. Each term is one of:

* `panic`        - the process dies at once (os._exit), like a crash at that instruction;
* `error(CODE)`  - the point raises OSError(errno.CODE), e.g. EIO or ENOSPC;
* `sleep(MS)`    - the point blocks for MS milliseconds (a slow disk);

and an optional `@N` arms it from the N-th time the point is reached (1 = at once). Without
the variable nothing is installed and every failpoint stays a no-op.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import kvstore.failpoint
import snapshot.failpoint
import wal.failpoint

ENV_VAR = "KVSTORE_FAILPOINTS"
_TERM = re.compile(r"^(panic|error\((E[A-Z]+)\)|sleep\((\d+)\))(?:@(\d+))?$")


class FailpointSpecError(ValueError):
    pass


@dataclass(slots=True)
class _Armed:
    action: Callable[[], None]
    from_hit: int
    hits: int = 0


def _action(term: str, code: str | None, sleep_ms: str | None) -> Callable[[], None]:
    if term == "panic":
        def panic() -> None:
            sys.stderr.write("failpoint: panic\n")
            sys.stderr.flush()
            os._exit(2)
        return panic
    if code is not None:
        number = getattr(errno, code, None)
        if number is None:
            raise FailpointSpecError(f"unknown errno {code}")

        def fail() -> None:
            raise OSError(number, f"failpoint: injected {code}")
        return fail
    delay_s = int(sleep_ms or 0) / 1000

    def pause() -> None:
        time.sleep(delay_s)
    return pause


def parse(spec: str) -> dict[str, _Armed]:
    armed: dict[str, _Armed] = {}
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        name, sep, term = item.partition("=")
        match = _TERM.match(term.strip())
        if not sep or not match:
            raise FailpointSpecError(f"bad failpoint {item!r}: expected name=panic|error(EIO)|sleep(MS)[@N]")
        action = _action(match.group(1), match.group(2), match.group(3))
        armed[name.strip()] = _Armed(action, int(match.group(4) or 1))
    return armed


def install_from_env(environ: Mapping[str, str]) -> list[str]:
    """Install the hook if the variable is set; returns the armed point names."""
    spec = environ.get(ENV_VAR, "")
    if not spec:
        return []
    armed = parse(spec)
    lock = threading.Lock()

    def hook(name: str) -> None:
        point = armed.get(name)
        if point is None:
            return
        with lock:
            point.hits += 1
            fire = point.hits >= point.from_hit
        if fire:
            point.action()

    for module in (wal.failpoint, snapshot.failpoint, kvstore.failpoint):
        module.set_hook(hook)
    return sorted(armed)
