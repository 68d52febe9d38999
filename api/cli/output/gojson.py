"""Go encoding/json of etcd's gogoproto structs, as etcdctl -w json prints them.

The rules (facts of Go's encoder and gogoproto's generated tags):

* a field's JSON name is its .proto field name as declared (`cluster_id`, `peerURLs`, `ID`);
* every field is `omitempty`: zero numbers, false, "", empty lists and unset messages vanish;
* bytes are base64, enums and 64-bit integers are bare numbers;
* a oneof is an interface field named after the oneof in CamelCase (`Response`), holding a
  wrapper struct whose only field is the member in CamelCase (`ResponsePut`);
* `<`, `>`, `&` are escaped as \\u003c, \\u003e, \\u0026.

Structs that etcdctl prints which are not protobuf messages (clientv3's WatchResponse,
LeaseGrantResponse, ...) are built as dicts by the json printer and encoded with `dumps`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = ["dumps", "to_go"]


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _scalar(fd: FieldDescriptor, value: Any) -> Any:
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return to_go(value)
    return value


def to_go(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fd in msg.DESCRIPTOR.fields:
        oneof = fd.containing_oneof
        if oneof is not None:
            if msg.WhichOneof(oneof.name) == fd.name:
                out[_camel(oneof.name)] = {_camel(fd.name): _scalar(fd, getattr(msg, fd.name))}
            continue
        value = getattr(msg, fd.name)
        if fd.is_repeated:
            if len(value):
                out[fd.name] = [_scalar(fd, v) for v in value]
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            if msg.HasField(fd.name):
                out[fd.name] = to_go(value)
        elif value:
            out[fd.name] = _scalar(fd, value)
    return out


def dumps(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )
