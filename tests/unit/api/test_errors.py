"""The error table: every domain error maps to etcd's status code and exact message."""

from __future__ import annotations

import asyncio
import inspect

import grpc
import pytest

import api.errors as api_errors
import api.service.backend as backend
import kvstore.errors as kv_errors
from api.errors import to_status
from kvstore.watch import WatchLimitError

S = grpc.StatusCode

# (error, code, message): etcd 3.4's rpctypes for each error we can raise.
TABLE = [
    (kv_errors.EmptyKeyError(), S.INVALID_ARGUMENT, "etcdserver: key is not provided"),
    (kv_errors.KeyNotFoundError(), S.INVALID_ARGUMENT, "etcdserver: key not found"),
    (kv_errors.ValueProvidedError(), S.INVALID_ARGUMENT, "etcdserver: value is provided"),
    (kv_errors.LeaseProvidedError(), S.INVALID_ARGUMENT, "etcdserver: lease is provided"),
    (kv_errors.DuplicateKeyError(), S.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request"),
    (kv_errors.TooManyOpsError(), S.INVALID_ARGUMENT, "etcdserver: too many operations in txn request"),
    (kv_errors.RequestTooLargeError("big key"), S.INVALID_ARGUMENT, "etcdserver: request is too large"),
    (kv_errors.CompactedError(), S.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"),
    (kv_errors.FutureRevisionError(), S.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"),
    (kv_errors.LeaseNotFoundError(), S.NOT_FOUND, "etcdserver: requested lease not found"),
    (kv_errors.LeaseExistsError(), S.FAILED_PRECONDITION, "etcdserver: lease already exists"),
    (kv_errors.LeaseTTLTooLargeError(), S.OUT_OF_RANGE, "etcdserver: too large lease TTL"),
    (kv_errors.NoSpaceError(), S.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"),
    (backend.NoLeaderError(), S.UNAVAILABLE, "etcdserver: no leader"),
    (backend.LeaderChangedError(), S.UNAVAILABLE, "etcdserver: leader changed"),
    (backend.RequestTimeoutError(), S.UNAVAILABLE, "etcdserver: request timed out"),
    (backend.StoppedError(), S.UNAVAILABLE, "etcdserver: server stopped"),
    (backend.NotLeaderError(), S.FAILED_PRECONDITION, "etcdserver: not leader"),
    (backend.BadLeaderTransfereeError(), S.FAILED_PRECONDITION, "etcdserver: bad leader transferee"),
    (backend.MemberNotFoundError(), S.NOT_FOUND, "etcdserver: member not found"),
    (backend.NoSpaceAlarmError(), S.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"),
    (backend.PeerURLExistsError(), S.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"),
    (backend.TooManyLearnersError(), S.FAILED_PRECONDITION,
     "etcdserver: too many learner members in cluster"),
    (backend.LearnerNotReadyError(), S.FAILED_PRECONDITION,
     "etcdserver: can only promote a learner member which is in sync with leader"),
    (backend.NotLearnerError(), S.FAILED_PRECONDITION, "etcdserver: can only promote a learner member"),
    (backend.UnhealthyClusterError(), S.UNAVAILABLE, "etcdserver: unhealthy cluster"),
    (backend.NotEnoughStartedMembersError(), S.FAILED_PRECONDITION,
     "etcdserver: re-configuration failed due to not enough started members"),
    (backend.LearnerNotSupportedError(), S.UNAVAILABLE, "etcdserver: rpc not supported for learner"),
    (backend.MemberRemovedError(), S.FAILED_PRECONDITION,
     "etcdserver: the member has been permanently removed from the cluster"),
    (api_errors.RequestTooLargeApiError(), S.INVALID_ARGUMENT, "etcdserver: request is too large"),
    (api_errors.AuthNotEnabledError(), S.FAILED_PRECONDITION, "etcdserver: authentication is not enabled"),
    (api_errors.RootUserNotExistError(), S.FAILED_PRECONDITION, "etcdserver: root user does not exist"),
    (api_errors.UserNotFoundError(), S.FAILED_PRECONDITION, "etcdserver: user name not found"),
    (api_errors.RoleNotFoundError(), S.FAILED_PRECONDITION, "etcdserver: role name not found"),
    (api_errors.NotSupportedError("etcdserver: x"), S.UNIMPLEMENTED, "etcdserver: x"),
    (WatchLimitError(), S.RESOURCE_EXHAUSTED, "etcdserver: too many watchers"),
]


@pytest.mark.parametrize(("error", "code", "message"), TABLE, ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "")
def test_table(error: Exception, code: grpc.StatusCode, message: str) -> None:
    assert to_status(error) == (code, message)


def _concrete_errors(module: object, base: type) -> list[type]:
    return [
        cls for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, base) and cls.__module__ == getattr(module, "__name__", None)
    ]


def test_every_error_class_has_a_valid_status_code() -> None:
    # A misspelt grpc_code would silently become UNKNOWN; check every class of the trees.
    classes = (
        _concrete_errors(kv_errors, kv_errors.KvError)
        + _concrete_errors(backend, backend.NodeError)
        + _concrete_errors(api_errors, api_errors.ApiError)
    )
    assert len(classes) > 25
    for cls in classes:
        assert isinstance(getattr(grpc.StatusCode, cls.grpc_code, None), grpc.StatusCode), cls


def test_every_raisable_error_is_in_the_table() -> None:
    tabled = {type(e) for e, _, _ in TABLE}
    leaves = [
        cls for cls in _concrete_errors(kv_errors, kv_errors.KvError)
        + _concrete_errors(backend, backend.NodeError)
        + _concrete_errors(api_errors, api_errors.ApiError)
        if not cls.__subclasses__()
    ]
    internal = {kv_errors.StoreClosedError, kv_errors.CorruptRecordError, backend.UnsupportedError}
    missing = {c.__name__ for c in leaves if c not in tabled and c not in internal}
    assert not missing


def test_storage_errors_are_internal_with_detail() -> None:
    code, message = to_status(kv_errors.CorruptRecordError("key db at 0x10"))
    assert code is S.INTERNAL and message == "etcdserver: kvstore record is corrupt: key db at 0x10"


def test_timeouts_and_unknown_errors() -> None:
    assert to_status(TimeoutError()) == (S.UNAVAILABLE, "etcdserver: request timed out")
    assert to_status(asyncio.CancelledError()) == (S.CANCELLED, "context canceled")
    assert to_status(RuntimeError("boom")) == (S.UNKNOWN, "boom")
    assert to_status(RuntimeError()) == (S.UNKNOWN, "RuntimeError")


def test_bad_grpc_code_name_degrades_to_unknown() -> None:
    class Misspelt(api_errors.ApiError):
        message = "etcdserver: oops"
        grpc_code = "NOT_A_CODE"

    assert to_status(Misspelt()) == (S.UNKNOWN, "etcdserver: oops")
