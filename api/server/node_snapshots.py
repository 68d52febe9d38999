"""Node's snapshot half: taking our own snapshots and installing the leader's.

A mixin of `Node` (api/server/node.py), split out for size. A snapshot sent to a follower
is a bundle (api/server/snapshot_bundle.py): the cluster state plus a consistent copy of
the LMDB store, streamed in chunks by the transport.
"""

from __future__ import annotations

import contextlib
import logging
import os

from api.server.cluster_state import ALARM_NOSPACE, ClusterState
from api.server.config import ServerConfig
from api.server.disk import DataDirError
from api.server.snapshot_bundle import cut_bundle, write_bundle
from kvstore.store import Store
from raft import Ready, SnapshotMetadata

SNAPSHOT_BYTES_TRIGGER = 64 * 1024 * 1024
log = logging.getLogger("kvstore.node")


class SnapshotMixin:
    def _make_bundle(self, path: str) -> None:
        """Runs on the read pool: cluster state of raft's snapshot + a copy of the store."""
        snapshot = self._disk.storage.snapshot()
        write_bundle(path, snapshot.data or self._cluster.encode(), self._store.copy_to_fd)

    async def _install_store_snapshot(self, rd: Ready) -> bytes:
        """Step 1 for a snapshot from the leader: swap in its store copy; returns the
        cluster state that goes into our snapshot file."""
        assert rd.snapshot is not None
        meta = rd.snapshot.metadata
        path = self._replication.take_incoming(meta.index, meta.term)
        if path is None:
            raise DataDirError(f"no snapshot body received for index {meta.index}")

        def install() -> bytes:
            try:
                body = cut_bundle(path)  # the transport made the file durable
                self._replace_store(path)
                return body
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(path)  # left behind only if the install failed

        return await self._disk_thread.run(install)

    def _replace_store(self, copy_path: str) -> None:
        """Swap in the leader's store copy, moving the file (disk thread; the ready loop is
        waiting on us, so nothing applies meanwhile; readers see the old store until the
        swap)."""
        old = self._store
        old.close()
        Store.restore_from(copy_path, self.config.data_dir, move=True)
        self._store = open_store(self.config)

    def _after_snapshot_installed(self, meta: SnapshotMetadata, body: bytes) -> None:
        self._cluster = ClusterState.decode(body)
        self._store.nospace_alarm = self._cluster.has_alarm(ALARM_NOSPACE)
        self._conf_state = meta.conf_state
        self._applied = max(self._applied, meta.index)
        self._snapshot_index = meta.index
        # Watchers continue from the new store: they catch up from it, or are cancelled as
        # compacted when their next revision is gone (etcd moves them to unsynced likewise).
        self._hub.restore(self._store)
        self._replication.set_peers(
            {m.id: m.peer_urls for m in self._cluster.members.values()}, me=self._member_id
        )
        log.info("installed a snapshot from the leader at index %d", meta.index)

    async def _maybe_snapshot(self) -> None:
        # Beyond etcd's --snapshot-count: also snapshot after SNAPSHOT_BYTES_TRIGGER of applied
        # entries, so big entries (128-op txns) cannot make the in-memory log grow unbounded.
        if (
            self._applied - self._snapshot_index < self.config.snapshot_count
            and self._bytes_since_snapshot < SNAPSHOT_BYTES_TRIGGER
        ):
            return
        self._bytes_since_snapshot = 0
        index = self._applied
        body = self._cluster.encode()
        conf_state = self._conf_state

        def snapshot() -> None:
            self._store.sync()  # the marker must never get ahead of durable LMDB state
            self._disk.take_snapshot(index=index, conf_state=conf_state, body=body)

        await self._disk_thread.run(snapshot)
        self._snapshot_index = index
        self._disk.compact_log(index, conf_state=conf_state, body=body)
        log.info("saved snapshot at index %d", index)

def open_store(config: ServerConfig) -> Store:
    """The LMDB store. Not durable per commit: the WAL is, and the applied index stored in
    each LMDB transaction makes WAL replay idempotent (it is synced before snapshots)."""
    return Store(
        config.data_dir, durable=False, quota_bytes=config.quota_backend_bytes,
        quota_at_apply=False,
        max_txn_ops=config.max_txn_ops,
        # etcd: minimum TTL = ceil(1.5 x election timeout), 2 s by default.
        min_lease_ttl_s=max(1, -(-3 * config.election_timeout_ms // 2000)),
    )
