"""api/server/transport_wire.FrameSplitter: frames come out whole and in order however the
byte stream is cut, and an oversized frame is refused from its header alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.server.transport_wire import FrameKind, FrameSplitter, ProtocolError, encode_frame

payloads = st.lists(st.binary(max_size=300), max_size=20)


@given(payloads, st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=50))
def test_any_cut_of_the_stream_yields_the_same_frames(items: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(FrameKind.MESSAGE, p) for p in items)
    splitter = FrameSplitter()
    got: list[tuple[int, bytes]] = []
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        got += splitter.feed(stream[pos:pos + step])
        pos += step
        i += 1
    assert got == [(FrameKind.MESSAGE, p) for p in items]
    assert splitter.pending_bytes == 0


def test_a_partial_frame_waits_for_the_rest() -> None:
    splitter = FrameSplitter()
    frame = encode_frame(FrameKind.MESSAGE, b"hello")
    assert splitter.feed(frame[:3]) == []
    assert splitter.feed(frame[3:-1]) == []
    assert splitter.pending_bytes == len(frame) - 1
    assert splitter.feed(frame[-1:]) == [(FrameKind.MESSAGE, b"hello")]


def test_an_oversized_frame_is_refused_before_its_payload_arrives() -> None:
    splitter = FrameSplitter(bytes_max=10)
    header = encode_frame(FrameKind.MESSAGE, b"x" * 11)[:5]
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        splitter.feed(header)
