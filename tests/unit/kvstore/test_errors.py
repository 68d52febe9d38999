"""Every kvstore error carries etcd's exact message and gRPC code (clients match on them)."""

from __future__ import annotations

import pytest

from kvstore import errors as e

TABLE = [
    (e.EmptyKeyError, "etcdserver: key is not provided", "INVALID_ARGUMENT"),
    (e.KeyNotFoundError, "etcdserver: key not found", "INVALID_ARGUMENT"),
    (e.ValueProvidedError, "etcdserver: value is provided", "INVALID_ARGUMENT"),
    (e.LeaseProvidedError, "etcdserver: lease is provided", "INVALID_ARGUMENT"),
    (e.DuplicateKeyError, "etcdserver: duplicate key given in txn request", "INVALID_ARGUMENT"),
    (e.TooManyOpsError, "etcdserver: too many operations in txn request", "INVALID_ARGUMENT"),
    (e.RequestTooLargeError, "etcdserver: request is too large", "INVALID_ARGUMENT"),
    (e.CompactedError, "etcdserver: mvcc: required revision has been compacted", "OUT_OF_RANGE"),
    (e.FutureRevisionError, "etcdserver: mvcc: required revision is a future revision",
     "OUT_OF_RANGE"),
    (e.LeaseNotFoundError, "etcdserver: requested lease not found", "NOT_FOUND"),
    (e.LeaseExistsError, "etcdserver: lease already exists", "FAILED_PRECONDITION"),
    (e.LeaseTTLTooLargeError, "etcdserver: too large lease TTL", "OUT_OF_RANGE"),
    (e.NoSpaceError, "etcdserver: mvcc: database space exceeded", "RESOURCE_EXHAUSTED"),
]


@pytest.mark.parametrize(("cls", "message", "code"), TABLE)
def test_message_and_code(cls: type[e.KvError], message: str, code: str) -> None:
    err = cls("some detail that must not leak into the message")
    assert str(err) == message
    assert err.args == (message,)
    assert err.grpc_code == code
    assert isinstance(err, e.KvError)


def test_storage_errors_show_detail_and_are_internal() -> None:
    err = e.CorruptRecordError("bad bytes")
    assert isinstance(err, e.StorageError)
    assert err.grpc_code == "INTERNAL"
    assert "bad bytes" in str(err)


def test_errors_compare_by_type() -> None:
    assert e.CompactedError() == e.CompactedError("x")
    assert e.CompactedError() != e.FutureRevisionError()


def test_invariant_is_always_on() -> None:
    e.invariant(True, "fine")
    with pytest.raises(AssertionError, match="broken"):
        e.invariant(False, "broken")
