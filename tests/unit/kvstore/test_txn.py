"""Request validation (etcd's v3rpc checks) and compare semantics."""

from __future__ import annotations

import pytest

from kvstore.errors import (
    DuplicateKeyError,
    EmptyKeyError,
    KvError,
    LeaseProvidedError,
    RequestTooLargeError,
    TooManyOpsError,
    ValueProvidedError,
)
from kvstore.txn import check_request, compare_kv, txn_cost, txn_is_readonly
from kvstore.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    KeyValue,
    PutRequest,
    RangeRequest,
    TxnRequest,
)

R, T = CompareResult, CompareTarget


def check(req: object, max_txn_ops: int = 128) -> None:
    check_request(req, max_txn_ops=max_txn_ops)


@pytest.mark.parametrize(
    ("req", "err"),
    [
        (RangeRequest(b""), EmptyKeyError),
        (DeleteRangeRequest(b""), EmptyKeyError),
        (PutRequest(b""), EmptyKeyError),
        (PutRequest(b"k", b"v", ignore_value=True), ValueProvidedError),
        (PutRequest(b"k", lease=5, ignore_lease=True), LeaseProvidedError),
        (PutRequest(b"k" * 500), RequestTooLargeError),
        (TxnRequest(compare=(Compare(R.EQUAL, T.VERSION, b""),)), EmptyKeyError),
        (TxnRequest(success=(PutRequest(b"", b"v"),)), EmptyKeyError),
        (TxnRequest(failure=(TxnRequest(success=(RangeRequest(b""),)),)), EmptyKeyError),
    ],
)
def test_single_request_errors(req: object, err: type[KvError]) -> None:
    with pytest.raises(err):
        check(req)


def test_valid_requests_pass() -> None:
    check(PutRequest(b"k", ignore_value=True, ignore_lease=True))
    check(PutRequest(b"k" * 400, b"v"))
    check(TxnRequest())


def test_too_many_ops_counts_the_largest_list() -> None:
    puts = tuple(PutRequest(b"k%d" % i) for i in range(4))
    check(TxnRequest(success=puts), max_txn_ops=4)
    with pytest.raises(TooManyOpsError):
        check(TxnRequest(success=puts), max_txn_ops=3)
    cmps = tuple(Compare(R.EQUAL, T.VERSION, b"k%d" % i) for i in range(5))
    with pytest.raises(TooManyOpsError):
        check(TxnRequest(compare=cmps, success=puts[:1]), max_txn_ops=4)


def test_nested_txn_gets_the_remaining_budget() -> None:
    inner = TxnRequest(success=(PutRequest(b"a"), PutRequest(b"b")))
    outer = TxnRequest(success=(inner, PutRequest(b"c")))
    check(outer, max_txn_ops=4)  # outer uses 2, inner may use 2
    with pytest.raises(TooManyOpsError):
        check(outer, max_txn_ops=3)  # inner would get 1


@pytest.mark.parametrize(
    "ops",
    [
        (PutRequest(b"a"), PutRequest(b"a")),
        (PutRequest(b"a"), DeleteRangeRequest(b"a")),
        (DeleteRangeRequest(b"a", b"c"), PutRequest(b"b")),
        (TxnRequest(success=(PutRequest(b"a"),)), PutRequest(b"a")),
        (TxnRequest(success=(DeleteRangeRequest(b"a"),)), PutRequest(b"a")),
        (DeleteRangeRequest(b"a"), TxnRequest(failure=(PutRequest(b"a"),))),
        (TxnRequest(success=(PutRequest(b"a"),)), TxnRequest(failure=(PutRequest(b"a"),))),
    ],
)
def test_duplicate_keys(ops: tuple[object, ...]) -> None:
    with pytest.raises(DuplicateKeyError):
        check(TxnRequest(success=ops))  # type: ignore[arg-type]
    with pytest.raises(DuplicateKeyError):
        check(TxnRequest(failure=ops))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "ops",
    [
        (PutRequest(b"a"), PutRequest(b"b")),
        (DeleteRangeRequest(b"a", b"c"), DeleteRangeRequest(b"b", b"d")),  # deletes may overlap
        (DeleteRangeRequest(b"a", b"c"), PutRequest(b"c")),  # range end is exclusive
        (DeleteRangeRequest(b"a", b"\x00"), PutRequest(b"b")),  # etcd: from-key interval is empty
        (TxnRequest(success=(PutRequest(b"a"),), failure=(PutRequest(b"a"),)),),
        (RangeRequest(b"a"), PutRequest(b"a")),
    ],
)
def test_allowed_overlaps(ops: tuple[object, ...]) -> None:
    check(TxnRequest(success=ops))  # type: ignore[arg-type]


def test_same_key_in_both_branches_of_top_level_is_fine() -> None:
    check(TxnRequest(success=(PutRequest(b"a"),), failure=(PutRequest(b"a"),)))


def test_readonly_and_cost() -> None:
    ro = TxnRequest(success=(RangeRequest(b"a"), TxnRequest(failure=(RangeRequest(b"b"),))))
    assert txn_is_readonly(ro)
    assert txn_cost(ro) == 0
    rw = TxnRequest(failure=(TxnRequest(success=(PutRequest(b"a", b"xyz"),)),))
    assert not txn_is_readonly(rw)
    assert txn_cost(rw) > 3
    assert not txn_is_readonly(TxnRequest(success=(DeleteRangeRequest(b"a"),)))


KV = KeyValue(b"k", create_revision=3, mod_revision=5, version=2, value=b"m", lease=7)


@pytest.mark.parametrize(
    ("cmp", "expected"),
    [
        (Compare(R.EQUAL, T.VERSION, b"k", 2), True),
        (Compare(R.GREATER, T.VERSION, b"k", 1), True),
        (Compare(R.LESS, T.VERSION, b"k", 2), False),
        (Compare(R.NOT_EQUAL, T.CREATE, b"k", 3), False),
        (Compare(R.EQUAL, T.MOD, b"k", 5), True),
        (Compare(R.EQUAL, T.LEASE, b"k", 7), True),
        (Compare(R.EQUAL, T.VALUE, b"k", b"m"), True),
        (Compare(R.GREATER, T.VALUE, b"k", b"l"), True),
        (Compare(R.LESS, T.VALUE, b"k", b"ma"), True),
        (Compare(R.EQUAL, T.VALUE, b"k", 0), False),  # wrong type compares as b""
        (Compare(R.GREATER, T.VALUE, b"k", 0), True),
    ],
)
def test_compare_existing(cmp: Compare, expected: bool) -> None:
    assert compare_kv(cmp, KV) is expected


@pytest.mark.parametrize(
    ("cmp", "expected"),
    [
        (Compare(R.EQUAL, T.VERSION, b"k", 0), True),
        (Compare(R.EQUAL, T.CREATE, b"k", 0), True),
        (Compare(R.EQUAL, T.MOD, b"k", 0), True),
        (Compare(R.EQUAL, T.LEASE, b"k", 0), True),
        (Compare(R.LESS, T.MOD, b"k", 1), True),
        (Compare(R.EQUAL, T.VALUE, b"k", b""), False),  # VALUE on a missing key: always false
        (Compare(R.NOT_EQUAL, T.VALUE, b"k", b"x"), False),
    ],
)
def test_compare_missing_key(cmp: Compare, expected: bool) -> None:
    assert compare_kv(cmp, None) is expected
