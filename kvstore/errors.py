"""Errors raised by kvstore, with etcd's exact messages and the gRPC status code name to use.

clientv3 maps gRPC status *descriptions* back to typed errors, so `str(error)` is etcd's
message byte for byte and `error.grpc_code` names the status code (api/errors.py maps the
whole tree with one table: `getattr(grpc.StatusCode, err.grpc_code)`).

    KvError                                  base of everything below
    |-- RequestError                         the request can never succeed as written
    |   |-- EmptyKeyError                    INVALID_ARGUMENT  "etcdserver: key is not provided"
    |   |-- KeyNotFoundError                 INVALID_ARGUMENT  "etcdserver: key not found"
    |   |-- ValueProvidedError               INVALID_ARGUMENT  "etcdserver: value is provided"
    |   |-- LeaseProvidedError               INVALID_ARGUMENT  "etcdserver: lease is provided"
    |   |-- DuplicateKeyError                INVALID_ARGUMENT  "etcdserver: duplicate key given in txn request"
    |   |-- TooManyOpsError                  INVALID_ARGUMENT  "etcdserver: too many operations in txn request"
    |   `-- RequestTooLargeError             INVALID_ARGUMENT  "etcdserver: request is too large"
    |                                            (a key longer than LMDB's key limit allows)
    |-- RevisionError
    |   |-- CompactedError                   OUT_OF_RANGE "etcdserver: mvcc: required revision has been compacted"
    |   `-- FutureRevisionError              OUT_OF_RANGE "etcdserver: mvcc: required revision is a future revision"
    |-- LeaseError
    |   |-- LeaseNotFoundError               NOT_FOUND           "etcdserver: requested lease not found"
    |   |-- LeaseExistsError                 FAILED_PRECONDITION "etcdserver: lease already exists"
    |   `-- LeaseTTLTooLargeError            OUT_OF_RANGE        "etcdserver: too large lease TTL"
    |-- NoSpaceError                         RESOURCE_EXHAUSTED  "etcdserver: mvcc: database space exceeded"
    `-- StorageError                         INTERNAL: the LMDB environment cannot be trusted
        |-- StoreClosedError                    (used after close())
        `-- CorruptRecordError                  (a record fails to decode; fail-stop)

Request, revision, lease and space errors are answers to one client request: apply returns
them as the result of that entry and carries on with the batch. StorageError is a disk or
programmer fault: the node must stop (STYLE.md §5, "storage errors are fail-stop").
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CompactedError",
    "CorruptRecordError",
    "DuplicateKeyError",
    "EmptyKeyError",
    "FutureRevisionError",
    "KeyNotFoundError",
    "KvError",
    "LeaseError",
    "LeaseExistsError",
    "LeaseNotFoundError",
    "LeaseProvidedError",
    "LeaseTTLTooLargeError",
    "NoSpaceError",
    "RequestError",
    "RequestTooLargeError",
    "RevisionError",
    "StorageError",
    "StoreClosedError",
    "TooManyOpsError",
    "ValueProvidedError",
    "invariant",
]


class KvError(Exception):
    """Base of all kvstore errors. `str(err)` is etcd's message; `grpc_code` a StatusCode name."""

    message: ClassVar[str] = "etcdserver: kvstore error"
    grpc_code: ClassVar[str] = "UNKNOWN"

    def __init__(self, detail: str | None = None) -> None:
        # etcd's clients match on the exact text, so the message never carries extra detail.
        super().__init__(self.message)
        self.detail = detail

    def __str__(self) -> str:
        return self.message

    def __eq__(self, other: object) -> bool:
        # Results of two applies compare equal when they failed the same way (tests, replay).
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class RequestError(KvError):
    grpc_code = "INVALID_ARGUMENT"


class EmptyKeyError(RequestError):
    message = "etcdserver: key is not provided"


class KeyNotFoundError(RequestError):
    message = "etcdserver: key not found"


class ValueProvidedError(RequestError):
    message = "etcdserver: value is provided"


class LeaseProvidedError(RequestError):
    message = "etcdserver: lease is provided"


class DuplicateKeyError(RequestError):
    message = "etcdserver: duplicate key given in txn request"


class TooManyOpsError(RequestError):
    message = "etcdserver: too many operations in txn request"


class RequestTooLargeError(RequestError):
    message = "etcdserver: request is too large"


class RevisionError(KvError):
    grpc_code = "OUT_OF_RANGE"


class CompactedError(RevisionError):
    message = "etcdserver: mvcc: required revision has been compacted"


class FutureRevisionError(RevisionError):
    message = "etcdserver: mvcc: required revision is a future revision"


class LeaseError(KvError):
    pass


class LeaseNotFoundError(LeaseError):
    message = "etcdserver: requested lease not found"
    grpc_code = "NOT_FOUND"


class LeaseExistsError(LeaseError):
    message = "etcdserver: lease already exists"
    grpc_code = "FAILED_PRECONDITION"


class LeaseTTLTooLargeError(LeaseError):
    message = "etcdserver: too large lease TTL"
    grpc_code = "OUT_OF_RANGE"


class NoSpaceError(KvError):
    message = "etcdserver: mvcc: database space exceeded"
    grpc_code = "RESOURCE_EXHAUSTED"


class StorageError(KvError):
    message = "etcdserver: kvstore storage failure"
    grpc_code = "INTERNAL"

    def __str__(self) -> str:
        return self.message if self.detail is None else f"{self.message}: {self.detail}"


class StoreClosedError(StorageError):
    message = "etcdserver: kvstore is closed"


class CorruptRecordError(StorageError):
    message = "etcdserver: kvstore record is corrupt"


class InvariantError(AssertionError):
    """A programmer error: kvstore's own bookkeeping is inconsistent. Never caught."""


def invariant(cond: bool, msg: str) -> None:
    """Always-on check (unlike `assert`, survives `python -O`)."""
    if not cond:
        raise InvariantError(msg)
