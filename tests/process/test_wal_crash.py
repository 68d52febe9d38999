"""A real child process appends and syncs; the parent SIGKILLs it at random moments.

The child prints each index only after `sync()` returned (and a snapshot marker only
after `save_snapshot_marker` returned), so every printed index is a promise. After each
kill the parent opens the WAL (from the newest valid snapshot marker, as a server does)
and checks that every promised entry is there with its exact content and that the log is
a contiguous prefix of what the child wrote. Small segments make cuts and releases happen
during the run, so kills also land inside them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from wal import WAL, SnapshotMarker, WalEntry, valid_snapshot_markers
from wal.segment import list_segments

ROOT = Path(__file__).resolve().parents[2]
SEGMENT_BYTES = 16 * 1024
CYCLES = 60

CHILD = r"""
import os, random, sys
from wal import WAL, HardState, SnapshotMarker, WalEntry, valid_snapshot_markers

d, seed, seg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def entry(i):
    return WalEntry(i, 1 + i // 1000, i % 2, (b"%d;" % i) * (1 + i % 13))

if os.path.isdir(d):
    markers = valid_snapshot_markers(d)
    snap = max(markers, key=lambda m: m.index) if markers else None
    w = WAL.open(d, snapshot=snap, segment_bytes_max=seg, wals_max=3)
else:
    w = WAL.create(d, b"crash-test", segment_bytes_max=seg, wals_max=3)
last = w.last_index
rng = random.Random(seed)
print("ready", last, flush=True)
while True:
    n = rng.randint(1, 40)
    batch = [entry(i) for i in range(last + 1, last + n + 1)]
    last += n
    w.save(HardState(1, 1, last), batch, sync=True)
    print("synced", last, flush=True)
    if rng.random() < 0.05:
        w.save_snapshot_marker(SnapshotMarker(last, 1 + last // 1000))
        print("marker", last, flush=True)
        w.release_to(last)
"""


def expected_entry(i: int) -> WalEntry:
    return WalEntry(i, 1 + i // 1000, i % 2, (b"%d;" % i) * (1 + i % 13))


def run_cycle(d: str, seed: int, kill_after_s: float) -> tuple[int, int | None]:
    """Run the child until killed; return (highest synced index it reported, highest marker)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, d, str(seed), str(SEGMENT_BYTES)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while not lines and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    time.sleep(kill_after_s)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    reader.join(timeout=10)
    err = proc.stderr.read() if proc.stderr else ""
    assert lines and lines[0].startswith("ready"), f"child did not start: {err}"
    synced = int(lines[0].split()[1])
    marker = None
    for ln in lines[1:]:
        kind, _, value = ln.partition(" ")
        if not ln.endswith("\n"):
            break  # a line cut by the kill is not a complete promise
        if kind == "synced":
            synced = int(value)
        elif kind == "marker":
            marker = int(value)
    return synced, marker


@pytest.mark.slow
def test_sigkill_during_appends_never_loses_a_synced_record(tmp_path: Path) -> None:
    d = str(tmp_path / "member" / "wal")
    rng = random.Random(int(os.environ.get("WAL_CRASH_SEED", "20261122")))
    promised = 0
    max_marker = 0
    started = time.monotonic()
    for cycle in range(CYCLES):
        synced, marker = run_cycle(d, rng.randrange(2**31), rng.uniform(0.0, 0.06))
        assert synced >= promised, "child restarted below a promised index"
        promised = synced
        if marker is not None:
            max_marker = max(max_marker, marker)
        markers = valid_snapshot_markers(d)
        snap = max(markers, key=lambda m: m.index) if markers else None
        # every reported marker is durable and usable
        assert (snap.index if snap else 0) >= max_marker, f"cycle {cycle}: marker lost"
        w = WAL.open(d, snapshot=snap, segment_bytes_max=SEGMENT_BYTES, wals_max=3)
        got = w.read_all().entries
        w.close()
        base = snap.index if snap else 0
        assert [e.index for e in got] == list(range(base + 1, base + 1 + len(got))), (
            f"cycle {cycle}: not a contiguous log after the snapshot"
        )
        assert got == [expected_entry(i) for i in range(base + 1, base + 1 + len(got))]
        last = base + len(got)
        assert last >= promised, f"cycle {cycle}: synced index {promised} lost (log ends at {last})"
        promised = last  # unsynced-but-written entries that survived are now on disk
        assert isinstance(snap, SnapshotMarker | None)
    segs = list_segments(d)
    print(f"promised={promised} max_marker={max_marker} segments={segs[0].seq}..{segs[-1].seq}")
    assert promised > 0 and max_marker > 0, "the run never reached a snapshot marker"
    assert segs[-1].seq >= 5, "the run never cut segments"
    assert len(segs) < segs[-1].seq + 1, "release_to never deleted a segment"
    assert time.monotonic() - started < 120, "too slow for the suite budget"
