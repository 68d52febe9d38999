"""-w json: Go encoding/json of what etcdctl displays (see gojson.py for the encoding rules).

Most commands print the protobuf response; the clientv3 wrapper structs etcdctl prints for
leases and watch are rebuilt here with their Go field names (flattened header, "ID"/"TTL",
"granted-ttl", "Header"/"Events"/"CompactRevision"...).
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf.message import Message

from api.cli.output.base import DbStatus, EndpointHashKV, EndpointHealth, EndpointStatus, Printer
from api.cli.output.gojson import dumps, to_go
from api.proto import rpc_pb2

__all__ = ["JsonPrinter"]


class JsonPrinter(Printer):
    name = "json"

    def _print(self, value: Any) -> None:
        self.out.line(dumps(to_go(value) if isinstance(value, Message) else value))

    def _pb(self, r: Message, *_: Any) -> None:
        self._print(r)

    get = put = delete = txn = alarm = member_add = member_list = _pb

    def lease_revoke(self, lease_id: int, r: rpc_pb2.LeaseRevokeResponse) -> None:
        self._print(r)

    def member_remove(self, member_id: int, r: Message) -> None:
        self._print(r)

    member_update = member_promote = member_remove

    def move_leader(self, leader_id: int, target_id: int, r: Message) -> None:
        self._print(r)

    def watch(self, r: rpc_pb2.WatchResponse) -> None:
        self._print({
            "Header": to_go(r.header),
            "Events": [to_go(e) for e in r.events] or None,
            "CompactRevision": r.compact_revision,
            "Canceled": r.canceled,
            "Created": r.created,
        })

    def lease_grant(self, r: rpc_pb2.LeaseGrantResponse) -> None:
        self._print({**to_go(r.header), "ID": r.ID, "TTL": r.TTL, "Error": r.error})

    def lease_ttl(self, r: rpc_pb2.LeaseTimeToLiveResponse, keys: bool) -> None:
        self._print({
            **to_go(r.header), "id": r.ID, "ttl": r.TTL, "granted-ttl": r.grantedTTL,
            "keys": [base64.b64encode(k).decode() for k in r.keys] or None,
        })

    def lease_keepalive(self, r: rpc_pb2.LeaseKeepAliveResponse) -> None:
        self._print({**to_go(r.header), "ID": r.ID, "TTL": r.TTL})

    def lease_list(self, r: rpc_pb2.LeaseLeasesResponse) -> None:
        self._print({**to_go(r.header), "leases": [{"id": x.ID} for x in r.leases] or None})

    def endpoint_health(self, results: list[EndpointHealth]) -> None:
        items = []
        for h in results:
            item: dict[str, Any] = {"endpoint": h.endpoint, "health": h.health, "took": h.took}
            if h.error:
                item["error"] = h.error
            items.append(item)
        self._print(items)

    def endpoint_status(self, statuses: list[EndpointStatus]) -> None:
        self._print([{"Endpoint": s.endpoint, "Status": to_go(s.resp)} for s in statuses])

    def endpoint_hashkv(self, hashes: list[EndpointHashKV]) -> None:
        self._print([{"Endpoint": h.endpoint, "HashKV": to_go(h.resp)} for h in hashes])

    def db_status(self, ds: DbStatus) -> None:
        self._print({"hash": ds.hash, "revision": ds.revision, "totalKey": ds.total_key,
                     "totalSize": ds.total_size})
