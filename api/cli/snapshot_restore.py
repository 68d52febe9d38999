"""snapshot restore: build a new kvstore data dir, with a new membership, from a snapshot.

What a kvstore data dir holds (api/server/disk.py): `member/kv/` the LMDB store,
`member/snap/` raft snapshot files whose body is the ClusterState (members, alarms), and
`member/wal/` whose metadata names the cluster and member IDs. A fresh member bootstraps
with a snapshot at raft index 1 (term 1) holding the initial voters. Restore therefore:

1. checks the file's SHA-256 trailer (unless --skip-hash-check) and installs the store copy
   as `member/kv` (kvstore.Store.restore_from);
2. resets the store's applied raft index/term to the bootstrap snapshot's (1, 1): the copy
   remembers the OLD cluster's applied index, and the store skips every entry at or below
   it, so the new cluster's first entries would silently not be applied;
3. bootstraps WAL + snapshot with MemberDisk.bootstrap for the members of
   --initial-cluster, whose IDs derive from peer URLs and --initial-cluster-token exactly as
   `kvstore` derives them at start-up (api.server.config), so every restored member agrees.

Alarms are not carried over (they live in the old cluster state). Everything is built in
`<data-dir>.restore-tmp` and renamed into place last, so a failed restore leaves nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from api.cli.errors import EXIT_ERROR, CliError
from api.cli.snapshot_file import extract_body, verify_hash

__all__ = ["RestoreConfig", "restore"]

BOOTSTRAP_INDEX = 1
BOOTSTRAP_TERM = 1


@dataclass(frozen=True, slots=True)
class RestoreConfig:
    snapshot: Path
    data_dir: Path
    name: str
    initial_cluster: str
    initial_cluster_token: str
    initial_advertise_peer_urls: tuple[str, ...]
    skip_hash_check: bool = False


@dataclass(frozen=True, slots=True)
class Restored:
    cluster_id: int
    member_id: int


def _reset_applied(data_dir: Path) -> None:
    from kvstore.store import Store

    store = Store(data_dir)
    try:
        store.rebase_applied(BOOTSTRAP_INDEX, BOOTSTRAP_TERM)
        store.sync()
    finally:
        store.close()


def restore(cfg: RestoreConfig, progress: Callable[[str, int, int], object] | None = None) -> Restored:
    from api.server.cluster_state import ClusterState, MemberRecord
    from api.server.config import ConfigError, compute_cluster_id, parse_initial_cluster
    from api.server.disk import MemberDisk
    from kvstore.store import Store

    if cfg.data_dir.exists():
        raise CliError(EXIT_ERROR, f'data-dir "{cfg.data_dir}" exists')
    try:
        members = parse_initial_cluster(cfg.initial_cluster, cfg.initial_cluster_token)
    except ConfigError as exc:
        raise CliError(EXIT_ERROR, str(exc)) from None
    me = next((m for m in members if m.name == cfg.name), None)
    if me is None:
        raise CliError(EXIT_ERROR, f"couldn't find local name {cfg.name!r} in the initial cluster configuration")
    if sorted(me.peer_urls) != sorted(cfg.initial_advertise_peer_urls):
        raise CliError(EXIT_ERROR, f"--initial-cluster has {cfg.name}={','.join(me.peer_urls)} but missing "
                                   f"from --initial-advertise-peer-urls={','.join(cfg.initial_advertise_peer_urls)}")

    def step(name: str) -> Callable[[int, int], object] | None:
        return None if progress is None else (lambda done, total: progress(name, done, total))

    body_size = verify_hash(cfg.snapshot, skip=cfg.skip_hash_check, progress=step("verify"))
    tmp = cfg.data_dir.with_name(cfg.data_dir.name + ".restore-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        body = tmp / "snapshot.body"
        extract_body(cfg.snapshot, body, body_size, progress=step("copy"))
        Store.restore_from(body, tmp)
        body.unlink()
        _reset_applied(tmp)
        cluster_id = compute_cluster_id([m.member_id for m in members])
        state = ClusterState(cluster_id=cluster_id)
        for m in members:
            state.members[m.member_id] = MemberRecord(m.member_id, m.name, m.peer_urls)
        disk = MemberDisk(str(tmp), snapshots_max=5, wals_max=5)
        disk.bootstrap(state, member_id=me.member_id, voters=tuple(sorted(state.members)))
        disk.close()
        os.rename(tmp, cfg.data_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Restored(cluster_id=cluster_id, member_id=me.member_id)
