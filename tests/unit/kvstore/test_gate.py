"""Gate: exclusive holders wait for shared users to leave and hold new ones back."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from kvstore.gate import Gate, fsync_dir


def _spin_until(cond: object) -> None:
    for _ in range(1_000_000):
        if cond():  # type: ignore[operator]
            return
        os.sched_yield()
    raise AssertionError("condition never became true")


def test_exclusive_waits_for_shared_and_blocks_new_shared() -> None:
    g = Gate()
    g.enter()
    order: list[str] = []

    def exclusive() -> None:
        g.lock()
        order.append("exclusive")
        g.unlock()

    def late_reader() -> None:
        g.enter()
        order.append("reader")
        g.exit()

    t = threading.Thread(target=exclusive)
    t.start()
    _spin_until(lambda: g._exclusive)  # the exclusive side is now waiting for us
    r = threading.Thread(target=late_reader)
    r.start()
    assert order == []
    g.exit()  # last shared user leaves: the exclusive side runs, then the late reader
    t.join()
    r.join()
    assert order == ["exclusive", "reader"]


def test_shared_users_do_not_block_each_other() -> None:
    g = Gate()
    g.enter()
    done = threading.Event()

    def reader() -> None:
        g.enter()
        done.set()
        g.exit()

    t = threading.Thread(target=reader)
    t.start()
    t.join()
    assert done.is_set()
    g.exit()
    g.lock()
    g.unlock()


def test_fsync_dir(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    fsync_dir(tmp_path)
