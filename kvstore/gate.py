"""Process-local guards around one LMDB environment, and a directory fsync.

LMDB's `mdb_env_set_mapsize` (map growth) and closing the environment (defragment's swap)
are only safe while no transaction of this process is open: LMDB does not check, and a
reader racing a resize reads unmapped memory. `Gate` enforces it: every LMDB use enters it
shared; resize, swap and close take it exclusively (waiting for the shared users to leave
and holding new ones back).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["Gate", "fsync_dir"]


class Gate:
    """Shared/exclusive gate: LMDB resize and env swaps need no txn open in this process.

    The shared side is on every read, so it is one uncontended lock round trip; the
    condition (built on the same lock) is only used to wait.
    """

    __slots__ = ("_active", "_cv", "_exclusive", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._active = 0
        self._exclusive = False

    def enter(self) -> None:
        self._lock.acquire()
        try:
            while self._exclusive:
                self._cv.wait()
            self._active += 1
        finally:
            self._lock.release()

    def exit(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._exclusive:
                self._cv.notify_all()

    def lock(self) -> None:
        with self._cv:
            while self._exclusive:
                self._cv.wait()
            self._exclusive = True
            while self._active:
                self._cv.wait()

    def unlock(self) -> None:
        with self._cv:
            self._exclusive = False
            self._cv.notify_all()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
