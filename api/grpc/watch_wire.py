"""WatchResponse bytes for event batches, built from pieces encoded once per event.

A put watched by 1,000 watchers is sent 1,000 times. Building a protobuf message per
watcher and event (and serializing it again) was most of the server's cost in a fan-out;
here each event is encoded once (cached by identity: the watch hub shares one Event object
between every watcher it reaches) and the header once per revision, and a watcher's
response is the concatenation header + watch_id + events. Protobuf writes fields in field
number order, which this follows, so the bytes equal `WatchResponse.SerializeToString()`
(a test checks). The Watch method is registered with `serialize_response`, which passes
these bytes through and serializes every other response (created, canceled, progress,
fragments) as usual.
"""

from __future__ import annotations

import grpc

from api.proto import rpc_pb2
from api.service.convert import event_to_pb
from kvstore.types import Event

# WatchResponse field tags (field number << 3 | wire type).
_HEADER_TAG = b"\x0a"  # 1: header, length-delimited
_WATCH_ID_TAG = b"\x10"  # 2: watch_id, varint
_EVENTS_TAG = b"\x5a"  # 11: events, length-delimited
# Events encoded recently; a fan-out reuses each one while it is in here. Bounded by count
# and by bytes (values go up to --max-request-bytes; the cache also holds the events).
EVENT_CACHE_MAX = 4096
EVENT_CACHE_BYTES_MAX = 32 << 20


def varint(n: int) -> bytes:
    """Protobuf base-128 varint; a negative int64 takes ten bytes (two's complement)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class WatchResponseEncoder:
    """Encodes event batches; one per server (the caches are shared by its streams)."""

    def __init__(self) -> None:
        # id(event) -> (event, its encoded `events` field); holding the event keeps its id
        # from being reused while the entry lives.
        self._events: dict[int, tuple[Event, bytes]] = {}
        self._cached_bytes = 0
        self._header_key: tuple[int, int, int, int] | None = None
        self._header_field = b""

    def event_field(self, ev: Event) -> bytes:
        hit = self._events.get(id(ev))
        if hit is not None and hit[0] is ev:
            return hit[1]
        body = event_to_pb(ev).SerializeToString()
        field = _EVENTS_TAG + varint(len(body)) + body
        if hit is not None:  # a dead event's id, reused: forget the stale entry
            del self._events[id(ev)]
            self._cached_bytes -= len(hit[1])
        events = self._events
        while events and (len(events) >= EVENT_CACHE_MAX
                          or self._cached_bytes + len(field) > EVENT_CACHE_BYTES_MAX):
            _, old = events.pop(next(iter(events)))
            self._cached_bytes -= len(old)
        events[id(ev)] = (ev, field)
        self._cached_bytes += len(field)
        return field

    def header_field(self, cluster_id: int, member_id: int, revision: int, raft_term: int) -> bytes:
        key = (cluster_id, member_id, revision, raft_term)
        if key != self._header_key:
            body = rpc_pb2.ResponseHeader(
                cluster_id=cluster_id, member_id=member_id, revision=revision,
                raft_term=raft_term).SerializeToString()
            self._header_key = key
            self._header_field = _HEADER_TAG + varint(len(body)) + body
        return self._header_field

    def events_response(self, header_field: bytes, watch_id: int, events: tuple[Event, ...]) -> bytes:
        """The serialized WatchResponse{header, watch_id, events}."""
        parts = [header_field]
        if watch_id:
            parts.append(_WATCH_ID_TAG + varint(watch_id))
        parts.extend(self.event_field(ev) for ev in events)
        return b"".join(parts)


def serialize_response(response: rpc_pb2.WatchResponse | bytes) -> bytes:
    if type(response) is bytes:
        return response
    return response.SerializeToString()  # type: ignore[union-attr]


def add_watch_servicer(servicer: object, server: grpc.aio.Server) -> None:
    """Register etcdserverpb.Watch/Watch with `serialize_response` (see the module doc)."""
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.Watch,  # type: ignore[attr-defined]
        request_deserializer=rpc_pb2.WatchRequest.FromString,
        response_serializer=serialize_response,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("etcdserverpb.Watch", {"Watch": handler}),))
