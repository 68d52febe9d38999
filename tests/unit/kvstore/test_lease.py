"""Lease state: grant rules, revoke in one revision, attach/detach, checkpoint, reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvstore.errors import LeaseExistsError, LeaseNotFoundError, LeaseTTLTooLargeError
from kvstore.lease import MAX_LEASE_TTL_S, derive_lease_id
from kvstore.store import Store
from kvstore.types import (
    DeleteRangeRequest,
    EventType,
    Lease,
    LeaseCheckpointRequest,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    LeaseTimeToLiveResponse,
    PutRequest,
    RangeRequest,
)

from .conftest import Applier


def test_grant_raises_ttl_to_minimum(kv: Applier) -> None:
    assert kv(LeaseGrantRequest(0, id=1)) == LeaseGrantResponse(1, 2, 1)
    assert kv(LeaseGrantRequest(1, id=2)) == LeaseGrantResponse(2, 2, 1)
    assert kv(LeaseGrantRequest(60, id=3)) == LeaseGrantResponse(3, 60, 1)


def test_min_ttl_is_configurable(data_dir: Path) -> None:
    with Store(data_dir, durable=False, min_lease_ttl_s=5) as s:
        assert Applier(s)(LeaseGrantRequest(1, id=1)) == LeaseGrantResponse(1, 5, 1)


def test_grant_errors(kv: Applier) -> None:
    with pytest.raises(LeaseTTLTooLargeError):
        kv(LeaseGrantRequest(MAX_LEASE_TTL_S + 1, id=1))
    kv(LeaseGrantRequest(MAX_LEASE_TTL_S, id=1))
    with pytest.raises(LeaseExistsError):
        kv(LeaseGrantRequest(10, id=1))


def test_auto_id_is_deterministic_and_unique(data_dir: Path, tmp_path: Path) -> None:
    ids = []
    for d in (data_dir, tmp_path / "other"):
        with Store(d, durable=False) as s:
            out = s.apply_batch([(i, 1, LeaseGrantRequest(10)) for i in range(1, 6)])
            ids.append([r.response.id for r in out])  # type: ignore[union-attr]
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 5 and all(i > 0 for i in ids[0])
    assert ids[0][0] == derive_lease_id(1)


def test_revoke_deletes_attached_keys_in_one_revision(store: Store, kv: Applier) -> None:
    kv(LeaseGrantRequest(10, id=7))
    kv(PutRequest(b"c", lease=7))
    kv(PutRequest(b"a", lease=7))
    kv(PutRequest(b"b"))
    result = kv.result(LeaseRevokeRequest(7))
    assert result.response == LeaseRevokeResponse(5)
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in result.events] == [
        (EventType.DELETE, b"a", 5), (EventType.DELETE, b"c", 5)]  # key order, one revision
    assert [kv.key for kv in store.range(RangeRequest(b"a", b"\x00")).kvs] == [b"b"]
    with pytest.raises(LeaseNotFoundError):
        kv(LeaseRevokeRequest(7))
    with pytest.raises(LeaseNotFoundError):
        kv(PutRequest(b"d", lease=7))


def test_revoke_without_keys_does_not_bump(store: Store, kv: Applier) -> None:
    kv(LeaseGrantRequest(10, id=7))
    kv(PutRequest(b"a", lease=7))
    kv(DeleteRangeRequest(b"a"))
    assert kv.result(LeaseRevokeRequest(7)).revision == 3 == store.current_revision


def test_put_moves_key_between_leases(store: Store, kv: Applier) -> None:
    kv(LeaseGrantRequest(10, id=1))
    kv(LeaseGrantRequest(10, id=2))
    kv(PutRequest(b"k", lease=1))
    kv(PutRequest(b"k", lease=2))
    assert store.lease_time_to_live(1, keys=True).keys == ()
    assert store.lease_time_to_live(2, keys=True).keys == (b"k",)
    kv(LeaseRevokeRequest(1))
    assert store.range(RangeRequest(b"k")).count == 1  # it left lease 1
    kv(PutRequest(b"k"))  # detach from lease 2
    kv(LeaseRevokeRequest(2))
    assert store.range(RangeRequest(b"k")).count == 1


def test_time_to_live_and_checkpoint(store: Store, kv: Applier) -> None:
    kv(LeaseGrantRequest(60, id=9))
    kv(PutRequest(b"x", lease=9))
    kv(PutRequest(b"y", lease=9))
    ttl = store.lease_time_to_live(9, keys=True)
    assert ttl == LeaseTimeToLiveResponse(9, 60, 60, (b"x", b"y"), 3)
    assert store.lease_time_to_live(9, remaining_ttl_s=12).ttl == 12
    kv(LeaseCheckpointRequest(9, 30))
    assert store.lease_time_to_live(9).ttl == 30
    kv(LeaseCheckpointRequest(12345, 30))  # unknown lease: ignored
    assert store.lease_time_to_live(404).ttl == -1
    assert store.leases() == [Lease(9, 60, 30)]
    assert store.lease_leases().leases == (9,)


def test_leases_survive_reopen(data_dir: Path) -> None:
    with Store(data_dir, durable=False) as s:
        a = Applier(s)
        a(LeaseGrantRequest(10, id=3))
        a(LeaseGrantRequest(20, id=4))
        a(PutRequest(b"k", lease=4))
        a(LeaseCheckpointRequest(4, 7))
    with Store(data_dir, durable=False) as s:
        assert s.leases() == [Lease(3, 10, 0), Lease(4, 20, 7)]
        assert Applier(s).result(LeaseRevokeRequest(4)).events[0].kv.key == b"k"


def test_negative_lease_ids_are_valid_like_etcd(store: Store, kv: Applier) -> None:
    # etcd's lease IDs are int64; only 0 means "no lease".
    kv(LeaseGrantRequest(10, id=-74113))
    kv(PutRequest(b"k", lease=-74113))
    assert store.range(RangeRequest(b"k")).kvs[0].lease == -74113
    assert -74113 in store.lease_leases().leases
    assert store.lease_time_to_live(-74113, keys=True).keys == (b"k",)
    kv(LeaseRevokeRequest(-74113))
    assert store.range(RangeRequest(b"k")).count == 0
