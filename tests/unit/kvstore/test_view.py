"""Range semantics (etcd 3.4): key forms, limit/more/count, revisions, sort, filters."""

from __future__ import annotations

import pytest

from kvstore.errors import CompactedError, EmptyKeyError, FutureRevisionError
from kvstore.revision import key_prefix_end
from kvstore.store import Store
from kvstore.types import (
    CompactionRequest,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    SortOrder,
    SortTarget,
)

from .conftest import Applier


def keys(store: Store, req: RangeRequest) -> list[bytes]:
    return [kv.key for kv in store.range(req).kvs]


@pytest.fixture
def five(kv: Applier) -> Applier:
    # a=2, b=3, c=4, d=5, e=6; then b updated at 7 and c deleted at 8
    for k in (b"a", b"b", b"c", b"d", b"e"):
        kv(PutRequest(k, k.upper()))
    kv(PutRequest(b"b", b"B2"))
    kv(DeleteRangeRequest(b"c"))
    return kv


def test_key_forms(store: Store, five: Applier) -> None:
    assert keys(store, RangeRequest(b"b")) == [b"b"]
    assert keys(store, RangeRequest(b"c")) == []
    assert keys(store, RangeRequest(b"b", b"d")) == [b"b"]
    assert keys(store, RangeRequest(b"b", b"\x00")) == [b"b", b"d", b"e"]
    assert keys(store, RangeRequest(b"\x00", b"\x00")) == [b"a", b"b", b"d", b"e"]
    assert keys(store, RangeRequest(b"d", b"b")) == []
    assert keys(store, RangeRequest(b"a", key_prefix_end(b"a"))) == [b"a"]


def test_nul_and_prefix_keys_stay_distinct(store: Store, kv: Applier) -> None:
    for k in (b"a", b"a\x00", b"a\x00\x00", b"a\x01", b"ab", b"\x00"):
        kv(PutRequest(k, k))
    got = keys(store, RangeRequest(b"\x00", b"\x00"))
    assert got == sorted([b"a", b"a\x00", b"a\x00\x00", b"a\x01", b"ab", b"\x00"])
    assert keys(store, RangeRequest(b"a", key_prefix_end(b"a"))) == got[1:]
    assert store.range(RangeRequest(b"a\x00")).kvs[0].value == b"a\x00"


def test_empty_key_rejected(store: Store) -> None:
    with pytest.raises(EmptyKeyError):
        store.range(RangeRequest(b""))


def test_limit_more_and_total_count(store: Store, five: Applier) -> None:
    resp = store.range(RangeRequest(b"a", b"\x00", limit=2))
    assert [kv.key for kv in resp.kvs] == [b"a", b"b"]
    assert resp.more is True
    assert resp.count == 4  # total in range, not the number returned
    resp = store.range(RangeRequest(b"a", b"\x00", limit=4))
    assert resp.more is False and resp.count == 4 and len(resp.kvs) == 4


def test_count_only_and_keys_only(store: Store, five: Applier) -> None:
    resp = store.range(RangeRequest(b"a", b"\x00", count_only=True, limit=1))
    assert resp.kvs == () and resp.count == 4 and resp.more is False
    resp = store.range(RangeRequest(b"a", b"\x00", keys_only=True))
    assert [kv.value for kv in resp.kvs] == [b""] * 4
    assert resp.kvs[1].version == 2


def test_versions_and_revisions(store: Store, five: Applier) -> None:
    b = store.range(RangeRequest(b"b")).kvs[0]
    assert (b.create_revision, b.mod_revision, b.version, b.value) == (3, 7, 2, b"B2")
    assert store.range(RangeRequest(b"b")).revision == 8 == store.current_revision


def test_range_at_revision(store: Store, five: Applier) -> None:
    resp = store.range(RangeRequest(b"a", b"\x00", revision=4))
    assert [kv.key for kv in resp.kvs] == [b"a", b"b", b"c"]
    assert resp.count == 3
    assert resp.revision == 8  # the header carries the current revision
    assert store.range(RangeRequest(b"b", revision=6)).kvs[0].value == b"B"
    assert store.range(RangeRequest(b"c", revision=7)).kvs[0].value == b"C"
    assert store.range(RangeRequest(b"c", revision=8)).kvs == ()
    assert store.range(RangeRequest(b"a", revision=1)).kvs == ()
    resp = store.range(RangeRequest(b"a", b"\x00", revision=7, limit=1))
    assert resp.count == 5 and resp.more


def test_revision_errors(store: Store, five: Applier) -> None:
    with pytest.raises(FutureRevisionError):
        store.range(RangeRequest(b"a", revision=9))
    five(CompactionRequest(5))
    with pytest.raises(CompactedError):
        store.range(RangeRequest(b"a", revision=4))
    assert store.range(RangeRequest(b"a", b"\x00", revision=5)).count == 4  # == compact is ok
    assert store.range(RangeRequest(b"a", revision=-3)).kvs[0].key == b"a"  # <= 0: latest


def test_sort(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a", b"3"))
    kv(PutRequest(b"b", b"1"))
    kv(PutRequest(b"c", b"2"))
    kv(PutRequest(b"a", b"4"))
    kv(PutRequest(b"a", b"5"))
    by = lambda t, o, **kw: keys(store, RangeRequest(b"a", b"d", sort_target=t, sort_order=o, **kw))  # noqa: E731
    assert by(SortTarget.KEY, SortOrder.DESCEND) == [b"c", b"b", b"a"]
    assert by(SortTarget.VALUE, SortOrder.ASCEND) == [b"b", b"c", b"a"]
    assert by(SortTarget.VALUE, SortOrder.NONE) == [b"b", b"c", b"a"]  # non-key target: ASCEND
    assert by(SortTarget.VERSION, SortOrder.DESCEND) == [b"a", b"b", b"c"]
    assert by(SortTarget.MOD, SortOrder.DESCEND) == [b"a", b"c", b"b"]
    assert by(SortTarget.CREATE, SortOrder.DESCEND) == [b"c", b"b", b"a"]
    # Sorting happens before limit: the limit keeps the first of the *sorted* list.
    resp = store.range(RangeRequest(b"a", b"d", sort_target=SortTarget.MOD,
                                    sort_order=SortOrder.DESCEND, limit=1))
    assert [kv.key for kv in resp.kvs] == [b"a"] and resp.more and resp.count == 3


def test_revision_filters(store: Store, kv: Applier) -> None:
    for k in (b"a", b"b", b"c", b"d"):  # revisions 2..5
        kv(PutRequest(k))
    kv(PutRequest(b"a"))  # a: create 2, mod 6
    r = lambda **kw: keys(store, RangeRequest(b"a", b"\x00", **kw))  # noqa: E731
    assert r(min_mod_revision=4) == [b"a", b"c", b"d"]
    assert r(max_mod_revision=4) == [b"b", b"c"]
    assert r(min_create_revision=3) == [b"b", b"c", b"d"]
    assert r(max_create_revision=3) == [b"a", b"b"]
    resp = store.range(RangeRequest(b"a", b"\x00", min_mod_revision=4, limit=1))
    assert [kv.key for kv in resp.kvs] == [b"a"] and resp.more and resp.count == 4


def test_sort_order_none_with_target_sorts_only_the_limited_page(store: Store, kv: Applier) -> None:
    # etcd 3.4: order NONE + non-key target fetches limit+1 keys in key order, then sorts them.
    kv(PutRequest(b"c"))  # create 2
    kv(PutRequest(b"b"))  # create 3
    kv(PutRequest(b"a"))  # create 4
    resp = store.range(RangeRequest(b"a", b"\x00", limit=1, sort_target=SortTarget.CREATE))
    assert [kv.key for kv in resp.kvs] == [b"b"] and resp.more and resp.count == 3
    resp = store.range(RangeRequest(b"a", b"\x00", limit=1, sort_target=SortTarget.CREATE,
                                    sort_order=SortOrder.ASCEND))
    assert [kv.key for kv in resp.kvs] == [b"c"]
