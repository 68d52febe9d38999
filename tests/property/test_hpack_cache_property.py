"""api/http2.headers.HeaderDecoder (hpack plus a cache of whole header blocks) decodes every
sequence of header blocks exactly as a plain hpack decoder does: blocks repeat, entries
are added and evicted, and the encoder changes the table size mid-stream."""

from __future__ import annotations

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.http2.headers import HeaderDecoder

NAMES = [b":path", b":method", b"content-type", b"grpc-timeout", b"token", b"x-a", b"x-b"]
VALUES = [b"/etcdserverpb.KV/Put", b"/etcdserverpb.KV/Range", b"POST", b"application/grpc",
          b"5S", b"100m", b"a" * 40, b"b" * 300, b""]

header = st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES))
request = st.lists(header, min_size=1, max_size=6)
# A step: a request's headers (maybe re-sent as the previous block's exact bytes), or a
# table size change the encoder announces in its next block.
step = st.one_of(
    st.tuples(st.just("headers"), request, st.booleans()),
    st.tuples(st.just("resize"), st.sampled_from([0, 64, 256, 4096]), st.just(False)),
)


@given(st.lists(step, min_size=1, max_size=60), st.booleans())
def test_cached_decoding_equals_plain_hpack(steps: list[tuple[str, object, bool]],
                                            huffman: bool) -> None:
    encoder = hpack.Encoder()
    plain = hpack.Decoder()
    cached = HeaderDecoder(1 << 20)
    previous = b""
    for kind, arg, repeat in steps:
        if kind == "resize":
            assert isinstance(arg, int)
            encoder.header_table_size = arg
            continue
        assert isinstance(arg, list)
        block = previous if repeat and previous else encoder.encode(arg, huffman=huffman)
        previous = block
        try:
            expected = [(bytes(n), bytes(v)) for n, v in plain.decode(block, raw=True)]
        except hpack.HPACKError as exc:
            # hpack's encoder can skip a size update the decoder needed (resize 0, then
            # 64 twice): a broken stream must fail the same way through the cache.
            with pytest.raises(type(exc)):
                cached.decode(block)
            return
        assert [(bytes(n), bytes(v)) for n, v in cached.decode(block)] == expected


def test_a_repeated_block_is_served_from_the_cache_until_the_table_changes() -> None:
    encoder = hpack.Encoder()
    decoder = HeaderDecoder(1 << 20)
    fields = [(b":path", b"/etcdserverpb.KV/Put"), (b"content-type", b"application/grpc")]
    decoder.decode(encoder.encode(fields))  # adds both fields to the dynamic table
    indexed = encoder.encode(fields)  # now two one-byte references
    first = decoder.decode(indexed)
    assert decoder.decode(indexed) is first  # the same list: a cache hit
    decoder.decode(encoder.encode([(b"token", b"t1")]))  # a new entry shifts the indexes
    assert decoder.decode(indexed) is not first
