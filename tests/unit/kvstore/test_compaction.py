"""Compaction: errors, physical deletion in batches, resumption, HashKV stability."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvstore.errors import CompactedError, FutureRevisionError
from kvstore.store import Store
from kvstore.types import CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest

from .conftest import Applier


def entries(store: Store) -> tuple[int, int]:
    def body(txn: object) -> tuple[int, int]:
        return (txn.stat(store._dbs.key)["entries"],  # type: ignore[attr-defined]
                txn.stat(store._dbs.rev)["entries"])  # type: ignore[attr-defined]
    return store._read(body)


def history(kv: Applier) -> None:
    kv(PutRequest(b"a", b"1"))  # 2
    kv(PutRequest(b"a", b"2"))  # 3
    kv(PutRequest(b"b", b"1"))  # 4
    kv(DeleteRangeRequest(b"b"))  # 5
    kv(PutRequest(b"c", b"1"))  # 6
    kv(PutRequest(b"a", b"3"))  # 7


def test_physical_compaction_keeps_latest_live_version(store: Store, kv: Applier) -> None:
    history(kv)
    assert entries(store) == (6, 6)
    kv(CompactionRequest(6))
    # a@3 (latest <= 6) and a@7 stay; a@2 goes; b's put and tombstone go; c@6 stays
    assert entries(store) == (3, 3)
    assert [kv.value for kv in store.range(RangeRequest(b"a", b"\x00", revision=6)).kvs] == [
        b"2", b"1"]
    assert store.range(RangeRequest(b"a", b"\x00")).count == 2
    with pytest.raises(CompactedError):
        store.range(RangeRequest(b"a", revision=5))
    events = store.events_since(7, key=b"a")
    assert events[0].prev_kv is not None and events[0].prev_kv.value == b"2"
    with pytest.raises(CompactedError):
        store.events_since(5, key=b"a")
    # a watch from the compact revision itself is served (etcd does), and complete
    assert [e.kv.mod_revision for e in store.events_since(6, key=b"\x00", range_end=b"\x00")] == [
        6, 7]


def test_compaction_keeps_every_version_at_its_revision(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a", b"1"))  # 2
    kv(PutRequest(b"b", b"1"))  # 3
    kv(DeleteRangeRequest(b"a", b"c"))  # 4: two tombstones
    kv(PutRequest(b"c", b"1"))  # 5
    kv(CompactionRequest(4))
    # the tombstones at 4 stay (etcd#18089): a re-watch from 4 still sees both deletes
    assert entries(store) == (3, 3)
    evs = store.events_since(4, key=b"\x00", range_end=b"\x00")
    assert [(e.type.name, e.kv.key, e.prev_kv) for e in evs] == [
        ("DELETE", b"a", None), ("DELETE", b"b", None), ("PUT", b"c", None)]
    assert store.range(RangeRequest(b"a", b"\x00", revision=4)).count == 0
    h = store.hash_kv()
    kv(CompactionRequest(5))  # now the tombstones below 5 go
    assert entries(store) == (1, 1)
    assert store.hash_kv().hash != h.hash


def test_compaction_in_small_batches(data_dir: Path) -> None:
    with Store(data_dir, durable=False, compaction_batch_limit=2) as s:
        kv = Applier(s)
        for i in range(20):  # revisions 2..21 over 4 keys
            kv(PutRequest(b"k%d" % (i % 4), b"v%d" % i))
        kv(CompactionRequest(15))
        # per key: the latest version <= 15 plus the versions above 15 (6 in all)
        assert entries(s) == (4 + 6, 4 + 6)
        assert s.run_pending_compaction() is True
        got = s.range(RangeRequest(b"k", b"l", revision=15))
        assert [kv.value for kv in got.kvs] == [b"v12", b"v13", b"v10", b"v11"]


def test_interrupted_physical_compaction_finishes_on_open(data_dir: Path) -> None:
    with Store(data_dir, durable=False, compaction_batch_limit=1, compact_inline=False) as s:
        kv = Applier(s)
        for i in range(12):  # revisions 2..13 over 3 keys
            kv(PutRequest(b"k%d" % (i % 3), b"v%d" % i))
        kv(CompactionRequest(10))
        before = s.hash_kv(13)
        assert entries(s) == (12, 12)  # nothing deleted yet
        assert s.run_pending_compaction(batches_max=2) is False
        assert entries(s) == (10, 10)
        assert s.hash_kv(13) == before  # HashKV does not depend on physical progress
        # as if the node crashed here
    with Store(data_dir, durable=False) as s:
        assert entries(s) == (3 + 3, 3 + 3)  # reopening finished the work
        assert s.hash_kv(13) == before
        assert s.run_pending_compaction() is True


def test_hash_kv(store: Store, kv: Applier, tmp_path: Path) -> None:
    history(kv)
    h5 = store.hash_kv(5)
    assert h5.compact_revision == -1 and h5.revision == 7
    kv(PutRequest(b"z"))
    assert store.hash_kv(5).hash == h5.hash  # later writes do not change an older hash
    assert store.hash_kv().hash != store.hash_kv(7).hash
    with pytest.raises(FutureRevisionError):
        store.hash_kv(100)
    # an identical history elsewhere hashes equal
    with Store(tmp_path / "twin", durable=False) as twin:
        t = Applier(twin)
        history(t)
        t(PutRequest(b"z"))
        assert twin.hash_kv(5) == store.hash_kv(5)
        assert twin.hash() == store.hash()
        t(PutRequest(b"y"))
        assert twin.hash() != store.hash()
    kv(CompactionRequest(4))
    with pytest.raises(CompactedError):
        store.hash_kv(4)
    after = store.hash_kv(6)
    assert after.compact_revision == 4
    assert after.hash != store.hash_kv(7).hash
