"""Golden WAL traces: every tests/scenarios/wal/*.txt file, on a real temp dir.

Commands (one WAL directory per file):
    create [segment-bytes=N] [wals-max=N]       new WAL with metadata "m"
    save entries=(lo,hi) [term=T] [hs=(t,v,c)] [sync]
    sync | close
    marker index=I term=T                         save_snapshot_marker
    release index=I                               release_to; prints the deleted files
    open [snapshot=(i,t)] [segment-bytes=N]       prints what was read, or the refusal
    segments                                      files, with the offset where data ends
    damage [seg=K] op=cut|zero|garbage|flip at=X  X: an offset, or end-N (end of data - N)
    delete seg=K                                  remove a segment file

Regenerate with `pytest tests/unit/wal/test_scenarios.py --rewrite` and read the diff.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.datadriven import Case, run_file
from wal import WAL, HardState, SnapshotMarker, WalEntry, WalError
from wal.decoder import data_end
from wal.segment import list_segments

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios" / "wal"
FILES = sorted(SCENARIOS.glob("*.txt"))


class Env:
    def __init__(self, root: Path) -> None:
        self.dir = str(root / "wal")
        self.wal: WAL | None = None
        self.segment_bytes = 4096
        self.wals_max = 5

    def handle(self, case: Case) -> str:
        try:
            return getattr(self, "cmd_" + case.command.replace("-", "_"))(case) or "ok"
        except (WalError, ValueError) as exc:
            msg = str(exc).replace(self.dir + os.sep, "").replace(self.dir, "<wal-dir>")
            return f"error: {type(exc).__name__}: {msg}"

    def w(self) -> WAL:
        if self.wal is None:
            raise ValueError("no open WAL")
        return self.wal

    def cmd_create(self, c: Case) -> str:
        self.segment_bytes = c.int_arg("segment-bytes", 4096)
        self.wals_max = c.int_arg("wals-max", 5)
        self.wal = WAL.create(
            self.dir, b"m", segment_bytes_max=self.segment_bytes, wals_max=self.wals_max
        )
        return "ok"

    def cmd_save(self, c: Case) -> str:
        lo, hi = (int(v) for v in c.arg("entries").values) if c.has("entries") else (1, 0)  # type: ignore[union-attr]
        term = c.int_arg("term", 1)
        ents = [WalEntry(i, term, 0, b"e%d" % i) for i in range(lo, hi + 1)]
        hs = HardState(*(int(v) for v in c.arg("hs").values)) if c.has("hs") else None  # type: ignore[union-attr]
        self.w().save(hs, ents, sync=c.has("sync"))
        return "ok"

    def cmd_sync(self, c: Case) -> str:
        self.w().sync()
        return "ok"

    def cmd_close(self, c: Case) -> str:
        self.w().close()
        self.wal = None
        return "ok"

    def cmd_marker(self, c: Case) -> str:
        self.w().save_snapshot_marker(SnapshotMarker(c.int_arg("index"), c.int_arg("term")))
        return "ok"

    def cmd_release(self, c: Case) -> str:
        removed = self.w().release_to(c.int_arg("index"))
        return "removed: " + (" ".join(removed) if removed else "none")

    def cmd_open(self, c: Case) -> str:
        if self.wal is not None:
            self.wal.close()
            self.wal = None
        snap = None
        if c.has("snapshot"):
            i, t = (int(v) for v in c.arg("snapshot").values)  # type: ignore[union-attr]
            snap = SnapshotMarker(i, t)
        self.wal = WAL.open(
            self.dir, snapshot=snap, segment_bytes_max=self.segment_bytes, wals_max=self.wals_max
        )
        r = self.wal.read_all()
        hs = r.hard_state
        ents = " ".join(f"{e.index}/{e.term}" for e in r.entries) or "none"
        return (
            f"metadata={r.metadata.decode()} hard_state=(term={hs.term} vote={hs.vote} "
            f"commit={hs.commit}) last_index={self.wal.last_index}\nentries: {ents}"
        )

    def cmd_segments(self, c: Case) -> str:
        out = []
        for seg in list_segments(self.dir):
            p = os.path.join(self.dir, seg.name)
            with open(p, "rb") as f:
                out.append(f"{seg.name} data_end={data_end(f.read())}")
        return "\n".join(out)

    def _seg_path(self, c: Case) -> str:
        segs = list_segments(self.dir)
        return os.path.join(self.dir, segs[c.int_arg("seg", len(segs) - 1)].name)

    def cmd_damage(self, c: Case) -> str:
        path = self._seg_path(c)
        with open(path, "rb") as f:
            data = bytearray(f.read())
        spec = c.arg("at").values[0]  # type: ignore[union-attr]
        at = data_end(bytes(data)) - int(spec[4:]) if spec.startswith("end-") else int(spec)
        op = c.arg("op").values[0]  # type: ignore[union-attr]
        if op == "cut":
            del data[at:]
        elif op == "zero":
            data[at : at + c.int_arg("len", 1)] = bytes(c.int_arg("len", 1))
        elif op == "garbage":
            rng = random.Random(at)
            n = c.int_arg("len", 16)
            data[at : at + n] = bytes(rng.randrange(1, 256) for _ in range(n))
        elif op == "flip":
            data[at] ^= 0x01
        with open(path, "wb") as f:
            f.write(bytes(data))
        return f"{op} {os.path.basename(path)} at {at}"

    def cmd_delete(self, c: Case) -> str:
        path = self._seg_path(c)
        os.unlink(path)
        return f"deleted {os.path.basename(path)}"


def test_scenarios_exist() -> None:
    assert len(FILES) >= 3


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: Path, tmp_path: Path) -> None:
    env = Env(tmp_path)
    try:
        run_file(path, env.handle)
    finally:
        if env.wal is not None:
            env.wal.close()
