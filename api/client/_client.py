"""`Client`: the async etcd v3 client (KV, Lease, Cluster, Maintenance; Watch in _watch.py).

Every unary method builds a request value (see _ops.py), runs it through
`Connection.call` with its read/write class (which decides retries, see _connection.py) and
returns a frozen result from _types.py. Methods take `timeout_s` (the whole call, retries
included; default: the client's `timeout_s`).

    async with Client(["127.0.0.1:2379"]) as c:
        await c.put(b"k", b"v")
        (await c.get(b"k")).value
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from api.client._connection import Connection, TLSConfig
from api.client._errors import EtcdError, from_rpc_error
from api.client._lease import KeepAlive
from api.client._ops import Delete, Get, Put, SortOrder, SortTarget, Txn, TxnBuilder
from api.client._recipes import Election, Lock
from api.client._types import (
    Alarm,
    AlarmType,
    DeleteResult,
    Event,
    GetResult,
    HashKV,
    LeaseGrant,
    LeaseTimeToLive,
    Member,
    PutResult,
    ResponseHeader,
    Status,
    TxnResult,
)
from api.client._watch import Watcher
from api.proto import rpc_pb2

__all__ = ["Client", "SnapshotChecksumError"]

SHA256_BYTES = 32


class SnapshotChecksumError(EtcdError):
    """The snapshot stream's trailing SHA-256 does not match its body."""


class SnapshotDigest:
    """Checks etcd's snapshot stream: a body followed by sha256(body) (32 bytes).

    Chunks arrive with arbitrary boundaries, so the last 32 bytes seen are held back until
    more data proves they are body, not the trailer.
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        self._sha.update(data[:-SHA256_BYTES])
        self._tail = data[-SHA256_BYTES:]

    def ok(self) -> bool:
        return len(self._tail) == SHA256_BYTES and self._sha.digest() == self._tail


def _read_only_txn(txn: Txn) -> bool:
    return all(
        isinstance(op, Get) or (isinstance(op, Txn) and _read_only_txn(op))
        for op in (*txn.success, *txn.failure)
    )


class Client:
    """Async client over a list of endpoints ("127.0.0.1:2379", "http://...", "https://...")."""

    def __init__(
        self,
        endpoints: list[str] | str,
        *,
        timeout_s: float = 5.0,
        attempts_max: int = 10,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        tls = (
            TLSConfig(ca_file, cert_file, key_file)
            if ca_file or cert_file or key_file else None
        )
        self.conn = Connection(
            list(endpoints), tls=tls, timeout_s=timeout_s, attempts_max=attempts_max
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.conn.close()

    # ---- KV -------------------------------------------------------------------------------

    async def get(
        self,
        key: bytes,
        *,
        range_end: bytes | None = None,
        prefix: bool = False,
        from_key: bool = False,
        limit: int = 0,
        revision: int = 0,
        sort_order: SortOrder = SortOrder.NONE,
        sort_target: SortTarget = SortTarget.KEY,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
        timeout_s: float | None = None,
    ) -> GetResult:
        req = Get(
            key, range_end, prefix, from_key, limit, revision, sort_order, sort_target,
            serializable, keys_only, count_only, min_mod_revision, max_mod_revision,
            min_create_revision, max_create_revision,
        ).to_pb()
        r = await self.conn.call(
            lambda s: s.kv.Range, req, read_only=True, timeout_s=timeout_s,
            # A serializable read is allowed without a leader (etcd serves it locally).
            require_leader=not serializable,
        )
        return GetResult.from_pb(r)

    async def put(
        self,
        key: bytes,
        value: bytes,
        *,
        lease_id: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
        timeout_s: float | None = None,
    ) -> PutResult:
        req = Put(key, value, lease_id, prev_kv, ignore_value, ignore_lease).to_pb()
        r = await self.conn.call(lambda s: s.kv.Put, req, read_only=False, timeout_s=timeout_s)
        return PutResult.from_pb(r)

    async def delete(
        self,
        key: bytes,
        *,
        range_end: bytes | None = None,
        prefix: bool = False,
        from_key: bool = False,
        prev_kv: bool = False,
        timeout_s: float | None = None,
    ) -> DeleteResult:
        req = Delete(key, range_end, prefix, from_key, prev_kv).to_pb()
        r = await self.conn.call(
            lambda s: s.kv.DeleteRange, req, read_only=False, timeout_s=timeout_s
        )
        return DeleteResult.from_pb(r)

    def txn(self, *, timeout_s: float | None = None) -> TxnBuilder[Awaitable[TxnResult]]:
        """A builder: `await c.txn().if_(...).then(...).else_(...).commit()`."""
        return TxnBuilder(lambda t: self.txn_commit(t, timeout_s=timeout_s))

    async def txn_commit(self, txn: Txn, *, timeout_s: float | None = None) -> TxnResult:
        r = await self.conn.call(
            lambda s: s.kv.Txn, txn.to_pb(), read_only=_read_only_txn(txn), timeout_s=timeout_s
        )
        return TxnResult.from_pb(r)

    async def compact(
        self, revision: int, *, physical: bool = False, timeout_s: float | None = None
    ) -> ResponseHeader:
        req = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
        # Compacting twice to the same revision is refused as already compacted, never
        # harmful, but the answer would mislead: treat it as a write.
        r = await self.conn.call(lambda s: s.kv.Compact, req, read_only=False, timeout_s=timeout_s)
        return ResponseHeader.from_pb(r.header)

    # ---- Watch ----------------------------------------------------------------------------

    def watch(
        self,
        key: bytes,
        *,
        range_end: bytes | None = None,
        prefix: bool = False,
        from_key: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        no_put: bool = False,
        no_delete: bool = False,
        progress_notify: bool = False,
        callback: Callable[[Event], Any] | None = None,
    ) -> Watcher:
        """A started watch: `async for event in watcher` (or `callback(event)` per event)."""
        rng = Get(key, range_end=range_end, prefix=prefix, from_key=from_key).to_pb()
        w = Watcher(
            self.conn, key=key, range_end=rng.range_end, start_revision=start_revision,
            prev_kv=prev_kv, no_put=no_put, no_delete=no_delete,
            progress_notify=progress_notify, callback=callback,
        )
        w.start()
        return w

    # ---- Lease ----------------------------------------------------------------------------

    async def lease_grant(
        self, ttl_s: int, *, lease_id: int = 0, timeout_s: float | None = None
    ) -> LeaseGrant:
        req = rpc_pb2.LeaseGrantRequest(TTL=ttl_s, ID=lease_id)
        r = await self.conn.call(
            lambda s: s.lease.LeaseGrant, req, read_only=False, timeout_s=timeout_s
        )
        return LeaseGrant.from_pb(r)

    async def lease_revoke(self, lease_id: int, *, timeout_s: float | None = None) -> ResponseHeader:
        req = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
        r = await self.conn.call(
            lambda s: s.lease.LeaseRevoke, req, read_only=False, timeout_s=timeout_s
        )
        return ResponseHeader.from_pb(r.header)

    async def lease_time_to_live(
        self, lease_id: int, *, keys: bool = False, timeout_s: float | None = None
    ) -> LeaseTimeToLive:
        req = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        r = await self.conn.call(
            lambda s: s.lease.LeaseTimeToLive, req, read_only=True, timeout_s=timeout_s
        )
        return LeaseTimeToLive.from_pb(r)

    async def leases(self, *, timeout_s: float | None = None) -> tuple[int, ...]:
        r = await self.conn.call(
            lambda s: s.lease.LeaseLeases, rpc_pb2.LeaseLeasesRequest(), read_only=True,
            timeout_s=timeout_s,
        )
        return tuple(lease.ID for lease in r.leases)

    def keep_alive(
        self, lease_id: int, *, ttl_s: int, on_lost: Callable[[EtcdError], Any] | None = None
    ) -> KeepAlive:
        """Start renewing `lease_id` every ttl_s/3 in a background task (see _lease.py)."""
        ka = KeepAlive(self.conn, lease_id, ttl_s=ttl_s, on_lost=on_lost)
        ka.start()
        return ka

    # ---- Recipes --------------------------------------------------------------------------

    def lock(self, name: bytes, *, ttl_s: int = 60, lease_id: int | None = None) -> Lock:
        """A v3lock-compatible mutex: `async with client.lock(b"job") as lk: lk.revision`."""
        return Lock(self, name, ttl_s=ttl_s, lease_id=lease_id)

    def election(
        self, name: bytes, *, ttl_s: int = 60, lease_id: int | None = None
    ) -> Election:
        """A v3election-compatible election (campaign/proclaim/leader/observe/resign)."""
        return Election(self, name, ttl_s=ttl_s, lease_id=lease_id)

    # ---- Cluster --------------------------------------------------------------------------

    async def member_list(self, *, timeout_s: float | None = None) -> tuple[Member, ...]:
        r = await self.conn.call(
            lambda s: s.cluster.MemberList, rpc_pb2.MemberListRequest(), read_only=True,
            timeout_s=timeout_s,
        )
        return tuple(Member.from_pb(m) for m in r.members)

    async def member_add(
        self, peer_urls: list[str], *, is_learner: bool = False, timeout_s: float | None = None
    ) -> tuple[Member, tuple[Member, ...]]:
        """Returns (the new member, the member list after the change)."""
        req = rpc_pb2.MemberAddRequest(peerURLs=peer_urls, isLearner=is_learner)
        r = await self.conn.call(
            lambda s: s.cluster.MemberAdd, req, read_only=False, timeout_s=timeout_s
        )
        return Member.from_pb(r.member), tuple(Member.from_pb(m) for m in r.members)

    async def member_remove(
        self, member_id: int, *, timeout_s: float | None = None
    ) -> tuple[Member, ...]:
        r = await self.conn.call(
            lambda s: s.cluster.MemberRemove, rpc_pb2.MemberRemoveRequest(ID=member_id),
            read_only=False, timeout_s=timeout_s,
        )
        return tuple(Member.from_pb(m) for m in r.members)

    async def member_update(
        self, member_id: int, peer_urls: list[str], *, timeout_s: float | None = None
    ) -> tuple[Member, ...]:
        req = rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=peer_urls)
        r = await self.conn.call(
            lambda s: s.cluster.MemberUpdate, req, read_only=False, timeout_s=timeout_s
        )
        return tuple(Member.from_pb(m) for m in r.members)

    async def member_promote(
        self, member_id: int, *, timeout_s: float | None = None
    ) -> tuple[Member, ...]:
        r = await self.conn.call(
            lambda s: s.cluster.MemberPromote, rpc_pb2.MemberPromoteRequest(ID=member_id),
            read_only=False, timeout_s=timeout_s,
        )
        return tuple(Member.from_pb(m) for m in r.members)

    # ---- Maintenance (endpoint=None: the current endpoint; else that member) ---------------

    async def status(
        self, *, endpoint: str | None = None, timeout_s: float | None = None
    ) -> Status:
        r = await self.conn.call(
            lambda s: s.maintenance.Status, rpc_pb2.StatusRequest(), read_only=True,
            timeout_s=timeout_s, endpoint=endpoint, require_leader=False,
        )
        return Status.from_pb(r)

    async def alarms(self, *, timeout_s: float | None = None) -> tuple[Alarm, ...]:
        req = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
        r = await self.conn.call(
            lambda s: s.maintenance.Alarm, req, read_only=True, timeout_s=timeout_s
        )
        return tuple(Alarm.from_pb(a) for a in r.alarms)

    async def alarm_disarm(
        self, member_id: int = 0, alarm: AlarmType = AlarmType.NONE, *,
        timeout_s: float | None = None,
    ) -> tuple[Alarm, ...]:
        """Disarm one alarm, or (member_id=0, NONE) every active alarm as etcdctl does."""
        targets = [Alarm(member_id, alarm)]
        if member_id == 0 and alarm is AlarmType.NONE:
            targets = list(await self.alarms(timeout_s=timeout_s))
        out: list[Alarm] = []
        for a in targets:
            req = rpc_pb2.AlarmRequest(
                action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=a.member_id,
                alarm=a.alarm.value,  # type: ignore[arg-type]
            )
            r = await self.conn.call(
                lambda s: s.maintenance.Alarm, req, read_only=False, timeout_s=timeout_s
            )
            out.extend(Alarm.from_pb(x) for x in r.alarms)
        return tuple(out)

    async def defragment(
        self, *, endpoint: str | None = None, timeout_s: float | None = None
    ) -> ResponseHeader:
        r = await self.conn.call(
            lambda s: s.maintenance.Defragment, rpc_pb2.DefragmentRequest(), read_only=True,
            timeout_s=timeout_s, endpoint=endpoint, require_leader=False,
        )
        return ResponseHeader.from_pb(r.header)

    async def hash_kv(
        self, revision: int = 0, *, endpoint: str | None = None, timeout_s: float | None = None
    ) -> HashKV:
        r = await self.conn.call(
            lambda s: s.maintenance.HashKV, rpc_pb2.HashKVRequest(revision=revision),
            read_only=True, timeout_s=timeout_s, endpoint=endpoint, require_leader=False,
        )
        return HashKV.from_pb(r)

    async def move_leader(
        self, target_member_id: int, *, endpoint: str | None = None,
        timeout_s: float | None = None,
    ) -> ResponseHeader:
        """Transfer leadership; etcd requires the call to reach the current leader."""
        r = await self.conn.call(
            lambda s: s.maintenance.MoveLeader,
            rpc_pb2.MoveLeaderRequest(targetID=target_member_id), read_only=False,
            timeout_s=timeout_s, endpoint=endpoint,
        )
        return ResponseHeader.from_pb(r.header)

    async def snapshot_save(
        self, path: str | os.PathLike[str], *, endpoint: str | None = None,
        timeout_s: float | None = 600.0,
        progress: Callable[[int, int], Any] | None = None,
    ) -> int:
        """Stream a snapshot into `path` (atomically); verifies etcd's trailing SHA-256.

        etcd appends sha256(body) to the stream; the saved file keeps it (as etcdctl does, so
        `etcdctl snapshot restore` can check it). Returns the file size in bytes.
        `progress(received_bytes, remaining_bytes)` is called after each chunk (the server's
        remaining_bytes estimate; a progress bar's total is received + remaining).
        """
        dest = Path(path)
        part = dest.with_name(dest.name + ".part")
        digest = SnapshotDigest()
        size = 0
        stream = self.conn.stubs(endpoint).maintenance.Snapshot(
            rpc_pb2.SnapshotRequest(), timeout=timeout_s
        )
        try:
            with open(part, "wb") as f:
                async for chunk in stream:
                    digest.feed(chunk.blob)
                    f.write(chunk.blob)
                    size += len(chunk.blob)
                    if progress is not None:
                        progress(size, chunk.remaining_bytes)
                f.flush()
                os.fsync(f.fileno())
        except grpc.RpcError as e:
            part.unlink(missing_ok=True)
            raise from_rpc_error(e) from e
        if not digest.ok():
            part.unlink(missing_ok=True)
            raise SnapshotChecksumError("DATA_LOSS", "snapshot sha256 mismatch")
        os.replace(part, dest)
        return size
