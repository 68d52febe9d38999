"""Raft messages on the peer wire: a versioned msgpack layout of `raft.types.Message`.

One message is one msgpack array (never pickle: the bytes come from another process, and a
class-layout-dependent format would tie the wire to our Python classes):

    [WIRE_VERSION, type, to, from, term, log_term, index, commit, reject, reject_hint,
     context, entries, snapshot]

* `type` is the small integer of `MESSAGE_TYPE_CODES`, which are etcd raftpb's
  `MessageType` numbers (MsgHup=0 ... MsgPreVoteResp=18). We do not put `Enum.value`
  strings on the wire: integers are shorter, and the table below is the one place that
  fixes them, so renaming a Python enum member can never change the wire. Codes are part
  of the protocol: never renumber, only append.
* `entries` is ONE flat array `[term, index, entry_type, data, term, index, ...]`
  (4 items per entry) rather than an array of arrays: a MsgApp carries hundreds of small
  entries, and a flat list halves the msgpack objects to build and walk. `entry_type`
  uses `ENTRY_TYPE_CODES` (etcd's EntryNormal=0, EntryConfChange=1).
* `snapshot` is nil or `[index, term, voters, learners, data]`. The peer transport sends
  snapshot bodies as a separate chunked stream (api/server/transport_snapshot.py), so
  `data` is normally empty here, but a small inline body round-trips too.

Decoding treats the bytes as untrusted: every field's type is checked and any malformed
input raises `PeerCodecError` (never a bare TypeError from deep inside), so one bad frame
costs a peer connection, never the member. Entry validation is a cheap `type(x) is int`
per field; see bench numbers in the transport's tests for the cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgpack

from raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

__all__ = [
    "ENTRY_TYPE_CODES",
    "MESSAGE_TYPE_CODES",
    "WIRE_VERSION",
    "PeerCodecError",
    "decode_message",
    "encode_message",
]

WIRE_VERSION = 1

# etcd raftpb.MessageType numbers. Part of the wire protocol: never renumber, only append.
MESSAGE_TYPE_CODES: dict[MessageType, int] = {
    MessageType.HUP: 0,
    MessageType.BEAT: 1,
    MessageType.PROP: 2,
    MessageType.APP: 3,
    MessageType.APP_RESP: 4,
    MessageType.VOTE: 5,
    MessageType.VOTE_RESP: 6,
    MessageType.SNAP: 7,
    MessageType.HEARTBEAT: 8,
    MessageType.HEARTBEAT_RESP: 9,
    MessageType.UNREACHABLE: 10,
    MessageType.SNAP_STATUS: 11,
    MessageType.CHECK_QUORUM: 12,
    MessageType.TRANSFER_LEADER: 13,
    MessageType.TIMEOUT_NOW: 14,
    MessageType.READ_INDEX: 15,
    MessageType.READ_INDEX_RESP: 16,
    MessageType.PRE_VOTE: 17,
    MessageType.PRE_VOTE_RESP: 18,
}
# etcd raftpb.EntryType numbers.
ENTRY_TYPE_CODES: dict[EntryType, int] = {EntryType.NORMAL: 0, EntryType.CONF_CHANGE: 1}

_MESSAGE_TYPE_OF: dict[int, MessageType] = {v: k for k, v in MESSAGE_TYPE_CODES.items()}
_ENTRY_TYPE_OF: dict[int, EntryType] = {v: k for k, v in ENTRY_TYPE_CODES.items()}
_NORMAL = EntryType.NORMAL
_UINT64_MAX = (1 << 64) - 1
_FIELDS = 13


class PeerCodecError(ValueError):
    """Bytes from a peer that are not a message of this wire version (a peer fault)."""


def _pack_entries(entries: Sequence[Entry]) -> list[object]:
    flat: list[object] = []
    append = flat.append
    codes = ENTRY_TYPE_CODES
    for e in entries:
        append(e.term)
        append(e.index)
        append(0 if e.type is _NORMAL else codes[e.type])
        append(e.data)
    return flat


def encode_message(msg: Message) -> bytes:
    """The wire bytes of `msg`. Raises ValueError for a value the layout cannot carry (a
    negative or > 64-bit integer): that is caller misuse, not a peer fault."""
    # The decoder refuses negative ids and indexes; refuse them here too, so a bug upstream
    # is reported at its source instead of costing the peer connection.
    if min(msg.to, msg.from_, msg.term, msg.log_term, msg.index, msg.commit, msg.reject_hint) < 0:
        raise ValueError(f"message has a negative field: {msg!r:.200}")
    snap = msg.snapshot
    packed_snap: list[object] | None = None
    if snap is not None:
        meta = snap.metadata
        packed_snap = [
            meta.index,
            meta.term,
            list(meta.conf_state.voters),
            list(meta.conf_state.learners),
            snap.data,
        ]
    body = [
        WIRE_VERSION,
        MESSAGE_TYPE_CODES[msg.type],
        msg.to,
        msg.from_,
        msg.term,
        msg.log_term,
        msg.index,
        msg.commit,
        msg.reject,
        msg.reject_hint,
        msg.context,
        _pack_entries(msg.entries) if msg.entries else [],
        packed_snap,
    ]
    try:
        return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]
    except (OverflowError, TypeError) as exc:
        raise ValueError(f"message cannot be encoded: {exc}") from None


def _uint(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value <= _UINT64_MAX:
        raise PeerCodecError(f"field {name} is not a uint64: {value!r:.40}")
    return value


def _bytes(value: object, name: str) -> bytes:
    if type(value) is not bytes:
        raise PeerCodecError(f"field {name} is not bytes")
    return value


def _ids(value: object, name: str) -> tuple[int, ...]:
    if type(value) is not list:
        raise PeerCodecError(f"field {name} is not a list")
    return tuple(_uint(v, name) for v in value)


# Decoding builds thousands of entries per MsgApp, and a frozen dataclass's __init__ goes
# through object.__setattr__ per field. Entry is a slots class, so its slot descriptors can
# fill a bare instance directly: the same object, about 40% cheaper (tested against Entry()).
if tuple(getattr(Entry, "__slots__", ())) != ("term", "index", "type", "data"):
    raise ImportError("raft.types.Entry changed its slots: update peer_codec._new_entry")
_entry_new = object.__new__
_set_term = Entry.__dict__["term"].__set__
_set_index = Entry.__dict__["index"].__set__
_set_type = Entry.__dict__["type"].__set__
_set_data = Entry.__dict__["data"].__set__


def _new_entry(term: int, index: int, kind: EntryType, data: bytes) -> Entry:
    e: Entry = _entry_new(Entry)
    _set_term(e, term)
    _set_index(e, index)
    _set_type(e, kind)
    _set_data(e, data)
    return e


def _unpack_entries(flat: object) -> tuple[Entry, ...]:
    if type(flat) is not list or len(flat) % 4:
        raise PeerCodecError("entries is not a flat list of 4-tuples")
    out: list[Entry] = []
    append = out.append
    type_of = _ENTRY_TYPE_OF
    it = iter(flat)
    # zip(it, it, it, it) walks the flat list four items at a time without slicing.
    for term, index, code, data in zip(it, it, it, it, strict=True):
        if type(term) is not int or type(index) is not int or type(data) is not bytes:
            raise PeerCodecError("malformed entry")
        if term < 0 or index < 0:
            raise PeerCodecError("negative entry term or index")
        kind = _NORMAL if code == 0 else type_of.get(code)
        if kind is None:
            raise PeerCodecError(f"unknown entry type {code!r:.20}")
        append(_new_entry(term, index, kind, data))
    return tuple(out)


def _unpack_snapshot(value: object) -> Snapshot | None:
    if value is None:
        return None
    if type(value) is not list or len(value) != 5:
        raise PeerCodecError("malformed snapshot")
    index, term, voters, learners, data = value
    meta = SnapshotMetadata(
        index=_uint(index, "snapshot.index"),
        term=_uint(term, "snapshot.term"),
        conf_state=ConfState(voters=_ids(voters, "voters"), learners=_ids(learners, "learners")),
    )
    return Snapshot(metadata=meta, data=_bytes(data, "snapshot.data"))


def decode_message(data: bytes) -> Message:
    """The message in `data`; raises PeerCodecError for anything else."""
    try:
        body = msgpack.unpackb(data, use_list=True, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise PeerCodecError(f"not msgpack: {type(exc).__name__}") from None
    if type(body) is not list or not body:
        raise PeerCodecError("message is not a msgpack array")
    if body[0] != WIRE_VERSION:
        raise PeerCodecError(f"unknown wire version {body[0]!r:.20}")
    if len(body) != _FIELDS:
        raise PeerCodecError(f"message has {len(body)} fields, expected {_FIELDS}")
    (_v, code, to, from_, term, log_term, index, commit, reject, reject_hint,
     context, entries, snap) = body  # fmt: skip
    mtype = _MESSAGE_TYPE_OF.get(code) if type(code) is int else None
    if mtype is None:
        raise PeerCodecError(f"unknown message type {code!r:.20}")
    if type(reject) is not bool:
        raise PeerCodecError("field reject is not a bool")
    return Message(
        type=mtype,
        to=_uint(to, "to"),
        from_=_uint(from_, "from"),
        term=_uint(term, "term"),
        log_term=_uint(log_term, "log_term"),
        index=_uint(index, "index"),
        entries=_unpack_entries(entries) if entries else (),
        commit=_uint(commit, "commit"),
        snapshot=_unpack_snapshot(snap),
        reject=reject,
        reject_hint=_uint(reject_hint, "reject_hint"),
        context=_bytes(context, "context"),
    )
