"""Raft entry payloads: a versioned msgpack encoding of the requests a member proposes.

An entry's data is `msgpack([FORMAT_VERSION, proposal_id, request])` where `request` is a
frozen dataclass from the registry below, encoded as a msgpack extension whose type code
names the class and whose body is the list of its fields in declaration order. Nested
dataclasses (a Txn's compares and ops) use the same rule, so one mechanism serves every
request type. Enum fields are restored from their declared type on decode. The registry's
codes are part of the on-disk format (entries live in the WAL): never renumber them, only
append. Never pickle.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from kvstore import types as kt

FORMAT_VERSION = 1


class CodecError(ValueError):
    """An entry payload that this version cannot decode (unknown version or type code)."""


@dataclass(frozen=True, slots=True)
class AlarmRequest:
    """Raise or clear an alarm (etcdserverpb.AlarmRequest). action: GET=0, ACTIVATE=1, DEACTIVATE=2;
    alarm: NONE=0, NOSPACE=1, CORRUPT=2."""

    action: int
    member_id: int
    alarm: int


@dataclass(frozen=True, slots=True)
class MemberAttributes:
    """A member's name and client URLs, published through the log after it starts (as etcd)."""

    member_id: int
    name: str
    client_urls: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MemberUpdate:
    """New peer URLs of a member (etcdserverpb.MemberUpdate): not a raft conf change."""

    member_id: int
    peer_urls: tuple[str, ...]


_REGISTRY: tuple[type, ...] = (
    kt.KeyValue,  # 1
    kt.RangeRequest,  # 2
    kt.PutRequest,  # 3
    kt.DeleteRangeRequest,  # 4
    kt.Compare,  # 5
    kt.TxnRequest,  # 6
    kt.CompactionRequest,  # 7
    kt.LeaseGrantRequest,  # 8
    kt.LeaseRevokeRequest,  # 9
    kt.LeaseCheckpointRequest,  # 10
    AlarmRequest,  # 11
    MemberAttributes,  # 12
    MemberUpdate,  # 13
)
_CODE_OF: dict[type, int] = {cls: code for code, cls in enumerate(_REGISTRY, start=1)}


def _enum_converters(cls: type) -> tuple[Callable[[Any], Any] | None, ...]:
    hints = typing.get_type_hints(cls)
    converters: list[Callable[[Any], Any] | None] = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        converters.append(hint if isinstance(hint, type) and issubclass(hint, enum.Enum) else None)
    return tuple(converters)


_CONVERTERS = {cls: _enum_converters(cls) for cls in _REGISTRY}
# Classes with no enum field are built straight from the decoded tuple.
_PLAIN = frozenset(cls for cls in _REGISTRY if not any(_CONVERTERS[cls]))
# Field values in declaration order, without dataclasses.fields() on every proposal.
_FIELD_NAMES = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in _REGISTRY}


def _default(obj: object) -> msgpack.ExtType:
    cls = type(obj)
    code = _CODE_OF.get(cls)
    if code is None:
        raise TypeError(f"cannot encode {cls.__name__} in a raft entry")
    fields = [getattr(obj, name) for name in _FIELD_NAMES[cls]]
    return msgpack.ExtType(code, msgpack.packb(fields, default=_default, use_bin_type=True))


def _ext_hook(code: int, data: bytes) -> object:
    if not 1 <= code <= len(_REGISTRY):
        raise CodecError(f"unknown request type code {code}")
    cls = _REGISTRY[code - 1]
    fields = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, use_list=False)
    if cls in _PLAIN:
        if len(fields) != len(_FIELD_NAMES[cls]):
            raise CodecError(f"{cls.__name__}: {len(fields)} fields, expected {len(_FIELD_NAMES[cls])}")
        return cls(*fields)
    converters = _CONVERTERS[cls]
    args = [conv(v) if conv is not None else v for conv, v in zip(converters, fields, strict=True)]
    return cls(*args)


def encode(proposal_id: int, request: object) -> bytes:
    return msgpack.packb([FORMAT_VERSION, proposal_id, request], default=_default, use_bin_type=True)  # type: ignore[no-any-return]


def decode(data: bytes) -> tuple[int, object]:
    """Returns (proposal_id, request)."""
    try:
        version, proposal_id, request = msgpack.unpackb(
            data, ext_hook=_ext_hook, raw=False, use_list=False
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CodecError(f"undecodable entry payload: {exc}") from exc
    if version != FORMAT_VERSION:
        raise CodecError(f"unsupported entry format version {version}")
    return int(proposal_id), request
