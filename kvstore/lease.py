"""Lease state: grant, revoke, checkpoint, and the reads the node and the Lease API need.

Only *state* lives here. Expiry timing belongs to the node: the leader keeps an expiry heap
(rebuilt on start from `all_leases`), and when a lease runs out it *proposes* a revoke, so
every replica deletes the attached keys at the same revision (etcd's lessor does the same).

Persistent layout:
* `lease`      : lease ID (8 bytes, big-endian) -> [1, ttl, remaining_ttl] (codec.encode_lease)
* `lease_keys` : lease ID (8 bytes) + user key  -> b""   (the keys attached to the lease)

The key -> lease direction is the `lease` field of the key's live record, so attaching a
key to another lease (a put with a new lease) moves it (apply.WriteTxn._put).

Rules copied from etcd 3.4 (lease/lessor.go):
* TTL above 9_000_000_000 s -> LeaseTTLTooLargeError; below `min_lease_ttl_s` (etcd:
  ceil(1.5 x election timeout) = 2 s by default) it is raised to the minimum;
* granting an existing ID -> LeaseExistsError;
* revoke deletes all attached keys, in key order, in ONE revision (the same LMDB txn also
  deletes the lease), and does not bump the revision when no key was attached;
* a checkpoint of an unknown lease is ignored (the lease was revoked meanwhile).

ID 0 in a grant means "apply picks": etcd's server picks the ID *before* proposing; a
replicated state machine must not use a random or clock-based ID at apply time, so we
derive it from the raft index (a 64-bit mix, kept positive and non-zero, stepping past IDs
in use). The node may still pick IDs itself and pass them in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvstore.codec import decode_lease, encode_lease, pack_lease_id, unpack_lease_id
from kvstore.errors import LeaseExistsError, LeaseNotFoundError, LeaseTTLTooLargeError
from kvstore.revision import escape_key
from kvstore.types import (
    Lease,
    LeaseCheckpointRequest,
    LeaseCheckpointResponse,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    LeaseTimeToLiveResponse,
)
from kvstore.view import Dbs, get_kv

if TYPE_CHECKING:
    from kvstore.apply import WriteTxn

__all__ = [
    "LEASE_GRANT_COST_BYTES",
    "MAX_LEASE_TTL_S",
    "all_leases",
    "checkpoint",
    "derive_lease_id",
    "exists",
    "grant",
    "lease_ids",
    "revoke",
    "time_to_live",
]

MAX_LEASE_TTL_S = 9_000_000_000
LEASE_GRANT_COST_BYTES = 64
_ID_MASK = (1 << 63) - 1


def _valid_id(lease_id: int) -> bool:
    # etcd's lease IDs are int64 and only 0 (no lease) is reserved: negative IDs are valid.
    return lease_id != 0 and -(1 << 63) <= lease_id <= _ID_MASK


def derive_lease_id(index: int) -> int:
    """A deterministic, well-spread positive ID for a grant applied at raft `index`."""
    x = (index * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 29
    return (x & _ID_MASK) or 1


def exists(w: WriteTxn, lease_id: int) -> bool:
    return _valid_id(lease_id) and w.txn.get(pack_lease_id(lease_id), db=w.dbs.lease) is not None


def grant(w: WriteTxn, req: LeaseGrantRequest) -> LeaseGrantResponse:
    w.check_space(LEASE_GRANT_COST_BYTES)
    lease_id = req.id
    if lease_id == 0:
        lease_id = derive_lease_id(w.index)
        while exists(w, lease_id):
            lease_id = lease_id % _ID_MASK + 1
    if not _valid_id(lease_id):
        raise LeaseNotFoundError(f"invalid lease ID {lease_id}")
    if req.ttl > MAX_LEASE_TTL_S:
        raise LeaseTTLTooLargeError()
    if exists(w, lease_id):
        raise LeaseExistsError()
    ttl = max(req.ttl, w.limits.min_lease_ttl_s)
    w.txn.put(pack_lease_id(lease_id), encode_lease(ttl, 0), db=w.dbs.lease)
    return LeaseGrantResponse(lease_id, ttl, w.revision)


def revoke(w: WriteTxn, req: LeaseRevokeRequest) -> LeaseRevokeResponse:
    if not exists(w, req.id):
        raise LeaseNotFoundError()
    id8 = pack_lease_id(req.id)
    keys = _attached_keys(w.txn, w.dbs, id8)
    for key in keys:  # lease_keys is ordered by key: every replica deletes in the same order
        kv = get_kv(w.kcur, key, None)
        if kv is not None:
            w.tombstone(escape_key(key), kv)
        w.txn.delete(id8 + key, db=w.dbs.lease_keys)
    w.txn.delete(id8, db=w.dbs.lease)
    return LeaseRevokeResponse(w.main if w.sub else w.revision)


def checkpoint(w: WriteTxn, req: LeaseCheckpointRequest) -> LeaseCheckpointResponse:
    if exists(w, req.id):
        ttl, _ = decode_lease(w.txn.get(pack_lease_id(req.id), db=w.dbs.lease))
        w.txn.put(pack_lease_id(req.id), encode_lease(ttl, max(0, req.remaining_ttl)), db=w.dbs.lease)
    return LeaseCheckpointResponse(w.revision)


def _attached_keys(txn: Any, dbs: Dbs, id8: bytes) -> list[bytes]:
    cur = txn.cursor(db=dbs.lease_keys)
    keys: list[bytes] = []
    if not cur.set_range(id8):
        return keys
    for k in cur.iternext(values=False):
        if not k.startswith(id8):
            break
        keys.append(bytes(k[8:]))
    return keys


# --- reads (any LMDB txn) -------------------------------------------------------------------


def time_to_live(
    txn: Any,
    dbs: Dbs,
    lease_id: int,
    *,
    keys: bool,
    remaining_ttl_s: int | None,
    revision: int,
) -> LeaseTimeToLiveResponse:
    """etcd's LeaseTimeToLive: ttl -1 for an unknown lease.

    The remaining TTL is the node's (it owns the clock): `remaining_ttl_s` when given, else
    the last checkpoint, else the granted TTL.
    """
    raw = txn.get(pack_lease_id(lease_id), db=dbs.lease) if _valid_id(lease_id) else None
    if raw is None:
        return LeaseTimeToLiveResponse(lease_id, -1, 0, (), revision)
    ttl, remaining = decode_lease(raw)
    if remaining_ttl_s is not None:
        remaining = remaining_ttl_s
    elif remaining <= 0:
        remaining = ttl
    attached = tuple(_attached_keys(txn, dbs, pack_lease_id(lease_id))) if keys else ()
    return LeaseTimeToLiveResponse(lease_id, remaining, ttl, attached, revision)


def lease_ids(txn: Any, dbs: Dbs) -> tuple[int, ...]:
    cur = txn.cursor(db=dbs.lease)
    return tuple(unpack_lease_id(k) for k in cur.iternext(values=False))


def all_leases(txn: Any, dbs: Dbs) -> list[Lease]:
    """Every lease with its TTL and checkpointed remaining TTL, to rebuild the expiry heap."""
    out: list[Lease] = []
    for k, v in txn.cursor(db=dbs.lease).iternext():
        ttl, remaining = decode_lease(v)
        out.append(Lease(unpack_lease_id(k), ttl, remaining))
    return out
