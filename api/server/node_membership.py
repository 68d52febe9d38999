"""Node's membership half: conf changes proposed, applied and answered (etcd's rules).

A mixin of `Node` (api/server/node.py), split out for size: it reads the node's raft,
cluster state and waiters directly. Checks that etcd makes before proposing live in
api/server/membership.py; this part proposes, waits, and applies in log order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from api.server import membership
from api.server.cluster_state import MemberRecord
from api.server.codec import MemberUpdate
from api.server.config import compute_member_id
from api.service.backend import (
    MemberInfo,
    MemberNotFoundError,
    NodeError,
    NoLeaderError,
    PeerURLExistsError,
    RequestTimeoutError,
    StoppedError,
)
from raft import ProposalDroppedError, StateType
from raft.types import ConfChange, ConfChangeType

log = logging.getLogger("kvstore.node")


class MembershipMixin:
    def is_learner(self) -> bool:
        me = self._cluster.members.get(self._member_id)
        return bool(me and me.is_learner)

    def _members_for_peers(self) -> tuple[int, list[list[Any]]]:
        return self._cluster.cluster_id, [
            [m.id, m.name, list(m.peer_urls), list(m.client_urls), m.is_learner]
            for m in self._cluster.members.values()
        ]

    def _sync_peers(self) -> None:
        self._replication.set_peers(
            {m.id: m.peer_urls for m in self._cluster.members.values()}, me=self._member_id
        )

    def _apply_conf_change(self, index: int, change: ConfChange) -> None:
        self._conf_state = self._raw.apply_conf_change(change)
        proposal_id, member = membership.decode_context(change.context)
        membership.apply_change(self._cluster, change, member)
        self._sync_peers()
        # A member added now may need a snapshot (its log is empty): raft's snapshot must
        # already list it, or the newcomer refuses it. Record one at this entry (the log is
        # not compacted; the store copy sent with it is taken at send time).
        if index > self._disk.storage.snapshot().metadata.index:
            self._disk.storage.create_snapshot(index, self._conf_state, self._cluster.encode())
        fut = self._waiters.get(proposal_id)
        if fut is not None and not fut.done():
            fut.set_result(self.members())
        if change.type is ConfChangeType.REMOVE_NODE and change.node_id == self._member_id:
            log.warning("this member was removed from the cluster; stopping")
            self.removed.set()

    def _active_peers(self) -> dict[int, bool]:
        """Members the leader heard from within the election timeout (etcd's started members)."""
        progress = self._raw.status().progress
        active = {pid: pr.recent_active for pid, pr in progress.items()}
        active[self._member_id] = True
        return active

    async def _propose_conf_change(self, change_type: ConfChangeType, member_id: int,
                                   member: MemberRecord | None) -> Sequence[MemberInfo]:
        if self._stopped:
            raise StoppedError()
        if self._lead == 0:
            raise NoLeaderError()
        self._next_proposal_id += 1
        proposal_id = self._next_proposal_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[proposal_id] = fut
        change = ConfChange(change_type, member_id, membership.encode_context(proposal_id, member))
        try:
            self._raw.propose_conf_change(change)
        except ProposalDroppedError:
            self._waiters.pop(proposal_id, None)
            raise RequestTimeoutError() from None
        self._wake.set()
        try:
            result: Sequence[MemberInfo] = await asyncio.wait_for(
                asyncio.shield(fut), self._request_timeout_s()
            )
            return result
        except TimeoutError:
            raise RequestTimeoutError() from None
        finally:
            self._waiters.pop(proposal_id, None)

    async def member_add(
        self, peer_urls: Sequence[str], *, is_learner: bool
    ) -> tuple[MemberInfo, Sequence[MemberInfo]]:
        membership.check_add(self._cluster, peer_urls, is_learner=is_learner)
        if not is_learner and self.config.strict_reconfig_check and self._role is StateType.LEADER:
            membership.check_strict_add(self._cluster, self._active_peers())
        token = f"{self.config.initial_cluster_token}{time.time_ns()}"
        member_id = compute_member_id(peer_urls, token)
        record = MemberRecord(member_id, "", tuple(peer_urls), (), is_learner)
        kind = ConfChangeType.ADD_LEARNER_NODE if is_learner else ConfChangeType.ADD_NODE
        members = await self._propose_conf_change(kind, member_id, record)
        added = next(m for m in members if m.id == member_id)
        return added, members

    async def member_remove(self, member_id: int) -> Sequence[MemberInfo]:
        if member_id not in self._cluster.members:
            raise MemberNotFoundError()
        if self.config.strict_reconfig_check and self._role is StateType.LEADER:
            membership.check_strict_remove(self._cluster, member_id, self._active_peers())
        return await self._propose_conf_change(ConfChangeType.REMOVE_NODE, member_id, None)

    async def member_update(self, member_id: int, peer_urls: Sequence[str]) -> Sequence[MemberInfo]:
        if member_id not in self._cluster.members:
            raise MemberNotFoundError()
        taken = {u for m in self._cluster.members.values() if m.id != member_id for u in m.peer_urls}
        if any(u in taken for u in peer_urls):
            raise PeerURLExistsError()
        result = await self._propose_any(MemberUpdate(member_id, tuple(peer_urls)), timeout_s=None)
        members: Sequence[MemberInfo] = result
        return members

    async def member_promote(self, member_id: int) -> Sequence[MemberInfo]:
        if member_id not in self._cluster.members:
            raise MemberNotFoundError()
        if self._role is not StateType.LEADER:
            # Only the leader knows how far the learner got: ask it (etcd forwards too).
            await self._leader_client.member_promote(member_id)
            return self.members()
        progress = self._raw.status().progress
        learner = progress.get(member_id)
        me = progress.get(self._member_id)
        membership.check_promote(
            self._cluster, member_id,
            learner_match=learner.match if learner is not None else 0,
            leader_match=me.match if me is not None else self._disk.storage.last_index(),
        )
        member = self._cluster.members[member_id]
        return await self._propose_conf_change(ConfChangeType.ADD_NODE, member_id, member)

    async def _auto_promote_loop(self) -> None:
        """Beyond etcd (opt-in): the leader promotes a learner once it is in sync."""
        while True:
            await asyncio.sleep(1.0)
            if self._role is not StateType.LEADER:
                continue
            for m in list(self._cluster.members.values()):
                if m.is_learner:
                    with contextlib.suppress(NodeError):
                        await self.member_promote(m.id)
                        log.info("promoted learner %x automatically", m.id)

    def members(self) -> Sequence[MemberInfo]:
        return [
            MemberInfo(m.id, m.name, m.peer_urls, m.client_urls, m.is_learner)
            for m in sorted(self._cluster.members.values(), key=lambda m: m.id)
        ]
