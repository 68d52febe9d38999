"""gRPC status -> typed error: one table keyed by etcd's descriptions, code as fallback."""

from __future__ import annotations

import builtins

import grpc
import pytest

from api.client import (
    CompactedError,
    ConnectionFailedError,
    DeadlineExceededError,
    DuplicateKeyError,
    EtcdError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaderChangedError,
    LearnerNotReadyError,
    LeaseNotFoundError,
    MemberNotFoundError,
    NoLeaderError,
    NoSpaceError,
    NotSupportedForLearnerError,
    PermissionDeniedError,
    RequestTimeoutError,
    RequestTooLargeError,
    TooManyOpsError,
    UnavailableError,
)
from api.client._connection import may_retry
from api.client._errors import _TABLE, from_rpc_error, from_status

# (code, etcd 3.4 description, expected class): the strings as etcd's rpctypes send them.
CASES = [
    ("OUT_OF_RANGE", "etcdserver: mvcc: required revision has been compacted", CompactedError),
    ("OUT_OF_RANGE", "etcdserver: mvcc: required revision is a future revision",
     FutureRevisionError),
    ("NOT_FOUND", "etcdserver: requested lease not found", LeaseNotFoundError),
    ("UNAVAILABLE", "etcdserver: no leader", NoLeaderError),
    ("INVALID_ARGUMENT", "etcdserver: key not found", KeyNotFoundError),
    ("INVALID_ARGUMENT", "etcdserver: too many operations in txn request", TooManyOpsError),
    ("INVALID_ARGUMENT", "etcdserver: duplicate key given in txn request", DuplicateKeyError),
    ("INVALID_ARGUMENT", "etcdserver: request is too large", RequestTooLargeError),
    ("RESOURCE_EXHAUSTED", "etcdserver: mvcc: database space exceeded", NoSpaceError),
    ("UNAVAILABLE", "etcdserver: request timed out", RequestTimeoutError),
    ("UNAVAILABLE", "etcdserver: request timed out, possibly due to previous leader failure",
     RequestTimeoutError),
    ("UNAVAILABLE", "etcdserver: leader changed", LeaderChangedError),
    ("NOT_FOUND", "etcdserver: member not found", MemberNotFoundError),
    ("FAILED_PRECONDITION",
     "etcdserver: can only promote a learner member which is in sync with leader",
     LearnerNotReadyError),
    ("UNAVAILABLE", "etcdserver: rpc not supported for learner", NotSupportedForLearnerError),
    ("PERMISSION_DENIED", "etcdserver: permission denied", PermissionDeniedError),
    # Not in the table: decided by the code.
    ("UNAVAILABLE", "failed to connect to all addresses; last error: UNKNOWN: "
     "ipv4:127.0.0.1:1: Failed to connect to remote host: Connection refused",
     ConnectionFailedError),
    ("UNAVAILABLE", "Socket closed", UnavailableError),
    ("DEADLINE_EXCEEDED", "Deadline Exceeded", DeadlineExceededError),
    ("UNKNOWN", "context deadline exceeded", DeadlineExceededError),
    ("UNKNOWN", "something new", EtcdError),
]


@pytest.mark.parametrize(("code", "message", "cls"), CASES)
def test_status_maps_to_class(code: str, message: str, cls: type[EtcdError]) -> None:
    err = from_status(code, message)
    assert type(err) is cls
    assert err.code == code and err.message == message and str(err) == message


def test_every_table_entry_is_an_etcd_description_with_a_specific_class() -> None:
    for message, cls in _TABLE.items():
        assert message.startswith(("etcdserver: ", "context ")), message
        assert cls is not EtcdError and issubclass(cls, EtcdError)


def test_deadline_is_also_a_builtin_timeout() -> None:
    assert isinstance(from_status("DEADLINE_EXCEEDED", "x"), builtins.TimeoutError)


class _FakeRpcError(grpc.RpcError):
    """A real RpcError subclass carrying a status (grpc's own errors need a live call)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_from_rpc_error_reads_code_and_details() -> None:
    err = from_rpc_error(_FakeRpcError(grpc.StatusCode.OUT_OF_RANGE,
                                       "etcdserver: mvcc: required revision has been compacted"))
    assert isinstance(err, CompactedError) and err.code == "OUT_OF_RANGE"


@pytest.mark.parametrize(
    ("code", "message", "read", "write"),
    [
        ("UNAVAILABLE", "etcdserver: no leader", True, True),
        ("UNAVAILABLE", "failed to connect to all addresses", True, True),
        ("UNAVAILABLE", "etcdserver: request timed out", True, False),
        ("UNAVAILABLE", "etcdserver: leader changed", True, False),
        ("UNAVAILABLE", "Socket closed", True, False),
        ("DEADLINE_EXCEEDED", "Deadline Exceeded", False, False),
        ("OUT_OF_RANGE", "etcdserver: mvcc: required revision has been compacted", False, False),
    ],
)
def test_retry_rule(code: str, message: str, read: bool, write: bool) -> None:
    err = from_status(code, message)
    assert may_retry(err, read_only=True) is read
    assert may_retry(err, read_only=False) is write
