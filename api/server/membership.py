"""Membership changes: the checks etcd makes before proposing one, and applying one.

A change is a raft ConfChange whose `context` is `msgpack([VERSION, proposal_id, member])`
with `member = [id, name, peer_urls, client_urls, is_learner]` (or None for a removal), so
every member applies the same record at the same log position, and the proposer can find
its waiting client. Applying is idempotent (an add of a known member overwrites it, a
removal of an unknown one does nothing) because a restart re-applies the entries after the
last snapshot. Peer-URL updates are not raft conf changes (the voter set does not change):
they travel as a normal entry (codec.MemberUpdate).

Checks (etcd 3.4's, with its messages): a peer URL may belong to one member only; at most
one learner; promoting needs a learner whose log is within 90% of the leader's; with
--strict-reconfig-check, adding a voter or removing one must leave a quorum of members that
the leader has heard from recently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgpack

from api.server.cluster_state import ClusterState, MemberRecord
from api.service.backend import (
    LearnerNotReadyError,
    MemberNotFoundError,
    NotEnoughStartedMembersError,
    NotLearnerError,
    PeerURLExistsError,
    TooManyLearnersError,
    UnhealthyClusterError,
)
from raft import ConfChange, ConfChangeType

_VERSION = 1
MAX_LEARNERS = 1
LEARNER_READY_FRACTION = 0.9


def encode_context(proposal_id: int, member: MemberRecord | None) -> bytes:
    record = (
        None
        if member is None
        else [member.id, member.name, list(member.peer_urls), list(member.client_urls), member.is_learner]
    )
    return msgpack.packb([_VERSION, proposal_id, record])  # type: ignore[no-any-return]


def decode_context(context: bytes) -> tuple[int, MemberRecord | None]:
    if not context:
        return 0, None
    version, proposal_id, record = msgpack.unpackb(context, raw=False)
    if version != _VERSION:
        raise ValueError(f"unsupported membership context version {version}")
    if record is None:
        return proposal_id, None
    mid, name, peers, clients, learner = record
    return proposal_id, MemberRecord(mid, name, tuple(peers), tuple(clients), bool(learner))


def apply_change(cluster: ClusterState, change: ConfChange, member: MemberRecord | None) -> None:
    """Apply a committed ConfChange to the member records (idempotent)."""
    if change.type is ConfChangeType.REMOVE_NODE:
        cluster.members.pop(change.node_id, None)
        cluster.alarms = {(m, a) for m, a in cluster.alarms if m != change.node_id}
        return
    existing = cluster.members.get(change.node_id)
    learner = change.type is ConfChangeType.ADD_LEARNER_NODE
    if existing is not None:
        existing.is_learner = learner
        if member is not None and member.peer_urls:
            existing.peer_urls = member.peer_urls
        return
    if member is None:
        member = MemberRecord(change.node_id, "", ())
    member.is_learner = learner
    cluster.members[change.node_id] = member


def check_add(cluster: ClusterState, peer_urls: Sequence[str], *, is_learner: bool) -> None:
    taken = {url for m in cluster.members.values() for url in m.peer_urls}
    if any(url in taken for url in peer_urls):
        raise PeerURLExistsError()
    if is_learner and sum(m.is_learner for m in cluster.members.values()) >= MAX_LEARNERS:
        raise TooManyLearnersError()


def check_promote(
    cluster: ClusterState, member_id: int, *, learner_match: int, leader_match: int
) -> None:
    member = cluster.members.get(member_id)
    if member is None:
        raise MemberNotFoundError()
    if not member.is_learner:
        raise NotLearnerError()
    if learner_match < leader_match * LEARNER_READY_FRACTION:
        raise LearnerNotReadyError()


def _voters(cluster: ClusterState) -> set[int]:
    return {m.id for m in cluster.members.values() if not m.is_learner}


def check_strict_add(cluster: ClusterState, active: Mapping[int, bool]) -> None:
    """etcd's mayAddMember: the new voter (not started yet) must not cost the quorum."""
    voters = _voters(cluster)
    started = sum(1 for v in voters if active.get(v, False))
    if started < (len(voters) + 1) // 2 + 1:
        raise NotEnoughStartedMembersError()


def check_strict_remove(cluster: ClusterState, member_id: int, active: Mapping[int, bool]) -> None:
    """etcd's mayRemoveMember: what remains must keep a quorum of active voters."""
    voters = _voters(cluster)
    if member_id not in voters:
        return  # removing a learner never costs the quorum
    remaining = voters - {member_id}
    started = sum(1 for v in remaining if active.get(v, False))
    if started < len(remaining) // 2 + 1:
        raise UnhealthyClusterError()
