"""MVCC micro-benchmark: apply throughput, single-key Range, and the 1M-key open/RSS case.

Cases (each row: case, value, unit, target, ok):

* apply puts/s: PutRequests applied as raft entries in `apply_batch` calls of `batch`
  entries (one LMDB write txn each), 32-byte keys in a scattered order, 256-byte values.
  On a fresh store (`fresh_puts` puts) with durable=False (the node's setting: the WAL
  carries durability, see kvstore/store.py), with durable=True (an fsync per batch) and
  with the opt-in LMDB write map, then over the whole load of the `keys`-key store (the B-tree grows, so this is lower).
  Building the request objects is included, as the node pays for decoding entries too.
  Every rate is also given in process CPU time, which is what a shared machine cannot
  steal: wall-clock rates on a loaded machine understate the code's speed.
* single-key Range/s: `Store.range` of random existing keys on the loaded store.
* the loaded store: LMDB file size; then a FRESH child process opens it and serves one
  read: its peak RSS (VmHWM from /proc, includes the interpreter and imports; ru_maxrss is
  useless here because Linux carries it across exec from the forking parent) and two times:
  Store() open to first read served ("open-to-ready") and process spawn to ready.

Reproduce: `.venv/bin/python -m bench.storage_mvcc --keys 1000000` or `kvbench storage --only mvcc`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from kvstore.store import Store
from kvstore.types import PutRequest, RangeRequest

__all__ = ["bench_mvcc", "format_mvcc_results"]

Row = dict[str, float | int | str | bool]

_REPO_ROOT = Path(__file__).resolve().parent.parent
_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from kvstore.store import Store
from kvstore.types import RangeRequest
t1 = time.perf_counter()
s = Store(sys.argv[1], durable=False)
resp = s.range(RangeRequest(bytes.fromhex(sys.argv[2])))
t2 = time.perf_counter()
assert resp.count == 1, resp
# VmHWM (peak RSS of this address space) rather than ru_maxrss: on Linux ru_maxrss
# survives exec, so it would report the parent's RSS at fork time.
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"import_s": t1 - t0, "open_to_ready_s": t2 - t1,
                  "revision": s.current_revision,
                  "hwm_kib": int(status["VmHWM"].split()[0]),
                  "rss_kib": int(status["VmRSS"].split()[0])}))
s.close()
"""


def _key(i: int) -> bytes:
    return b"/registry/bench/%016d" % i  # 32 bytes


def _order(n: int) -> list[int]:
    order = list(range(n))
    random.Random(42).shuffle(order)
    return order


def _load(store: Store, order: Sequence[int], *, batch: int, value: bytes) -> tuple[float, float]:
    """Apply one put per key in `order`; returns (wall puts/s, CPU-time puts/s)."""
    index = store.applied_index
    start, cpu_start = time.perf_counter(), time.process_time()
    for lo in range(0, len(order), batch):
        items = [
            (index + j + 1, 1, PutRequest(_key(i), value))
            for j, i in enumerate(order[lo : lo + batch])
        ]
        index += len(items)
        store.apply_batch(items)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return len(order) / wall, len(order) / cpu


def bench_mvcc(
    tmpdir: str,
    *,
    keys: int = 1_000_000,
    batch: int = 1000,
    value_bytes: int = 256,
    fresh_puts: int = 100_000,
    range_ops: int = 100_000,
) -> list[Row]:
    rows: list[Row] = []
    value = os.urandom(value_bytes)

    def row(case: str, v: float, unit: str, target: str, ok: bool | None,
            cpu: float | None = None) -> None:
        rows.append({"case": case, "value": v, "cpu_value": -1.0 if cpu is None else cpu,
                     "unit": unit, "target": target, "ok": "" if ok is None else ok})

    # 1. apply throughput on fresh stores: durable=False (the node's setting) and durable=True.
    n = min(fresh_puts, keys)
    for durable, writemap in ((False, False), (True, False), (False, True)):
        name = f"fresh-{durable}-{writemap}"
        with Store(os.path.join(tmpdir, name), durable=durable, writemap=writemap) as s:
            wall, cpu = _load(s, _order(n), batch=batch, value=value)
        main_case = not durable and not writemap
        row(f"apply puts/s, batch {batch}, {n:,} puts, durable={durable}"
            + (", writemap" if writemap else ""), wall, "puts/s",
            ">= 50,000" if main_case else "(reference)", wall >= 50_000 if main_case else None,
            cpu)

    # 2. load `keys` keys (durable=False): the rate over the whole load, B-tree growing.
    data_dir = os.path.join(tmpdir, "loaded")
    with Store(data_dir, durable=False) as s:
        wall, cpu = _load(s, _order(keys), batch=batch, value=value)
        row(f"apply puts/s while loading {keys:,} keys", wall, "puts/s", "(reference)", None,
            cpu)
        rng = random.Random(7)
        probes = [RangeRequest(_key(rng.randrange(keys))) for _ in range(range_ops)]
        start, cpu_start = time.perf_counter(), time.process_time()
        for req in probes:
            s.range(req)
        wall = range_ops / (time.perf_counter() - start)
        cpu = range_ops / (time.process_time() - cpu_start)
        row(f"single-key Range/s ({keys:,} keys)", wall, "ranges/s", ">= 50,000",
            wall >= 50_000, cpu)
        s.sync()
        size = s.db_size_bytes
        in_use = s.db_size_in_use_bytes
    row(f"LMDB file size ({keys:,} keys)", size / 2**20, "MiB", "", None)
    row(f"LMDB in use ({keys:,} keys)", in_use / 2**20, "MiB", "", None)

    # 3. a fresh process opens the loaded store and serves one read.
    env = dict(os.environ, PYTHONPATH=str(_REPO_ROOT))
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, data_dir, _key(keys // 2).hex()],
        check=True, capture_output=True, text=True, env=env, cwd=str(_REPO_ROOT),
    )
    spawn_to_ready = time.perf_counter() - t0
    child = json.loads(out.stdout)
    rss_mib = child["hwm_kib"] / 1024
    row(f"fresh process peak RSS ({keys:,} keys)", rss_mib, "MiB", "<= 300", rss_mib <= 300)
    row("open-to-ready (Store() to first read)", child["open_to_ready_s"], "s", "<= 5",
        child["open_to_ready_s"] <= 5)
    row("process spawn to ready (incl. interpreter + imports)", spawn_to_ready, "s", "", None)
    return rows


def format_mvcc_results(rows: Sequence[Row]) -> str:
    """A fixed-width table of bench_mvcc() rows (CPU: the same rate in process CPU time)."""
    width = max(len(str(r["case"])) for r in rows)
    head = f"{'case':<{width}} {'value':>12} {'CPU-time':>10} {'unit':<9} {'target':<12} ok"
    lines = ["MVCC store on LMDB", head, "-" * len(head)]
    for r in rows:
        v, c = float(r["value"]), float(r["cpu_value"])
        shown = f"{v:,.0f}" if v >= 100 else f"{v:,.3f}"
        cpu = f"{c:,.0f}" if c >= 0 else ""
        ok = "" if r["ok"] == "" else ("yes" if r["ok"] else "NO")
        lines.append(f"{r['case']!s:<{width}} {shown:>12} {cpu:>10} {r['unit']!s:<9} "
                     f"{r['target']!s:<12} {ok}")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kvbench-mvcc-", dir=args.dir) as d:
        print(format_mvcc_results(bench_mvcc(d, keys=args.keys)))
