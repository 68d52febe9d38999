"""Store lifecycle: reopen, map growth, quota, snapshots, defragment, the watch read API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kvstore.errors import CompactedError, NoSpaceError, StorageError, StoreClosedError
from kvstore.store import Store
from kvstore.types import (
    ApplyResult,
    CompactionRequest,
    DeleteRangeRequest,
    EventType,
    KeyValue,
    LeaseGrantRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)

from .conftest import Applier


def dump(store: Store) -> list[KeyValue]:
    return list(store.range(RangeRequest(b"\x00", b"\x00")).kvs)


def test_layout_and_reopen(data_dir: Path) -> None:
    with Store(data_dir) as s:
        kv = Applier(s)
        for i in range(50):
            kv(PutRequest(b"k%02d" % (i % 7), b"v%d" % i))
        kv(DeleteRangeRequest(b"k03"))
        state = (s.current_revision, s.applied_index, dump(s), s.hash(), s.hash_kv(20))
    assert (data_dir / "member" / "kv" / "data.mdb").exists()
    with Store(data_dir) as s:
        assert (s.current_revision, s.applied_index, dump(s), s.hash(), s.hash_kv(20)) == state
        assert s.range(RangeRequest(b"k01", revision=10)).kvs[0].value == b"v8"


def test_replay_after_crash_changes_nothing(data_dir: Path) -> None:
    batch = [(i, 3, PutRequest(b"k%d" % (i % 5), b"v%d" % i)) for i in range(1, 30)]
    batch.append((30, 3, TxnRequest(success=(DeleteRangeRequest(b"k", b"l"),))))
    with Store(data_dir, durable=False) as s:
        s.apply_batch(batch[:20])
        s.apply_batch(batch[20:])
        state = (s.current_revision, s.hash(), dump(s))
    with Store(data_dir, durable=False) as s:  # the WAL replays everything again
        assert s.apply_batch(batch[:10]) == [None] * 10
        assert s.apply_batch(batch) == [None] * 30
        assert (s.current_revision, s.hash(), dump(s)) == state
        assert s.applied_index == 30 and s.applied_term == 3


def test_map_grows_when_full(data_dir: Path) -> None:
    with Store(data_dir, durable=False, map_size_bytes=256 * 1024) as s:
        kv = Applier(s)
        for b in range(8):
            s.apply_batch([(kv.index + i + 1, 1, PutRequest(b"k%d-%d" % (b, i), b"x" * 2000))
                           for i in range(100)])
            kv.index += 100
        assert s._map_size_bytes > 256 * 1024
        assert s.range(RangeRequest(b"k", b"l", count_only=True)).count == 800


def test_quota_at_apply(data_dir: Path) -> None:
    with Store(data_dir, durable=False, quota_bytes=512 * 1024, quota_at_apply=True) as s:
        kv = Applier(s)
        for i in range(100):
            kv(PutRequest(b"k%d" % i, b"x" * 1000))
        with pytest.raises(NoSpaceError):
            for i in range(1000):
                kv(PutRequest(b"more%d" % i, b"x" * 1000))
        with pytest.raises(NoSpaceError):
            kv(TxnRequest(success=(PutRequest(b"t", b"v"),)))
        with pytest.raises(NoSpaceError):
            kv(LeaseGrantRequest(10, id=1))
        # deletes, reads, read-only txns and compaction still work
        kv(DeleteRangeRequest(b"k", b"l"))
        kv(TxnRequest(success=(RangeRequest(b"k1"),)))
        kv(CompactionRequest(s.current_revision))
        assert s.range(RangeRequest(b"\x00", b"\x00", count_only=True)).count > 0
        # the space is only given back by a defragment (like bbolt's file size)
        s.defragment()
        kv(PutRequest(b"after-defrag", b"v"))


def test_quota_checked_before_proposing(data_dir: Path) -> None:
    with Store(data_dir, durable=False, quota_bytes=512 * 1024, quota_at_apply=False) as s:
        kv = Applier(s)
        for i in range(600):  # apply itself does not look at the size
            kv(PutRequest(b"k%d" % i, b"x" * 1000))
        assert s.db_size_in_use_bytes > 512 * 1024
        for req in (PutRequest(b"a", b"v"), TxnRequest(failure=(PutRequest(b"a"),)),
                    LeaseGrantRequest(10)):
            with pytest.raises(NoSpaceError):
                s.check_quota(req)
        s.check_quota(DeleteRangeRequest(b"k", b"l"))
        s.check_quota(TxnRequest(success=(RangeRequest(b"a"),)))
        s.check_quota(RangeRequest(b"a"))


def test_nospace_alarm_rejects_writes(store: Store, kv: Applier) -> None:
    store.nospace_alarm = True
    with pytest.raises(NoSpaceError):
        kv(PutRequest(b"a"))
    kv(DeleteRangeRequest(b"a"))
    store.nospace_alarm = False
    kv(PutRequest(b"a"))


def test_snapshot_and_restore(store: Store, kv: Applier, tmp_path: Path) -> None:
    for i in range(30):
        kv(PutRequest(b"k%d" % (i % 4), b"v%d" % i))
    kv(LeaseGrantRequest(10, id=5))
    snap = tmp_path / "snap.db"
    store.snapshot_to(snap)
    kv(PutRequest(b"after", b"x"))  # not in the snapshot
    restored_dir = tmp_path / "restored"
    Store.restore_from(snap, restored_dir)
    with Store(restored_dir, durable=False) as r:
        assert r.applied_index == 31 and r.current_revision == 31
        assert r.range(RangeRequest(b"after")).kvs == ()
        assert r.hash_kv(31).hash == store.hash_kv(31).hash
        assert [lease.id for lease in r.leases()] == [5]


def test_defragment_shrinks_and_keeps_data(store: Store, kv: Applier) -> None:
    for i in range(300):
        kv(PutRequest(b"k%d" % i, b"x" * 1000))
    kv(DeleteRangeRequest(b"k", b"l"))
    kv(CompactionRequest(store.current_revision))
    before = store.db_size_in_use_bytes
    state = (store.hash(), store.current_revision, store.applied_index)
    store.defragment()
    assert store.db_size_in_use_bytes < before // 4
    assert (store.hash(), store.current_revision, store.applied_index) == state
    assert store.db_size_bytes > 0
    kv(PutRequest(b"k1", b"again"))
    assert store.range(RangeRequest(b"k1")).kvs[0].version == 1


def test_closed_store(data_dir: Path) -> None:
    s = Store(data_dir)
    s.close()
    s.close()
    with pytest.raises(StoreClosedError):
        s.range(RangeRequest(b"a"))
    with pytest.raises(StoreClosedError):
        s.apply(1, 1, PutRequest(b"a"))


def test_events_since(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a", b"1"))  # 2
    kv(TxnRequest(success=(PutRequest(b"b", b"1"), PutRequest(b"c", b"1"),
                           PutRequest(b"x", b"1"))))  # 3.0, 3.1, 3.2
    kv(PutRequest(b"a", b"2"))  # 4
    kv(DeleteRangeRequest(b"a"))  # 5
    kv(PutRequest(b"a", b"3"))  # 6
    evs = store.events_since(1, key=b"a", range_end=b"d")
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in evs] == [
        (EventType.PUT, b"a", 2), (EventType.PUT, b"b", 3), (EventType.PUT, b"c", 3),
        (EventType.PUT, b"a", 4), (EventType.DELETE, b"a", 5), (EventType.PUT, b"a", 6)]
    assert [e.prev_kv.value if e.prev_kv else None for e in evs] == [
        None, None, None, b"1", b"2", None]
    assert evs[4].kv == KeyValue(b"a", 0, 5, 0, b"", 0)
    # single key, end revision
    assert [e.kv.mod_revision for e in store.events_since(3, key=b"a", end_revision=5)] == [4, 5]
    # limit never splits a revision
    assert [e.kv.mod_revision for e in store.events_since(2, key=b"\x00", range_end=b"\x00",
                                                           limit=2)] == [2]
    assert len(store.events_since(3, key=b"\x00", range_end=b"\x00", limit=2)) == 3
    assert [e.kv.mod_revision for e in store.events_since(2, key=b"\x00", range_end=b"\x00",
                                                           limit=4)] == [2, 3, 3, 3]
    assert store.events_since(7, key=b"a") == []
    kv(CompactionRequest(4))
    with pytest.raises(CompactedError):
        store.events_since(3, key=b"a")
    # from the compact revision: served; prev_kv would need revision 3, which is compacted
    assert [(e.kv.mod_revision, e.prev_kv) for e in store.events_since(4, key=b"a")] == [
        (4, None), (5, evs[4].prev_kv), (6, None)]


def test_concurrent_readers_during_apply_and_growth(data_dir: Path) -> None:
    # Short GIL switch interval: busy reader threads otherwise convoy the applying thread
    # (each LMDB call releases the GIL and a reader keeps it for the whole 5 ms interval).
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        _concurrent_readers(data_dir)
    finally:
        sys.setswitchinterval(old)


def _concurrent_readers(data_dir: Path) -> None:
    with Store(data_dir, durable=False, map_size_bytes=64 * 1024) as s:
        kv = Applier(s)
        kv(PutRequest(b"probe", b"0"))
        stop = threading.Event()
        seen: list[int] = []
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                while not stop.is_set():
                    resp = s.range(RangeRequest(b"probe"))
                    seen.append(int(resp.kvs[0].value))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for b in range(1, 12):
            out = s.apply_batch([(kv.index + 1, 1, PutRequest(b"probe", b"%d" % b)),
                                 *[(kv.index + 2 + i, 1, PutRequest(b"f%d-%d" % (b, i), b"y" * 500))
                                   for i in range(20)]])
            kv.index += 21
            assert all(isinstance(r, ApplyResult) for r in out)
        stop.set()
        for t in threads:
            t.join()
        assert not errors
        assert seen and max(seen) <= 11
        assert s._map_size_bytes > 64 * 1024


_CHILD = r"""
import sys
from kvstore.store import Store
from kvstore.types import PutRequest
s = Store(sys.argv[1], durable=False, writemap=sys.argv[2] == "1")
for b in range(10_000):
    s.apply_batch([(b * 50 + i + 1, 1, PutRequest(b"k%d" % ((b * 50 + i) % 97), b"v%d" % b))
                   for i in range(50)])
    print(b, flush=True)
"""


def _batches(n: int) -> list[list[tuple[int, int, PutRequest]]]:
    return [[(b * 50 + i + 1, 1, PutRequest(b"k%d" % ((b * 50 + i) % 97), b"v%d" % b))
             for i in range(50)] for b in range(n)]


@pytest.mark.parametrize("writemap", [False, True])
def test_sigkill_mid_apply_then_replay(data_dir: Path, tmp_path: Path, writemap: bool) -> None:
    """A process killed by SIGKILL keeps whole batches only; WAL-style replay converges."""
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(data_dir), str(int(writemap))],
                            cwd=root,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line) >= 20:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with Store(data_dir, durable=False, writemap=writemap) as s:
        applied = s.applied_index
        assert applied >= 21 * 50 and applied % 50 == 0  # a batch is all or nothing
        assert s.current_revision == applied + 1  # one revision per put, none lost
        batches = _batches(applied // 50 + 10)
        for batch in batches:  # the WAL replays from the start
            out = s.apply_batch(batch)
            assert all(r is None for r in out) or all(isinstance(r, ApplyResult) for r in out)
        crashed = (s.current_revision, s.hash(), dump(s))
    with Store(tmp_path / "clean", durable=False) as clean:
        for batch in batches:
            clean.apply_batch(batch)
        assert (clean.current_revision, clean.hash(), dump(clean)) == crashed


def test_one_open_per_process(data_dir: Path) -> None:
    with Store(data_dir):
        with pytest.raises(StorageError, match="already open"):
            Store(data_dir)
    with Store(data_dir) as again:  # closing released it
        assert again.current_revision == 1


@pytest.mark.parametrize("durable", [False, True])
def test_writemap_mode(data_dir: Path, durable: bool) -> None:
    with Store(data_dir, durable=durable, writemap=True, map_size_bytes=64 * 1024) as s:
        kv = Applier(s)
        for i in range(300):  # also grows the map
            kv(PutRequest(b"k%d" % i, b"x" * 500))
        kv(DeleteRangeRequest(b"k1", b"k2"))
        kv(CompactionRequest(s.current_revision))
        state = (s.current_revision, s.hash(), dump(s))
        assert 0 < s.db_size_bytes <= s._map_size_bytes
        s.defragment()
        assert (s.current_revision, s.hash(), dump(s)) == state
    with Store(data_dir, durable=durable, writemap=True) as s:
        assert (s.current_revision, s.hash(), dump(s)) == state


def test_restore_refuses_an_open_store(store: Store, data_dir: Path, tmp_path: Path) -> None:
    snap = tmp_path / "snap.db"
    store.snapshot_to(snap)
    with pytest.raises(StorageError, match="close it first"):
        Store.restore_from(snap, data_dir)
