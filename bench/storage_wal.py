"""WAL micro-benchmark: records/s and fsyncs/s for group commits of 1..1000 entries.

Each case appends batches of `batch` entries (`payload_bytes` of data each) to a fresh WAL
in a real directory and syncs after every batch, for `seconds_per_case` seconds: exactly
the node's write path (save entries + hard state, one pwrite, one fdatasync). Building the
WalEntry objects is included in the time, because the node pays for it too. Segments are
the production 64 MiB, so cuts (and their extra fsyncs) are included when they happen.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence

from wal import WAL, HardState, WalEntry


def bench_wal(
    tmpdir: str,
    *,
    batch_sizes: Sequence[int] = (1, 10, 100, 1000),
    payload_bytes: int = 256,
    seconds_per_case: float = 2.0,
) -> list[dict[str, float | int]]:
    """Measure each batch size; returns one row (a dict of numbers) per case."""
    rows: list[dict[str, float | int]] = []
    payload = os.urandom(payload_bytes)
    for batch in batch_sizes:
        wal_dir = os.path.join(tmpdir, f"wal-batch-{batch}")
        shutil.rmtree(wal_dir, ignore_errors=True)
        w = WAL.create(wal_dir, b"bench")
        latencies: list[float] = []
        index = 0
        syncs = 0
        start = time.perf_counter()
        deadline = start + seconds_per_case
        now = start
        while now < deadline:
            entries = [WalEntry(i, 1, 0, payload) for i in range(index + 1, index + batch + 1)]
            index += batch
            w.save(HardState(1, 1, index), entries)
            t0 = time.perf_counter()
            w.sync()
            now = time.perf_counter()
            latencies.append(now - t0)
            syncs += 1
        elapsed = now - start
        segments = len(w.segments)
        w.close()
        shutil.rmtree(wal_dir, ignore_errors=True)
        latencies.sort()
        rows.append(
            {
                "batch": batch,
                "records": index,
                "seconds": elapsed,
                "records_per_s": index / elapsed,
                "fsyncs_per_s": syncs / elapsed,
                "mib_per_s": index * payload_bytes / elapsed / (1024 * 1024),
                "sync_p50_ms": latencies[len(latencies) // 2] * 1000,
                "sync_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
                "segments": segments,
            }
        )
    return rows


def format_wal_results(rows: Sequence[dict[str, float | int]]) -> str:
    """A fixed-width table of bench_wal() rows."""
    head = (
        f"{'batch':>6} {'records':>10} {'records/s':>12} {'fsyncs/s':>10} "
        f"{'MiB/s':>8} {'sync p50 ms':>12} {'sync p99 ms':>12} {'segments':>9}"
    )
    lines = ["WAL append + fdatasync (payload per entry as configured)", head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{int(r['batch']):>6} {int(r['records']):>10} {r['records_per_s']:>12,.0f} "
            f"{r['fsyncs_per_s']:>10,.0f} {r['mib_per_s']:>8.1f} {r['sync_p50_ms']:>12.3f} "
            f"{r['sync_p99_ms']:>12.3f} {int(r['segments']):>9}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kvbench-wal-") as d:
        print(format_wal_results(bench_wal(d)))
