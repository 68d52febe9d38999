"""api/http2 framing: frame encoders, grpc-timeout parsing, the HPACK response blocks and
request header decoding (the wire as a raw socket sees it: tests/process/test_http2_wire.py)."""

from __future__ import annotations

import pytest

from api.http2 import frames as F
from api.http2.headers import RESPONSE_HEADERS, RequestHeaders, parse_timeout, trailers
from tests.hpack_blocks import decode_block

# ---------------------------------------------------------------------- frame encoders


def test_frame_header_layout() -> None:
    assert F.frame(F.DATA, F.END_STREAM, 3, b"abc") == bytes(
        [0, 0, 3, F.DATA, F.END_STREAM, 0, 0, 0, 3]) + b"abc"
    big = F.frame(F.HEADERS, F.END_HEADERS, 0x12345, bytes(70_000))
    assert big[:9] == bytes([0x01, 0x11, 0x70, F.HEADERS, F.END_HEADERS, 0, 0x01, 0x23, 0x45])
    assert len(big) == 9 + 70_000
    assert F.frame(F.SETTINGS, F.ACK, 0) == bytes([0, 0, 0, 4, 1, 0, 0, 0, 0])
    assert F.frame_head(F.DATA, 0, 7, 70_000) == F.frame(F.DATA, 0, 7, bytes(70_000))[:9]


def test_control_frame_encoders() -> None:
    assert F.settings_ack() == F.frame(F.SETTINGS, F.ACK, 0)
    assert F.window_update(5, 1000) == F.frame(F.WINDOW_UPDATE, 0, 5, (1000).to_bytes(4, "big"))
    assert F.rst_stream(9, F.CANCEL) == F.frame(F.RST_STREAM, 0, 9, bytes([0, 0, 0, 8]))
    assert F.goaway(7, F.PROTOCOL_ERROR, b"why") == F.frame(
        F.GOAWAY, 0, 0, bytes([0, 0, 0, 7, 0, 0, 0, 1]) + b"why")
    assert F.ping(b"12345678", ack=True) == F.frame(F.PING, F.ACK, 0, b"12345678")
    assert F.ping(b"12345678", ack=False)[4] == 0


def test_settings_round_trip_through_parse_settings() -> None:
    pairs = {F.SETTINGS_INITIAL_WINDOW_SIZE: 4 << 20, F.SETTINGS_MAX_FRAME_SIZE: 16_384,
             F.SETTINGS_MAX_CONCURRENT_STREAMS: (1 << 31) - 1}
    encoded = F.settings(pairs)
    assert encoded[:9] == F.frame_head(F.SETTINGS, 0, 0, 18)
    assert encoded[9:15] == bytes([0, 4, 0, 0x40, 0, 0])
    assert F.parse_settings(encoded[9:]) == list(pairs.items())
    assert F.parse_settings(b"") == []
    assert F.settings({}) == F.frame(F.SETTINGS, 0, 0)


# ---------------------------------------------------------------------- grpc-timeout


@pytest.mark.parametrize(("value", "seconds"), [
    ("1H", 3600.0), ("2M", 120.0), ("3S", 3.0), ("100m", 0.1), ("5u", 5e-6), ("7n", 7e-9),
    ("0S", 0.0), ("12345678S", 12_345_678.0), ("00000100m", 0.1),
])
def test_parse_timeout_units(value: str, seconds: float) -> None:
    assert parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [
    "", "S", "1", "1s", "1x", "1h", "-1S", "+1S", "1.5S", " 1S", "1S ", "123456789S", "0x1S",
    "1_0S",
])
def test_parse_timeout_malformed_is_none(value: str) -> None:
    assert parse_timeout(value) is None


@pytest.mark.parametrize("value", ["\u00b2S", "1\u00b3m", "\u00b9n"])
def test_parse_timeout_superscript_digits_are_malformed(value: str) -> None:
    assert parse_timeout(value) is None


# ---------------------------------------------------------------------- header blocks


def test_response_headers_are_status_200_and_grpc_content_type() -> None:
    assert decode_block(RESPONSE_HEADERS) == [(":status", "200"), ("content-type", "application/grpc")]


def test_trailers_carry_status_and_only_a_nonempty_message() -> None:
    assert decode_block(trailers(0, "")) == [("grpc-status", "0")]
    assert decode_block(trailers(5, "not found")) == [
        ("grpc-status", "5"), ("grpc-message", "not found")]


def test_trailers_only_response_includes_the_headers() -> None:
    assert decode_block(trailers(3, "bad", headers_too=True)) == [
        (":status", "200"), ("content-type", "application/grpc"),
        ("grpc-status", "3"), ("grpc-message", "bad")]


def test_grpc_message_is_percent_encoded() -> None:
    fields = dict(decode_block(trailers(2, "bad 100% \u043a\u043b\u044e\u0447\n~")))
    assert fields["grpc-message"] == "bad 100%25 %D0%BA%D0%BB%D1%8E%D1%87%0A~"
    assert dict(decode_block(trailers(2, " !\"#$&'()*+,/:;<=>?@[\\]^_`{|}~")))["grpc-message"] == (
        " !\"#$&'()*+,/:;<=>?@[\\]^_`{|}~")


@pytest.mark.parametrize("length", [126, 127, 128, 300, 20_000])
def test_long_messages_use_multibyte_hpack_lengths(length: int) -> None:
    message = "a" * length
    block = trailers(13, message)
    assert dict(decode_block(block))["grpc-message"] == message
    if length == 300:
        assert b"\x7f\xad\x01" + b"a" * 300 in block


def test_request_headers_split_pseudo_headers_grpc_fields_and_metadata() -> None:
    headers = RequestHeaders([
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/etcdserverpb.KV/Range"),
        (b":authority", b"x"), (b"content-type", b"application/grpc+proto"), (b"te", b"trailers"),
        (b"grpc-timeout", b"250m"), (b"grpc-encoding", b"gzip"),
        (b"grpc-accept-encoding", b"gzip"), (b"user-agent", b"grpc-python/1.85"),
        (b"hasleader", b"true"), (b"trace-bin", b"AP8B"), (b"odd-bin", b"AP8"),
    ])
    assert (headers.method, headers.path) == ("POST", "/etcdserverpb.KV/Range")
    assert headers.content_type == "application/grpc+proto"
    assert headers.timeout_s == pytest.approx(0.25)
    assert headers.encoding == "gzip"
    assert headers.metadata == (
        ("user-agent", "grpc-python/1.85"), ("hasleader", "true"),
        ("trace-bin", b"\x00\xff\x01"), ("odd-bin", b"\x00\xff"))


def test_request_headers_defaults() -> None:
    headers = RequestHeaders([(b":path", b"/a/b")])
    assert (headers.timeout_s, headers.encoding, headers.metadata) == (None, "identity", ())
