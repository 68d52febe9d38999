"""Typed results of the client: frozen dataclasses built from etcd's protobuf responses.

The client owns these records (it does not import kvstore/ or api/service/) so it can talk to
any etcd-compatible server. Each `from_pb` reads only fields that exist in etcd 3.4's API.
Keys and values stay bytes: etcd keys are arbitrary bytes and the client never guesses an
encoding.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from api.proto import kv_pb2, rpc_pb2

__all__ = [
    "Alarm",
    "AlarmType",
    "DeleteResult",
    "Event",
    "EventType",
    "GetResult",
    "HashKV",
    "KeyValue",
    "LeaseGrant",
    "LeaseTimeToLive",
    "Member",
    "PutResult",
    "ResponseHeader",
    "Status",
    "TxnResult",
]


class EventType(enum.Enum):
    PUT = 0
    DELETE = 1


class AlarmType(enum.Enum):
    NONE = 0
    NOSPACE = 1
    CORRUPT = 2


@dataclass(frozen=True, slots=True)
class ResponseHeader:
    cluster_id: int
    member_id: int
    revision: int
    raft_term: int

    @classmethod
    def from_pb(cls, h: rpc_pb2.ResponseHeader) -> ResponseHeader:
        return cls(
            cluster_id=h.cluster_id, member_id=h.member_id, revision=h.revision,
            raft_term=h.raft_term,
        )


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease_id: int

    @classmethod
    def from_pb(cls, kv: kv_pb2.KeyValue) -> KeyValue:
        return cls(
            key=kv.key, value=kv.value, create_revision=kv.create_revision,
            mod_revision=kv.mod_revision, version=kv.version, lease_id=kv.lease,
        )


def _opt_kv(msg: Any, field: str) -> KeyValue | None:
    return KeyValue.from_pb(getattr(msg, field)) if msg.HasField(field) else None


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None

    @classmethod
    def from_pb(cls, ev: kv_pb2.Event) -> Event:
        return cls(type=EventType(ev.type), kv=KeyValue.from_pb(ev.kv), prev_kv=_opt_kv(ev, "prev_kv"))


@dataclass(frozen=True, slots=True)
class GetResult:
    """A Range answer; `count` is the total matching keys even when `limit` cut `kvs`."""

    header: ResponseHeader
    kvs: tuple[KeyValue, ...]
    more: bool
    count: int

    @classmethod
    def from_pb(cls, r: rpc_pb2.RangeResponse) -> GetResult:
        return cls(
            header=ResponseHeader.from_pb(r.header),
            kvs=tuple(KeyValue.from_pb(kv) for kv in r.kvs), more=r.more, count=r.count,
        )

    @property
    def value(self) -> bytes | None:
        """The first key's value, or None (the common single-key case)."""
        return self.kvs[0].value if self.kvs else None


RangeResult = GetResult


@dataclass(frozen=True, slots=True)
class PutResult:
    header: ResponseHeader
    prev_kv: KeyValue | None

    @classmethod
    def from_pb(cls, r: rpc_pb2.PutResponse) -> PutResult:
        return cls(header=ResponseHeader.from_pb(r.header), prev_kv=_opt_kv(r, "prev_kv"))


@dataclass(frozen=True, slots=True)
class DeleteResult:
    header: ResponseHeader
    deleted: int
    prev_kvs: tuple[KeyValue, ...]

    @classmethod
    def from_pb(cls, r: rpc_pb2.DeleteRangeResponse) -> DeleteResult:
        return cls(
            header=ResponseHeader.from_pb(r.header), deleted=r.deleted,
            prev_kvs=tuple(KeyValue.from_pb(kv) for kv in r.prev_kvs),
        )


@dataclass(frozen=True, slots=True)
class TxnResult:
    """`succeeded` tells which branch ran; `responses` are that branch's results in order."""

    header: ResponseHeader
    succeeded: bool
    responses: tuple[GetResult | PutResult | DeleteResult | TxnResult, ...]

    @classmethod
    def from_pb(cls, r: rpc_pb2.TxnResponse) -> TxnResult:
        out: list[GetResult | PutResult | DeleteResult | TxnResult] = []
        for op in r.responses:
            which = op.WhichOneof("response")
            if which == "response_range":
                out.append(GetResult.from_pb(op.response_range))
            elif which == "response_put":
                out.append(PutResult.from_pb(op.response_put))
            elif which == "response_delete_range":
                out.append(DeleteResult.from_pb(op.response_delete_range))
            elif which == "response_txn":
                out.append(TxnResult.from_pb(op.response_txn))
        return cls(
            header=ResponseHeader.from_pb(r.header), succeeded=r.succeeded, responses=tuple(out)
        )


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    header: ResponseHeader
    lease_id: int
    ttl_s: int

    @classmethod
    def from_pb(cls, r: rpc_pb2.LeaseGrantResponse) -> LeaseGrant:
        return cls(header=ResponseHeader.from_pb(r.header), lease_id=r.ID, ttl_s=r.TTL)


@dataclass(frozen=True, slots=True)
class LeaseTimeToLive:
    """`ttl_s` is -1 when the lease does not exist (expired or revoked)."""

    header: ResponseHeader
    lease_id: int
    ttl_s: int
    granted_ttl_s: int
    keys: tuple[bytes, ...]

    @classmethod
    def from_pb(cls, r: rpc_pb2.LeaseTimeToLiveResponse) -> LeaseTimeToLive:
        return cls(
            header=ResponseHeader.from_pb(r.header), lease_id=r.ID, ttl_s=r.TTL,
            granted_ttl_s=r.grantedTTL, keys=tuple(r.keys),
        )


@dataclass(frozen=True, slots=True)
class Member:
    member_id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @classmethod
    def from_pb(cls, m: rpc_pb2.Member) -> Member:
        return cls(
            member_id=m.ID, name=m.name, peer_urls=tuple(m.peerURLs),
            client_urls=tuple(m.clientURLs), is_learner=m.isLearner,
        )


@dataclass(frozen=True, slots=True)
class Status:
    header: ResponseHeader
    version: str
    db_size: int
    db_size_in_use: int
    leader: int
    raft_index: int
    raft_term: int
    raft_applied_index: int
    errors: tuple[str, ...]
    is_learner: bool

    @classmethod
    def from_pb(cls, r: rpc_pb2.StatusResponse) -> Status:
        return cls(
            header=ResponseHeader.from_pb(r.header), version=r.version, db_size=r.dbSize,
            db_size_in_use=r.dbSizeInUse, leader=r.leader, raft_index=r.raftIndex,
            raft_term=r.raftTerm, raft_applied_index=r.raftAppliedIndex,
            errors=tuple(r.errors), is_learner=r.isLearner,
        )


@dataclass(frozen=True, slots=True)
class HashKV:
    header: ResponseHeader
    hash: int
    compact_revision: int

    @classmethod
    def from_pb(cls, r: rpc_pb2.HashKVResponse) -> HashKV:
        return cls(
            header=ResponseHeader.from_pb(r.header), hash=r.hash,
            compact_revision=r.compact_revision,
        )


@dataclass(frozen=True, slots=True)
class Alarm:
    member_id: int
    alarm: AlarmType

    @classmethod
    def from_pb(cls, a: rpc_pb2.AlarmMember) -> Alarm:
        return cls(member_id=a.memberID, alarm=AlarmType(a.alarm))
