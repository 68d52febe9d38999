"""Errors of the load generator.

    LoadError                 base of everything bench/load raises on purpose
    +-- ServerStartError      a server we started exited early or never elected a leader
    +-- WorkerError           a worker process failed, or broke the JSON protocol
"""

from __future__ import annotations


class LoadError(Exception):
    """Base error of bench/load."""


class ServerStartError(LoadError):
    """A server started by the benchmark exited early or never became ready."""


class WorkerError(LoadError):
    """A load worker process failed or sent something that is not its protocol."""


def invariant(cond: bool, msg: str) -> None:
    """Always-on check for programmer errors (unlike `assert`, survives `python -O`)."""
    if not cond:
        raise AssertionError(msg)
