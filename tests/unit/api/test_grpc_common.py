"""Pure parts of the gRPC layer: watch fragmentation, listen addresses, server options."""

from __future__ import annotations

import grpc
import pytest

from api.grpc._common import ServiceLimits, _code_label
from api.grpc.watch import fragment_response
from api.proto import kv_pb2, rpc_pb2
from api.server.grpc_server import grpc_server_options, listen_address


def _response(n: int, value_bytes: int) -> rpc_pb2.WatchResponse:
    return rpc_pb2.WatchResponse(
        header=rpc_pb2.ResponseHeader(revision=9, member_id=7),
        watch_id=3,
        events=[
            kv_pb2.Event(kv=kv_pb2.KeyValue(key=b"k%d" % i, value=b"x" * value_bytes, mod_revision=9))
            for i in range(n)
        ],
    )


def test_small_or_single_event_responses_are_not_fragmented() -> None:
    small = _response(3, 10)
    assert fragment_response(small, 10_000) == [small]
    single = _response(1, 50_000)
    assert fragment_response(single, 10_000) == [single]


def test_fragments_keep_order_header_and_flag_all_but_last() -> None:
    resp = _response(10, 1000)
    parts = fragment_response(resp, 3500)
    assert len(parts) > 1
    assert [p.fragment for p in parts] == [True] * (len(parts) - 1) + [False]
    assert [e.kv.key for p in parts for e in p.events] == [e.kv.key for e in resp.events]
    assert all(p.header == resp.header and p.watch_id == 3 for p in parts)
    assert all(p.ByteSize() < 3500 or len(p.events) == 1 for p in parts)


def test_fragment_with_events_larger_than_the_limit_sends_one_per_part() -> None:
    parts = fragment_response(_response(3, 5000), 1000)
    assert [len(p.events) for p in parts] == [1, 1, 1]


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:2379", "127.0.0.1:2379"),
        ("https://localhost:12379", "localhost:12379"),
        ("http://[::1]:2379", "[::1]:2379"),
        ("unix:///tmp/kv.sock", "unix:/tmp/kv.sock"),
    ],
)
def test_listen_address(url: str, address: str) -> None:
    assert listen_address(url) == address


def test_listen_address_rejects_urls_without_port() -> None:
    with pytest.raises(ValueError):
        listen_address("http://127.0.0.1")


def test_server_options_follow_etcd() -> None:
    opts = dict(grpc_server_options(1536 * 1024 + 512 * 1024))
    assert opts["grpc.max_receive_message_length"] == 2 * 1024 * 1024
    assert opts["grpc.max_send_message_length"] == -1
    assert opts["grpc.http2.min_ping_interval_without_data_ms"] == 5000
    assert opts["grpc.http2.max_ping_strikes"] == 0


def test_limits_from_config_and_code_labels() -> None:
    class Config:
        max_request_bytes = 100
        max_txn_ops = 5
        watch_progress_notify_interval_s = 2.5

    limits = ServiceLimits.from_config(Config())
    assert (limits.max_request_bytes, limits.max_txn_ops) == (100, 5)
    assert limits.watch_progress_notify_interval_s == 2.5
    assert _code_label(grpc.StatusCode.OK) == "OK"
    assert _code_label(grpc.StatusCode.INVALID_ARGUMENT) == "InvalidArgument"
    assert _code_label(grpc.StatusCode.RESOURCE_EXHAUSTED) == "ResourceExhausted"
