"""api/server/peer_codec.py: raft messages round-trip, the wire tables are pinned, and bad
bytes from a peer raise PeerCodecError and nothing else."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.server.peer_codec import (
    ENTRY_TYPE_CODES,
    MESSAGE_TYPE_CODES,
    WIRE_VERSION,
    PeerCodecError,
    decode_message,
    encode_message,
)
from raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

u64 = st.integers(min_value=0, max_value=2**64 - 1)
small_bytes = st.binary(max_size=64)

entries = st.builds(
    Entry, term=u64, index=u64, type=st.sampled_from(list(EntryType)), data=small_bytes
)
conf_states = st.builds(
    ConfState,
    voters=st.lists(u64, max_size=5).map(tuple),
    learners=st.lists(u64, max_size=3).map(tuple),
)
snapshots = st.builds(
    Snapshot,
    metadata=st.builds(SnapshotMetadata, index=u64, term=u64, conf_state=conf_states),
    data=small_bytes,
)
messages = st.builds(
    Message,
    type=st.sampled_from(list(MessageType)),
    to=u64,
    from_=u64,
    term=u64,
    log_term=u64,
    index=u64,
    entries=st.lists(entries, max_size=8).map(tuple),
    commit=u64,
    snapshot=st.none() | snapshots,
    reject=st.booleans(),
    reject_hint=u64,
    context=small_bytes,
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_round_trip(msg: Message) -> None:
    assert decode_message(encode_message(msg)) == msg


def test_entries_given_as_a_list_decode_as_a_tuple() -> None:
    ents = [Entry(1, 1), Entry(1, 2, EntryType.CONF_CHANGE, b"cc")]
    msg = Message(MessageType.APP, to=2, from_=1, entries=ents)
    got = decode_message(encode_message(msg))
    assert got.entries == tuple(ents)
    assert isinstance(got.entries, tuple)


def test_message_type_codes_are_etcd_raftpb_numbers() -> None:
    # The wire depends on these numbers: changing one breaks mixed-version clusters.
    assert [MESSAGE_TYPE_CODES[t] for t in MessageType] == list(range(19))
    assert MESSAGE_TYPE_CODES[MessageType.APP] == 3
    assert MESSAGE_TYPE_CODES[MessageType.SNAP] == 7
    assert MESSAGE_TYPE_CODES[MessageType.PRE_VOTE_RESP] == 18
    assert ENTRY_TYPE_CODES == {EntryType.NORMAL: 0, EntryType.CONF_CHANGE: 1}


def test_layout_is_the_documented_array() -> None:
    msg = Message(
        MessageType.APP, to=2, from_=1, term=3, log_term=2, index=9, commit=8,
        entries=(Entry(3, 10, data=b"a"),), context=b"c",
    )
    assert msgpack.unpackb(encode_message(msg)) == [
        WIRE_VERSION, 3, 2, 1, 3, 2, 9, 8, False, 0, b"c", [3, 10, 0, b"a"], None,
    ]


def test_big_msgapp_is_compact() -> None:
    ents = tuple(Entry(5, 1000 + i, data=b"x" * 64) for i in range(1000))
    data = encode_message(Message(MessageType.APP, to=2, from_=1, entries=ents))
    # 64 payload bytes + a few bytes of framing per entry; no per-entry field names.
    assert len(data) < 1000 * 75


def _valid_body() -> list[object]:
    body: list[object] = msgpack.unpackb(encode_message(Message(MessageType.HEARTBEAT, to=2, from_=1)))
    return body


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, 2),  # unknown wire version
        (1, 99),  # unknown message type
        (1, "MsgApp"),  # enum value string instead of a code
        (2, -1),  # negative id
        (4, "3"),  # term as a string
        (8, 1),  # reject as an int
        (10, "ctx"),  # context as str
        (11, [1, 2, 0]),  # entries not a multiple of 4
        (11, [1, 2, 7, b""]),  # unknown entry type
        (11, [1, -2, 0, b""]),  # negative index
        (11, [1, 2, 0, "data"]),  # data as str
        (11, {"a": 1}),  # entries not a list
        (12, [1, 2, [], []]),  # snapshot with 4 fields
        (12, [1, 2, [1, "x"], [], b""]),  # bad voter id
        (12, [1, 2, [], [], "body"]),  # snapshot data as str
    ],
)
def test_malformed_fields_are_refused(index: int, value: object) -> None:
    body = _valid_body()
    body[index] = value
    with pytest.raises(PeerCodecError):
        decode_message(msgpack.packb(body))


def test_wrong_field_count_and_non_array_are_refused() -> None:
    body = _valid_body()
    for bad in (body[:-1], [*body, 0], {"type": 3}, 7, []):
        with pytest.raises(PeerCodecError):
            decode_message(msgpack.packb(bad))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_peer_codec_error(data: bytes) -> None:
    try:
        decode_message(data)
    except PeerCodecError:
        pass


@settings(max_examples=200, deadline=None)
@given(messages, st.data())
def test_corrupted_encodings_raise_only_peer_codec_error(msg: Message, data: st.DataObject) -> None:
    raw = bytearray(encode_message(msg))
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[pos] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    try:
        decode_message(bytes(raw[:cut]))
    except PeerCodecError:
        pass


@pytest.mark.parametrize(
    "msg",
    [
        Message(MessageType.APP, to=-1),
        Message(MessageType.APP, to=2, commit=2**64),
        Message(MessageType.APP, to=2, entries=(Entry(1, 2**64),)),
    ],
)
def test_unencodable_value_is_caller_misuse(msg: Message) -> None:
    with pytest.raises(ValueError) as info:
        encode_message(msg)
    assert not isinstance(info.value, PeerCodecError)
