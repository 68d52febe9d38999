"""Opening a member's data dir at start: recover it, or bootstrap it as a new cluster's
member, or as a member joining a running cluster (--initial-cluster-state=existing)."""

from __future__ import annotations

import asyncio

from api.server.cluster_state import ClusterState, MemberRecord
from api.server.config import ServerConfig
from api.server.disk import DataDirError, MemberDisk, Recovered
from api.server.node_snapshots import open_store
from api.server.transport import fetch_members
from kvstore.store import Store


async def open_member(config: ServerConfig) -> tuple[MemberDisk, Recovered, Store]:
    """A data dir that exists wins over the bootstrap flags, as in etcd."""
    loop = asyncio.get_running_loop()
    disk = MemberDisk(config.data_dir, snapshots_max=config.max_snapshots, wals_max=config.max_wals)
    joined: ClusterState | None = None
    join_id = 0
    if not disk.exists() and config.initial_cluster_state == "existing":
        joined, join_id = await _fetch_cluster_to_join(config)

    def open_all() -> tuple[Recovered, Store]:
        if disk.exists():
            recovered = disk.recover(expect_ids=None)
        elif joined is not None:
            recovered = disk.bootstrap_join(joined, member_id=join_id)
        else:
            state = ClusterState(cluster_id=config.cluster_id)
            for m in config.initial_cluster:
                state.members[m.member_id] = MemberRecord(m.member_id, m.name, m.peer_urls)
            voters = tuple(sorted(state.members))
            recovered = disk.bootstrap(state, member_id=config.member_id, voters=voters)
        store = open_store(config)
        return recovered, store

    recovered, store = await loop.run_in_executor(None, open_all)
    return disk, recovered, store


async def _fetch_cluster_to_join(config: ServerConfig) -> tuple[ClusterState, int]:
    """--initial-cluster-state=existing: learn the cluster ID and our member ID (added by
    MemberAdd with our peer URLs) from a running member, as etcd does."""
    mine = set(config.initial_advertise_peer_urls)
    others = [u for m in config.initial_cluster for u in m.peer_urls if u not in mine]
    cluster_id, members = await fetch_members(others)
    # etcd's ValidateClusterAndAssignIDs: --initial-cluster must list exactly the cluster's
    # members (by peer URLs), or the new member would start with a wrong view of it.
    if len(config.initial_cluster) != len(members):
        raise DataDirError("error validating peerURLs: member count is unequal")
    if {frozenset(m.peer_urls) for m in config.initial_cluster} != {
        frozenset(peers) for _mid, _name, peers, _clients, _learner in members
    }:
        raise DataDirError("error validating peerURLs: unmatched member while checking PeerURLs")
    state = ClusterState(cluster_id=cluster_id)
    member_id = 0
    for mid, name, peers, clients, learner in members:
        state.members[mid] = MemberRecord(mid, name, tuple(peers), tuple(clients), bool(learner))
        if set(peers) & mine:
            member_id = mid
    if member_id == 0:
        raise DataDirError(
            "this member's peer URLs are not in the cluster's member list: "
            "add it with `member add` before starting it with --initial-cluster-state=existing"
        )
    return state, member_id
