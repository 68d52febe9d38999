"""Membership and alarms of the cluster as the applied log defines them.

Small and replicated through Raft: the bootstrap snapshot holds the initial members, and
each snapshot file's body holds this state (msgpack, versioned), so a restart restores it
from the snapshot and re-applies the entries after it (every operation here is idempotent,
which is what makes that replay safe). The key-value data is not in the snapshot body: it
lives in LMDB, which is synced before a snapshot is taken (see disk.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack

from api.server.codec import AlarmRequest, MemberAttributes

_FORMAT_VERSION = 1
ALARM_NONE, ALARM_NOSPACE, ALARM_CORRUPT = 0, 1, 2
ALARM_GET, ALARM_ACTIVATE, ALARM_DEACTIVATE = 0, 1, 2
ALARM_NAMES = {ALARM_NOSPACE: "NOSPACE", ALARM_CORRUPT: "CORRUPT"}


@dataclass(slots=True)
class MemberRecord:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...] = ()
    is_learner: bool = False


@dataclass(slots=True)
class ClusterState:
    cluster_id: int
    members: dict[int, MemberRecord] = field(default_factory=dict)
    # (member_id, alarm type) pairs that are active.
    alarms: set[tuple[int, int]] = field(default_factory=set)

    def apply_alarm(self, req: AlarmRequest) -> list[tuple[int, int]]:
        """Apply an activate/deactivate; returns the alarms the request affected (etcd
        answers a deactivate with the alarm it cleared, and an activate with the new one)."""
        pair = (req.member_id, req.alarm)
        if req.action == ALARM_ACTIVATE and req.alarm != ALARM_NONE:
            self.alarms.add(pair)
            return [pair]
        if req.action == ALARM_DEACTIVATE and pair in self.alarms:
            self.alarms.discard(pair)
            return [pair]
        return []

    def apply_attributes(self, req: MemberAttributes) -> None:
        member = self.members.get(req.member_id)
        if member is not None:
            member.name = req.name
            member.client_urls = tuple(req.client_urls)

    def has_alarm(self, alarm: int) -> bool:
        # Asked on every proposal; almost always there is no alarm at all.
        return bool(self.alarms) and any(a == alarm for _m, a in self.alarms)

    def encode(self) -> bytes:
        members = [
            [m.id, m.name, list(m.peer_urls), list(m.client_urls), m.is_learner]
            for m in sorted(self.members.values(), key=lambda m: m.id)
        ]
        alarms = sorted(self.alarms)
        return msgpack.packb([_FORMAT_VERSION, self.cluster_id, members, alarms], use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, data: bytes) -> ClusterState:
        version, cluster_id, members, alarms = msgpack.unpackb(data, raw=False)
        if version != _FORMAT_VERSION:
            raise ValueError(f"unsupported cluster state version {version}")
        state = cls(cluster_id=cluster_id)
        for mid, name, peers, clients, learner in members:
            state.members[mid] = MemberRecord(mid, name, tuple(peers), tuple(clients), learner)
        state.alarms = {(m, a) for m, a in alarms}
        return state
