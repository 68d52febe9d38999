"""api.grpc.watch_wire: hand-built WatchResponse bytes equal protobuf's own serialization."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from api.grpc.watch_wire import WatchResponseEncoder, serialize_response, varint
from api.proto import rpc_pb2
from api.service.convert import event_to_pb
from kvstore.types import Event, EventType, KeyValue

U63 = st.integers(min_value=0, max_value=(1 << 63) - 1)
U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)

kvs = st.builds(
    KeyValue, key=st.binary(min_size=1, max_size=40), create_revision=U63, mod_revision=U63,
    version=U63, value=st.binary(max_size=300), lease=U63,
)
events = st.builds(Event, type=st.sampled_from(list(EventType)), kv=kvs,
                   prev_kv=st.none() | kvs)


@settings(max_examples=300)
@given(cluster_id=U64, member_id=U64, revision=U63, term=U64,
       watch_id=st.integers(min_value=0, max_value=(1 << 63) - 1),
       evs=st.lists(events, max_size=5))
def test_events_response_equals_protobuf(cluster_id: int, member_id: int, revision: int,
                                         term: int, watch_id: int, evs: list[Event]) -> None:
    enc = WatchResponseEncoder()
    header = enc.header_field(cluster_id, member_id, revision, term)
    got = enc.events_response(header, watch_id, tuple(evs))
    want = rpc_pb2.WatchResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=cluster_id, member_id=member_id,
                                      revision=revision, raft_term=term),
        watch_id=watch_id, events=[event_to_pb(ev) for ev in evs],
    )
    assert got == want.SerializeToString()
    assert rpc_pb2.WatchResponse.FromString(got) == want


def test_cached_event_is_reused_only_for_the_same_object() -> None:
    enc = WatchResponseEncoder()
    a = Event(EventType.PUT, KeyValue(b"k", 1, 1, 1, b"a", 0), None)
    b = Event(EventType.PUT, KeyValue(b"k", 1, 1, 1, b"b", 0), None)
    assert enc.event_field(a) is enc.event_field(a)
    assert enc.event_field(a) != enc.event_field(b)


def test_header_cache_follows_the_revision() -> None:
    enc = WatchResponseEncoder()
    assert enc.header_field(1, 2, 3, 4) != enc.header_field(1, 2, 5, 4)


def test_varint_matches_protobuf_for_negative_ids() -> None:
    assert varint(-1) == b"\xff" * 9 + b"\x01"
    assert serialize_response(rpc_pb2.WatchResponse(watch_id=-1)) == b"\x10" + varint(-1)
    assert serialize_response(b"raw") == b"raw"


def test_cache_stays_within_its_byte_budget(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from api.grpc import watch_wire
    monkeypatch.setattr(watch_wire, "EVENT_CACHE_BYTES_MAX", 10_000)
    enc = WatchResponseEncoder()
    evs = [Event(EventType.PUT, KeyValue(b"k%d" % i, 1, 1, 1, b"v" * 1000, 0), None)
           for i in range(50)]
    for ev in evs:
        field = enc.event_field(ev)
        assert field.endswith(b"v" * 1000)
    assert enc._cached_bytes <= 10_000
    assert enc._cached_bytes == sum(len(f) for _, f in enc._events.values())
    assert 5 <= len(enc._events) <= 10
