"""WAL recovery properties (hypothesis), on real files in a temp dir.

1. Damage after the last sync (cut the file, or overwrite its tail with garbage or zeros
   from any offset after the synced data) always opens, and yields exactly a prefix of the
   written entries that contains every synced one.
2. A single bit flipped in any record that is followed by other records refuses to open
   with WalCorruptError naming the file and the offset.
"""

from __future__ import annotations

import os
import random
import struct
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wal import WAL, HardState, WalCorruptError, WalEntry
from wal.segment import list_segments

SEGMENT_BYTES = 2048
SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def entry(i: int, size: int) -> WalEntry:
    return WalEntry(i, 1 + i // 7, i % 3, bytes([i % 256]) * size)


def write_log(d: str, batches: list[int], size: int) -> tuple[list[WalEntry], list[tuple[str, int, int]]]:
    """Write the batches, one sync each; return all entries and, after each sync,
    (last segment name, end offset of its data, entries synced so far)."""
    w = WAL.create(d, b"meta", segment_bytes_max=SEGMENT_BYTES)
    written: list[WalEntry] = []
    marks: list[tuple[str, int, int]] = []
    for n in batches:
        batch = [entry(i, size) for i in range(len(written) + 1, len(written) + n + 1)]
        written += batch
        w.save(HardState(1, 1, len(written)), batch, sync=True)
        # private: the append offset in the current segment is the end of synced data
        marks.append((w.segments[-1].name, w._offset, len(written)))
    w.close()
    return written, marks


def frames(data: bytes) -> list[tuple[int, int]]:
    """(offset, total length) of every frame in a segment, up to the zero header."""
    out, off = [], 0
    while off + 9 <= len(data):
        _, n, t = struct.unpack_from("<IIB", data, off)
        if n == 0 and t == 0:
            break
        out.append((off, 9 + n))
        off += 9 + n
    return out


@SETTINGS
@given(
    batches=st.lists(st.integers(1, 6), min_size=1, max_size=10),
    size=st.integers(0, 120),
    synced=st.integers(0, 10),
    damage=st.sampled_from(["cut", "garbage", "zeros"]),
    where=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_damage_after_last_sync_recovers_a_prefix_with_every_synced_record(
    batches: list[int], size: int, synced: int, damage: str, where: float, seed: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "wal")
        written, marks = write_log(d, batches, size)
        synced = min(synced, len(marks))
        last_seg = list_segments(d)[-1].name
        path = os.path.join(d, last_seg)
        with open(path, "rb") as f:
            data = f.read()
        data_end = marks[-1][1]
        # the synced boundary inside the last segment: the header if the last synced batch
        # lives in an older segment (the header itself was synced when the segment was cut)
        boundary = frames(data)[1][0] + frames(data)[1][1]
        must_have = 0
        if synced:
            seg, off, count = marks[synced - 1]
            must_have = count
            if seg == last_seg:
                boundary = off
        at = boundary + int(where * (data_end - boundary))
        rng = random.Random(seed)
        if damage == "cut":
            with open(path, "r+b") as f:
                f.truncate(at)
        else:
            span = max(1, data_end - at + rng.randrange(0, 64))
            blob = bytes(rng.randrange(256) for _ in range(span)) if damage == "garbage" else bytes(span)
            with open(path, "r+b") as f:
                f.seek(at)
                f.write(blob)
        w = WAL.open(d, segment_bytes_max=SEGMENT_BYTES)
        got = w.read_all().entries
        assert got == written[: len(got)], "not a prefix of what was written"
        assert len(got) >= must_have, f"lost synced entries: {len(got)} < {must_have}"
        with open(path, "rb") as f:
            after = f.read()[w._offset :]  # private: where appending resumes
        assert not after.strip(b"\0"), "the torn tail was not cut off"
        # and the repaired WAL takes appends and reads them back
        nxt = entry(len(got) + 1, 3)
        w.save(None, [nxt], sync=True)
        w.close()
        w = WAL.open(d, segment_bytes_max=SEGMENT_BYTES)
        assert w.read_all().entries == got + [nxt]
        w.close()


@SETTINGS
@given(
    batches=st.lists(st.integers(1, 6), min_size=2, max_size=10),
    size=st.integers(0, 120),
    pick=st.floats(0, 1),
    byte=st.floats(0, 1),
    bit=st.integers(0, 7),
)
def test_bit_flip_in_an_earlier_record_refuses_to_open(
    batches: list[int], size: int, pick: float, byte: float, bit: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "wal")
        write_log(d, batches, size)
        segs = list_segments(d)
        candidates: list[tuple[str, int, int]] = []  # (path, frame offset, frame length)
        for i, seg in enumerate(segs):
            p = os.path.join(d, seg.name)
            with open(p, "rb") as f:
                fr = frames(f.read())
            last = i == len(segs) - 1
            # in the last segment only frames followed by another frame
            for off, n in fr[:-1] if last else fr:
                candidates.append((p, off, n))
        if not candidates:
            return
        path, off, n = candidates[min(len(candidates) - 1, int(pick * len(candidates)))]
        pos = off + min(n - 1, int(byte * n))
        with open(path, "r+b") as f:
            f.seek(pos)
            b = f.read(1)[0]
            f.seek(pos)
            f.write(bytes([b ^ (1 << bit)]))
        with pytest.raises(WalCorruptError) as info:
            WAL.open(d, segment_bytes_max=SEGMENT_BYTES).close()
        msg = str(info.value)
        assert "corrupt" in msg and os.path.basename(path) in msg and "offset" in msg
