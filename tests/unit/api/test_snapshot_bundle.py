"""The snapshot bundle: a real store copy plus the cluster state, cut apart and moved into
place on the receiving side without a second copy."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from api.server.snapshot_bundle import BundleError, cut_bundle, write_bundle
from kvstore.store import Store
from kvstore.types import PutRequest, RangeRequest


def _store_with_keys(path: Path, n: int) -> Store:
    store = Store(path, durable=False)
    store.apply_batch([(i + 1, 1, PutRequest(b"k%04d" % i, b"v" * 100)) for i in range(n)])
    return store


def test_bundle_round_trip_moves_the_store_copy_into_place(tmp_path: Path) -> None:
    with _store_with_keys(tmp_path / "leader", 500) as leader:
        bundle = str(tmp_path / "out.bundle")
        write_bundle(bundle, b"cluster-state", leader.copy_to_fd)
        expected = leader.hash_kv(0).hash

    assert cut_bundle(bundle) == b"cluster-state"
    Store.restore_from(bundle, tmp_path / "follower", move=True)
    assert not os.path.exists(bundle)  # renamed, not copied
    with Store(tmp_path / "follower", durable=False) as follower:
        assert follower.applied_index == 500
        assert follower.range(RangeRequest(b"k", b"l")).count == 500
        assert follower.hash_kv(0).hash == expected


def test_restore_across_file_systems_falls_back_to_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _store_with_keys(tmp_path / "leader", 50) as leader:
        snap = tmp_path / "snap.db"
        leader.snapshot_to(snap)
    real_replace = os.replace

    def replace(src: object, dst: object) -> None:
        if src == snap:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)
    Store.restore_from(snap, tmp_path / "follower", move=True)
    assert snap.exists()  # copied
    with Store(tmp_path / "follower", durable=False) as follower:
        assert follower.range(RangeRequest(b"k", b"l")).count == 50


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"short", "truncated"),
        (b"x" * 100 + (5).to_bytes(4, "big") + b"KVSNAP01", "bad magic"),
        (b"x" * 10 + (500).to_bytes(4, "big") + b"KVSNAP02", "truncated"),
    ],
)
def test_damaged_bundles_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "in.bundle"
    path.write_bytes(content)
    with pytest.raises(BundleError, match=message):
        cut_bundle(str(path))
    assert path.read_bytes() == content  # nothing cut from a bundle that does not parse
