"""`kvbench storage`: WAL and MVCC micro-benchmarks on a real temp dir (real fsync, real LMDB).

Reproduce: `.venv/bin/kvbench storage` (all), `--only wal` or `--only mvcc`, `--keys N` to
size the 1M-key memory/open-time case down for a quick look. The temp dir is created next to
the current directory's filesystem unless --dir is given, so fsync hits a real disk.
"""

from __future__ import annotations

import argparse
import tempfile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", choices=["wal", "mvcc"], help="run one group")
    parser.add_argument("--dir", default=None, help="parent dir for the temp data (default: system temp)")
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys for the memory/open-time case")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per WAL case")


def run(args: argparse.Namespace) -> int:
    if args.only in (None, "wal"):
        from bench.storage_wal import bench_wal, format_wal_results

        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            rows = bench_wal(tmp, seconds_per_case=args.seconds)
        print(format_wal_results(rows))
    if args.only in (None, "mvcc"):
        from bench.storage_mvcc import bench_mvcc, format_mvcc_results

        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            rows = bench_mvcc(tmp, keys=args.keys)
        print(format_mvcc_results(rows))
    return 0
