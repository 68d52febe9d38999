"""Typed errors of the client, mapped from a gRPC status in ONE table.

etcd's servers put a fixed description on every error status and clientv3 turns it back into
a typed error by matching that string (rpctypes.errStringToError); the status code alone is
ambiguous (UNAVAILABLE is both "no leader" and "connection refused"). `from_status(code,
message)` therefore looks the *message* up first in `_TABLE` and falls back on the code for
messages it does not know (another server version, a transport failure):

    EtcdError(code, message)                     the base: grpc code name + description
    |-- KeyNotFoundError, EmptyKeyError, ValueProvidedError, LeaseProvidedError,
    |   TooManyOpsError, DuplicateKeyError, RequestTooLargeError   (INVALID_ARGUMENT)
    |-- CompactedError, FutureRevisionError                        (OUT_OF_RANGE)
    |-- LeaseNotFoundError, LeaseExistsError, LeaseTTLTooLargeError
    |-- NoSpaceError, TooManyRequestsError                         (RESOURCE_EXHAUSTED)
    |-- MemberNotFoundError, MemberExistsError, PeerURLExistsError, MemberBadURLsError,
    |   NotEnoughStartedMembersError, MemberNotLearnerError, LearnerNotReadyError,
    |   TooManyLearnersError
    |-- NotLeaderError, BadLeaderTransfereeError
    |-- PermissionDeniedError, AuthFailedError, AuthNotEnabledError, InvalidAuthTokenError
    |-- CorruptError                                               (DATA_LOSS)
    |-- UnavailableError                                           (UNAVAILABLE, transient)
    |   |-- NoLeaderError, LeaderChangedError, StoppedError, NotCapableError,
    |   |   UnhealthyClusterError, NotSupportedForLearnerError
    |   |-- RequestTimeoutError                                    ("request timed out...")
    |   `-- ConnectionFailedError   the RPC never reached a server (refused, unreachable)
    |-- DeadlineExceededError       the client's own per-call timeout (also a TimeoutError)
    |-- CanceledError
    `-- WatchCanceledError          the server cancelled a watch for a reason it gave

Retry rules (see _connection.py) are decided from these classes, never from strings again.
"""

from __future__ import annotations

import builtins

import grpc

__all__ = [
    "AuthFailedError",
    "AuthNotEnabledError",
    "BadLeaderTransfereeError",
    "CanceledError",
    "CompactedError",
    "ConnectionFailedError",
    "CorruptError",
    "DeadlineExceededError",
    "DuplicateKeyError",
    "EmptyKeyError",
    "EtcdError",
    "FutureRevisionError",
    "InvalidAuthTokenError",
    "KeyNotFoundError",
    "LeaderChangedError",
    "LearnerNotReadyError",
    "LeaseExistsError",
    "LeaseNotFoundError",
    "LeaseProvidedError",
    "LeaseTTLTooLargeError",
    "MemberBadURLsError",
    "MemberExistsError",
    "MemberNotFoundError",
    "MemberNotLearnerError",
    "NoLeaderError",
    "NoSpaceError",
    "NotCapableError",
    "NotEnoughStartedMembersError",
    "NotLeaderError",
    "NotSupportedForLearnerError",
    "PeerURLExistsError",
    "PermissionDeniedError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "StoppedError",
    "TooManyLearnersError",
    "TooManyOpsError",
    "TooManyRequestsError",
    "UnavailableError",
    "UnhealthyClusterError",
    "ValueProvidedError",
    "WatchCanceledError",
    "from_rpc_error",
    "from_status",
]


class EtcdError(Exception):
    """An error answered by (or on the way to) an etcd-compatible server.

    `code` is the gRPC status code name ("OUT_OF_RANGE"), `message` the server's description.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class KeyNotFoundError(EtcdError): ...
class EmptyKeyError(EtcdError): ...
class ValueProvidedError(EtcdError): ...
class LeaseProvidedError(EtcdError): ...
class TooManyOpsError(EtcdError): ...
class DuplicateKeyError(EtcdError): ...
class RequestTooLargeError(EtcdError): ...
class CompactedError(EtcdError): ...
class FutureRevisionError(EtcdError): ...
class LeaseNotFoundError(EtcdError): ...
class LeaseExistsError(EtcdError): ...
class LeaseTTLTooLargeError(EtcdError): ...
class NoSpaceError(EtcdError): ...
class TooManyRequestsError(EtcdError): ...
class MemberNotFoundError(EtcdError): ...
class MemberExistsError(EtcdError): ...
class PeerURLExistsError(EtcdError): ...
class MemberBadURLsError(EtcdError): ...
class NotEnoughStartedMembersError(EtcdError): ...
class MemberNotLearnerError(EtcdError): ...
class LearnerNotReadyError(EtcdError): ...
class TooManyLearnersError(EtcdError): ...
class NotLeaderError(EtcdError): ...
class BadLeaderTransfereeError(EtcdError): ...
class PermissionDeniedError(EtcdError): ...
class AuthFailedError(EtcdError): ...
class AuthNotEnabledError(EtcdError): ...
class InvalidAuthTokenError(EtcdError): ...
class CorruptError(EtcdError): ...
class UnavailableError(EtcdError): ...
class NoLeaderError(UnavailableError): ...
class LeaderChangedError(UnavailableError): ...
class StoppedError(UnavailableError): ...
class NotCapableError(UnavailableError): ...
class UnhealthyClusterError(UnavailableError): ...
class NotSupportedForLearnerError(UnavailableError): ...
class RequestTimeoutError(UnavailableError): ...
class ConnectionFailedError(UnavailableError): ...
class DeadlineExceededError(EtcdError, builtins.TimeoutError): ...
class CanceledError(EtcdError): ...
class WatchCanceledError(EtcdError): ...


# etcd 3.4 rpctypes descriptions -> class. The code is not part of the key: etcd sends each
# description with one fixed code, and matching on the text alone also survives proxies that
# rewrite codes.
_TABLE: dict[str, type[EtcdError]] = {
    "etcdserver: key is not provided": EmptyKeyError,
    "etcdserver: key not found": KeyNotFoundError,
    "etcdserver: value is provided": ValueProvidedError,
    "etcdserver: lease is provided": LeaseProvidedError,
    "etcdserver: too many operations in txn request": TooManyOpsError,
    "etcdserver: duplicate key given in txn request": DuplicateKeyError,
    "etcdserver: request is too large": RequestTooLargeError,
    "etcdserver: mvcc: required revision has been compacted": CompactedError,
    "etcdserver: mvcc: required revision is a future revision": FutureRevisionError,
    "etcdserver: requested lease not found": LeaseNotFoundError,
    "etcdserver: lease already exists": LeaseExistsError,
    "etcdserver: too large lease TTL": LeaseTTLTooLargeError,
    "etcdserver: mvcc: database space exceeded": NoSpaceError,
    "etcdserver: too many requests": TooManyRequestsError,
    "etcdserver: member not found": MemberNotFoundError,
    "etcdserver: member ID already exist": MemberExistsError,
    "etcdserver: Peer URLs already exists": PeerURLExistsError,
    "etcdserver: given member URLs are invalid": MemberBadURLsError,
    "etcdserver: re-configuration failed due to not enough started members": (
        NotEnoughStartedMembersError
    ),
    "etcdserver: can only promote a learner member": MemberNotLearnerError,
    "etcdserver: can only promote a learner member which is in sync with leader": (
        LearnerNotReadyError
    ),
    "etcdserver: too many learner members in cluster": TooManyLearnersError,
    "etcdserver: not leader": NotLeaderError,
    "etcdserver: bad leader transferee": BadLeaderTransfereeError,
    "etcdserver: permission denied": PermissionDeniedError,
    "etcdserver: authentication failed, invalid user ID or password": AuthFailedError,
    "etcdserver: authentication is not enabled": AuthNotEnabledError,
    "etcdserver: invalid auth token": InvalidAuthTokenError,
    "etcdserver: corrupt cluster": CorruptError,
    "etcdserver: no leader": NoLeaderError,
    "etcdserver: leader changed": LeaderChangedError,
    "etcdserver: server stopped": StoppedError,
    "etcdserver: not capable": NotCapableError,
    "etcdserver: unhealthy cluster": UnhealthyClusterError,
    "etcdserver: rpc not supported for learner": NotSupportedForLearnerError,
    "etcdserver: request timed out": RequestTimeoutError,
    "etcdserver: request timed out, possibly due to previous leader failure": (
        RequestTimeoutError
    ),
    "etcdserver: request timed out, possibly due to connection lost": RequestTimeoutError,
    # Go's context errors: etcd answers them with code UNKNOWN when the request's own deadline
    # (sent as grpc-timeout) expires inside the server, or the call was cancelled.
    "context deadline exceeded": DeadlineExceededError,
    "context canceled": CanceledError,
}

# Fallback by code for descriptions not in the table.
_BY_CODE: dict[str, type[EtcdError]] = {
    "UNAVAILABLE": UnavailableError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
    "CANCELLED": CanceledError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "DATA_LOSS": CorruptError,
}

# gRPC's own descriptions when no connection could be made: the request was never sent, so
# even a write may be retried elsewhere. Matched as substrings (grpc-core wording varies).
_NOT_SENT_MARKERS = (
    "failed to connect to all addresses",
    "connection refused",
    "name resolution",
    "dns resolution failed",
    "no route to host",
)


def from_status(code: str, message: str) -> EtcdError:
    """The typed error for a gRPC status (code name, description)."""
    cls = _TABLE.get(message)
    if cls is None:
        cls = _BY_CODE.get(code, EtcdError)
        if code == "UNAVAILABLE" and any(m in message.lower() for m in _NOT_SENT_MARKERS):
            cls = ConnectionFailedError
    return cls(code, message)


def from_rpc_error(err: grpc.RpcError) -> EtcdError:
    """Map a grpc(.aio) RpcError; keeps it as __cause__ when raised with `from`."""
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    code = code_fn() if callable(code_fn) else None
    details = details_fn() if callable(details_fn) else None
    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    return from_status(name, details if isinstance(details, str) else str(err))


class ClientInvariantError(AssertionError):
    """A broken internal invariant of the client: a bug, never a server answer.

    Raised by explicit checks (never `assert`, which vanishes under -O)."""
