"""Apply: revisions, versions, txns, errors in a batch, idempotent replay, the commit failpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvstore import failpoint
from kvstore.errors import (
    CompactedError,
    EmptyKeyError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseNotFoundError,
    TooManyOpsError,
    ValueProvidedError,
)
from kvstore.store import Store
from kvstore.types import (
    ApplyResult,
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    EventType,
    KeyValue,
    LeaseGrantRequest,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    TxnRequest,
    TxnResponse,
)

from .conftest import Applier

R, T = CompareResult, CompareTarget


def get(store: Store, key: bytes) -> KeyValue | None:
    kvs = store.range(RangeRequest(key)).kvs
    return kvs[0] if kvs else None


def test_fresh_store_is_at_revision_one_and_each_write_adds_one(store: Store, kv: Applier) -> None:
    assert store.current_revision == 1
    assert kv(PutRequest(b"a", b"1")) == PutResponse(None, 2)
    assert kv(PutRequest(b"b", b"1")) == PutResponse(None, 3)
    assert store.current_revision == 3


def test_version_restarts_after_delete(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a", b"1"))
    kv(PutRequest(b"a", b"2"))
    assert get(store, b"a") == KeyValue(b"a", 2, 3, 2, b"2", 0)
    assert kv(DeleteRangeRequest(b"a")) == DeleteRangeResponse(1, (), 4)
    kv(PutRequest(b"a", b"3"))
    assert get(store, b"a") == KeyValue(b"a", 5, 5, 1, b"3", 0)


def test_delete_of_nothing_does_not_bump(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a"))
    result = kv.result(DeleteRangeRequest(b"zzz"))
    assert result.response == DeleteRangeResponse(0, (), 2)
    assert result.revision == 2 == store.current_revision
    assert result.events == ()


def test_delete_range_prev_kvs_and_events(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a", b"1"))
    kv(PutRequest(b"b", b"2"))
    kv(PutRequest(b"c", b"3"))
    result = kv.result(DeleteRangeRequest(b"a", b"c", prev_kv=True))
    resp = result.response
    assert isinstance(resp, DeleteRangeResponse)
    assert resp.deleted == 2 and resp.revision == 5
    assert [p.key for p in resp.prev_kvs] == [b"a", b"b"]
    assert [(e.type, e.kv, e.prev_kv) for e in result.events] == [
        (EventType.DELETE, KeyValue(b"a", 0, 5, 0, b"", 0), KeyValue(b"a", 2, 2, 1, b"1", 0)),
        (EventType.DELETE, KeyValue(b"b", 0, 5, 0, b"", 0), KeyValue(b"b", 3, 3, 1, b"2", 0)),
    ]
    # one revision, sub-revisions in order
    assert [e.kv.mod_revision for e in store.events_since(5, key=b"a", range_end=b"\x00")] == [5, 5]


def test_put_prev_kv_ignore_value_and_lease(store: Store, kv: Applier) -> None:
    with pytest.raises(KeyNotFoundError):
        kv(PutRequest(b"a", ignore_value=True))
    with pytest.raises(KeyNotFoundError):
        kv(PutRequest(b"a", b"v", ignore_lease=True))
    with pytest.raises(ValueProvidedError):
        kv(PutRequest(b"a", b"v", ignore_value=True))
    with pytest.raises(LeaseNotFoundError):
        kv(PutRequest(b"a", b"v", lease=99))
    kv(LeaseGrantRequest(60, id=7))
    kv(PutRequest(b"a", b"v1", lease=7))
    resp = kv(PutRequest(b"a", ignore_value=True, prev_kv=True))
    assert isinstance(resp, PutResponse) and resp.prev_kv is not None
    assert resp.prev_kv.value == b"v1" and resp.prev_kv.lease == 7
    assert get(store, b"a") == KeyValue(b"a", 2, 3, 2, b"v1", 0)  # lease dropped, value kept
    kv(PutRequest(b"a", b"v2", lease=7))
    kv(PutRequest(b"a", b"v3", ignore_lease=True))
    assert get(store, b"a") == KeyValue(b"a", 2, 5, 4, b"v3", 7)


def test_errors_do_not_abort_the_batch(store: Store) -> None:
    out = store.apply_batch([
        (1, 1, PutRequest(b"a", b"1")),
        (2, 1, PutRequest(b"b", lease=42)),
        (3, 1, RangeRequest(b"")),
        (4, 1, PutRequest(b"c", b"3")),
    ])
    assert isinstance(out[0], ApplyResult) and out[0].revision == 2
    assert out[1] == LeaseNotFoundError() and out[2] == EmptyKeyError()
    assert isinstance(out[3], ApplyResult) and out[3].revision == 3
    assert store.applied_index == 4
    assert get(store, b"b") is None


def test_idempotent_replay(store: Store, data_dir: Path) -> None:
    batch = [(i, 1, PutRequest(b"k%d" % (i % 3), b"v%d" % i)) for i in range(1, 8)]
    first = store.apply_batch(batch)
    assert all(isinstance(r, ApplyResult) for r in first)
    h, rev = store.hash(), store.current_revision
    assert store.apply_batch(batch) == [None] * 7
    # a batch that straddles the applied index applies only the new tail
    out = store.apply_batch([*batch[-2:], (8, 2, PutRequest(b"new"))])
    assert out[:2] == [None, None] and isinstance(out[2], ApplyResult)
    assert store.applied_index == 8 and store.applied_term == 2
    store.close()
    reopened = Store(data_dir, durable=False)
    try:
        assert reopened.apply_batch(batch) == [None] * 7
        assert reopened.current_revision == rev + 1
        assert reopened.hash() != h  # "new" was applied exactly once
    finally:
        reopened.close()


@pytest.fixture
def armed() -> Iterator[list[str]]:
    seen: list[str] = []

    def hook(name: str) -> None:
        seen.append(name)
        if name == "apply.before_commit":
            raise OSError("injected crash before commit")

    failpoint.set_hook(hook)
    yield seen
    failpoint.set_hook(None)


def test_crash_before_commit_leaves_nothing(store: Store, kv: Applier, armed: list[str]) -> None:
    with pytest.raises(OSError):
        store.apply_batch([(1, 1, PutRequest(b"a")), (2, 1, PutRequest(b"b"))])
    assert "apply.before_commit" in armed
    failpoint.set_hook(None)
    assert store.current_revision == 1 and store.applied_index == 0
    assert get(store, b"a") is None
    out = store.apply_batch([(1, 1, PutRequest(b"a")), (2, 1, PutRequest(b"b"))])
    assert [r.revision for r in out if isinstance(r, ApplyResult)] == [2, 3]


def cmp(key: bytes, target: CompareTarget, result: CompareResult, value: int | bytes) -> Compare:
    return Compare(result, target, key, value)


def test_txn_success_and_failure(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a", b"1"))
    txn = TxnRequest(
        compare=(cmp(b"a", T.VALUE, R.EQUAL, b"1"),),
        success=(PutRequest(b"b", b"2"), PutRequest(b"c", b"3"), RangeRequest(b"b")),
        failure=(RangeRequest(b"a"),),
    )
    result = kv.result(txn)
    resp = result.response
    assert isinstance(resp, TxnResponse) and resp.succeeded and resp.revision == 3
    assert resp.responses[0] == PutResponse(None, 3)
    rr = resp.responses[2]
    assert isinstance(rr, RangeResponse) and rr.kvs[0].value == b"2"  # reads its own writes
    assert [(e.kv.key, e.kv.mod_revision) for e in result.events] == [(b"b", 3), (b"c", 3)]
    assert [ev.kv.key for ev in store.events_since(3, key=b"a", range_end=b"\x00")] == [b"b", b"c"]
    kv(PutRequest(b"a", b"2"))
    result = kv.result(txn)
    resp = result.response
    assert isinstance(resp, TxnResponse) and not resp.succeeded
    assert resp.revision == 4 and result.events == ()  # failure branch only read
    rr = resp.responses[0]
    assert isinstance(rr, RangeResponse) and rr.kvs[0].value == b"2"


def test_txn_compare_on_missing_keys(store: Store, kv: Applier) -> None:
    def succeeded(c: Compare) -> bool:
        resp = kv(TxnRequest(compare=(c,)))
        assert isinstance(resp, TxnResponse)
        return resp.succeeded

    assert succeeded(cmp(b"x", T.VERSION, R.EQUAL, 0))
    assert succeeded(cmp(b"x", T.MOD, R.EQUAL, 0))
    assert succeeded(cmp(b"x", T.CREATE, R.LESS, 1))
    assert succeeded(cmp(b"x", T.LEASE, R.EQUAL, 0))
    assert not succeeded(cmp(b"x", T.VALUE, R.EQUAL, b""))
    assert not succeeded(cmp(b"x", T.VALUE, R.NOT_EQUAL, b"a"))
    assert store.current_revision == 1  # read-only txns never bump the revision


def test_txn_compare_with_range_end_needs_all_keys(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"p/a", b"1"))
    kv(PutRequest(b"p/b", b"1"))
    all_one = TxnRequest(compare=(Compare(R.EQUAL, T.VALUE, b"p/", b"1", range_end=b"p0"),))
    assert isinstance(r := kv(all_one), TxnResponse) and r.succeeded
    kv(PutRequest(b"p/c", b"2"))
    assert isinstance(r := kv(all_one), TxnResponse) and not r.succeeded


def test_readonly_txn_and_write_txn_that_writes_nothing(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a"))
    result = kv.result(TxnRequest(success=(RangeRequest(b"a"),)))
    assert result.revision == 2 and result.response.revision == 2  # type: ignore[union-attr]
    # a write branch not taken: no change, no bump
    result = kv.result(TxnRequest(compare=(cmp(b"a", T.VERSION, R.EQUAL, 9),),
                                  success=(PutRequest(b"b"),)))
    assert result.revision == 2 and store.current_revision == 2
    result = kv.result(TxnRequest(success=(DeleteRangeRequest(b"zz"),)))
    assert result.revision == 2


def test_nested_txn_compares_see_the_state_before_the_txn(store: Store, kv: Applier) -> None:
    inner = TxnRequest(compare=(cmp(b"a", T.VERSION, R.EQUAL, 0),),
                       success=(PutRequest(b"inner", b"saw-no-a"),),
                       failure=(PutRequest(b"inner", b"saw-a"),))
    resp = kv(TxnRequest(success=(PutRequest(b"a", b"1"), inner)))
    assert isinstance(resp, TxnResponse) and resp.succeeded
    nested = resp.responses[1]
    assert isinstance(nested, TxnResponse) and nested.succeeded and nested.revision == 0
    assert get(store, b"inner") == KeyValue(b"inner", 2, 2, 1, b"saw-no-a", 0)
    assert get(store, b"a") == KeyValue(b"a", 2, 2, 1, b"1", 0)


def test_txn_checks_fail_before_any_write(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a"))
    with pytest.raises(LeaseNotFoundError):
        kv(TxnRequest(success=(PutRequest(b"b"), PutRequest(b"c", lease=5))))
    with pytest.raises(KeyNotFoundError):
        kv(TxnRequest(success=(PutRequest(b"b"), PutRequest(b"zz", ignore_value=True))))
    with pytest.raises(FutureRevisionError):
        kv(TxnRequest(success=(PutRequest(b"b"), RangeRequest(b"a", revision=50))))
    with pytest.raises(TooManyOpsError):
        kv(TxnRequest(success=tuple(PutRequest(b"k%d" % i) for i in range(129))))
    assert get(store, b"b") is None and store.current_revision == 2
    # the put check only looks at the branch that runs
    resp = kv(TxnRequest(compare=(cmp(b"a", T.VERSION, R.EQUAL, 1),),
                         success=(PutRequest(b"b"),), failure=(PutRequest(b"c", lease=5),)))
    assert isinstance(resp, TxnResponse) and resp.succeeded


def test_overlapping_deletes_in_one_txn(store: Store, kv: Applier) -> None:
    for k in (b"a", b"b", b"c"):
        kv(PutRequest(k))
    resp = kv(TxnRequest(success=(DeleteRangeRequest(b"a", b"c"), DeleteRangeRequest(b"b", b"d"))))
    assert isinstance(resp, TxnResponse)
    assert [r.deleted for r in resp.responses] == [2, 1]  # type: ignore[union-attr]
    assert store.current_revision == 5


def test_compaction_request(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a"))
    kv(PutRequest(b"a"))
    with pytest.raises(FutureRevisionError):
        kv(CompactionRequest(4))
    result = kv.result(CompactionRequest(2))
    assert result.revision == 3 and result.events == ()
    with pytest.raises(CompactedError):
        kv(CompactionRequest(2))
    with pytest.raises(CompactedError):
        kv(CompactionRequest(1))
    assert store.compact_revision == 2


def test_range_through_apply(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a", b"1"))
    resp = kv(RangeRequest(b"a"))
    assert isinstance(resp, RangeResponse) and resp.kvs[0].value == b"1" and resp.revision == 2


def test_put_checks_lease_before_key_but_txn_checks_key_first(kv: Applier) -> None:
    # etcd 3.4: the Put applier looks the lease up first; checkRequestPut (txn) the key first.
    with pytest.raises(LeaseNotFoundError):
        kv(PutRequest(b"missing", lease=5, ignore_value=True))
    with pytest.raises(KeyNotFoundError):
        kv(TxnRequest(success=(PutRequest(b"missing", lease=5, ignore_value=True),)))


def test_from_key_delete_then_ignore_value_put_is_refused_without_writing(
    store: Store, kv: Applier
) -> None:
    # etcd 3.4 panics on this txn (the put's key check passes before the txn, then the put
    # finds the key deleted); a poison entry must not crash every replica, so we refuse it.
    kv(PutRequest(b"b", b"1"))
    txn = TxnRequest(success=(DeleteRangeRequest(b"a", b"\x00"),
                              PutRequest(b"b", ignore_value=True)))
    with pytest.raises(KeyNotFoundError):
        kv(txn)
    assert store.current_revision == 2 and get(store, b"b") is not None
    # put first, then delete: fine
    resp = kv(TxnRequest(success=(PutRequest(b"b", ignore_value=True),
                                  DeleteRangeRequest(b"a", b"\x00"))))
    assert isinstance(resp, TxnResponse) and resp.succeeded and store.current_revision == 3


def test_event_prev_kv_matches_history_in_txn_corner_cases(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a", b"old"))
    kv(PutRequest(b"b", b"old"))
    # a: put then from-key delete in one txn; b: from-key delete then put (a new generation)
    r1 = kv.result(TxnRequest(success=(PutRequest(b"a", b"new"), DeleteRangeRequest(b"a", b"\x00"))))
    r2 = kv.result(TxnRequest(success=(DeleteRangeRequest(b"b", b"\x00"), PutRequest(b"b", b"x"))))
    applied = [*r1.events, *r2.events]
    history = store.events_since(4, key=b"\x00", range_end=b"\x00")
    assert applied == history
    a_put, a_del, b_del, b_put = history
    assert a_put.prev_kv is not None and a_put.prev_kv.value == b"old"
    assert a_del.prev_kv is not None and a_del.prev_kv.value == b"old"  # state at rev - 1
    assert b_del.prev_kv is not None and b_put.prev_kv is None  # a create has no prev_kv
    resp = r1.response
    assert isinstance(resp, TxnResponse)
    deleted = resp.responses[1]
    assert isinstance(deleted, DeleteRangeResponse) and deleted.deleted == 2


def test_revision_going_back_is_caught(store: Store, kv: Applier) -> None:
    kv(PutRequest(b"a"))
    kv(PutRequest(b"b"))
    # Damage the stored revision: the next put would reuse revision 3.
    store._write(lambda txn: txn.put(b"revision", (2).to_bytes(8, "big"), db=store._dbs.meta))
    with pytest.raises(AssertionError, match="not above the last one"):
        store.apply(kv.index + 1, 1, PutRequest(b"c"))
    assert get(store, b"c") is None  # the whole batch was aborted


def test_term_going_back_is_caught(store: Store) -> None:
    store.apply(1, 2, PutRequest(b"a"))
    with pytest.raises(AssertionError, match="term went back"):
        store.apply(2, 1, PutRequest(b"b"))
    assert store.applied_index == 1 and get(store, b"b") is None


def test_rebase_applied_lets_a_restored_store_apply_a_new_log(store: Store, data_dir: Path) -> None:
    store.apply_batch([(i, 3, PutRequest(b"k", b"%d" % i)) for i in range(1, 11)])
    rev = store.current_revision
    store.rebase_applied(1, 1)
    store.close()
    reopened = Store(data_dir, durable=False)
    try:
        assert (reopened.applied_index, reopened.applied_term) == (1, 1)
        # The new cluster's entry 2 is applied, not skipped as already seen.
        out = reopened.apply_batch([(2, 1, PutRequest(b"n", b"x"))])
        assert isinstance(out[0], ApplyResult) and out[0].revision == rev + 1
    finally:
        reopened.close()
