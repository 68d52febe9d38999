"""The snapshot stream check: body + sha256(body), whatever the chunk boundaries."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from api.client._client import SnapshotDigest


def feed(stream: bytes, cuts: list[int]) -> bool:
    d = SnapshotDigest()
    prev = 0
    for cut in sorted(set(c % (len(stream) + 1) for c in cuts)) + [len(stream)]:
        d.feed(stream[prev:cut])
        prev = cut
    return d.ok()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(min_value=0, max_value=400), max_size=8),
       st.integers(min_value=0, max_value=231))
def test_good_stream_passes_and_any_flipped_byte_fails(
    body: bytes, cuts: list[int], flip: int
) -> None:
    stream = body + hashlib.sha256(body).digest()
    assert feed(stream, cuts)
    i = flip % len(stream)
    bad = stream[:i] + bytes([stream[i] ^ 0x01]) + stream[i + 1:]
    assert not feed(bad, cuts)


def test_too_short_stream_fails() -> None:
    assert not feed(b"short", [2])
    assert not feed(b"", [])
