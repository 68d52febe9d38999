"""Revision codec and the key escaping that keeps LMDB in (user key, revision) order."""

from __future__ import annotations

import itertools
import random

import pytest

from kvstore.revision import (
    Revision,
    escape_key,
    key_prefix_end,
    pack_rev,
    rev_main,
    unescape_key,
    unpack_rev,
)


def test_pack_is_17_bytes_etcd_layout() -> None:
    raw = pack_rev(5, 2)
    assert raw == (5).to_bytes(8, "big") + b"_" + (2).to_bytes(8, "big")
    assert unpack_rev(raw) == (5, 2)
    assert Revision.from_bytes(raw) == Revision(5, 2)
    assert Revision(5, 2).to_bytes() == raw
    assert rev_main(b"prefix" + raw) == 5


def test_byte_order_is_revision_order() -> None:
    rng = random.Random(1)
    revs = [Revision(rng.randrange(1 << 40), rng.randrange(1000)) for _ in range(500)]
    assert sorted(revs) == sorted(revs, key=Revision.to_bytes)


def test_bad_revision_bytes_rejected() -> None:
    with pytest.raises(AssertionError):
        unpack_rev(b"x" * 16)


def test_escape_preserves_order_and_is_prefix_free() -> None:
    alphabet = [b"\x00", b"\x01", b"a", b"\xff"]
    keys = [b"".join(p) for n in range(1, 4) for p in itertools.product(alphabet, repeat=n)]
    escaped = [escape_key(k) for k in keys]
    assert sorted(keys) == [unescape_key(x) for x in sorted(escaped)]
    for a, b in itertools.product(escaped, repeat=2):
        if a != b:
            assert not b.startswith(a)
    # Composite (key, revision) order: all versions of one key sit between its neighbours.
    composite = sorted(escape_key(k) + pack_rev(r) for k in keys for r in (1, 7, 300))
    users = [unescape_key(c[:-17]) for c in composite]
    assert users == sorted(users)


def test_prefix_end() -> None:
    assert key_prefix_end(b"abc") == b"abd"
    assert key_prefix_end(b"a\xff") == b"b"
    assert key_prefix_end(b"\xff\xff") == b"\x00"
