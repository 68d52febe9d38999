"""-w protobuf: the marshalled response message, raw bytes on stdout."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from api.cli.output.base import Printer
from api.proto import rpc_pb2

__all__ = ["ProtobufPrinter"]


class ProtobufPrinter(Printer):
    name = "protobuf"

    def _pb(self, r: Message, *_: Any) -> None:
        self.out.raw(r.SerializeToString())

    get = put = delete = txn = watch = alarm = member_add = member_list = _pb
    lease_grant = lease_keepalive = lease_list = _pb

    def lease_ttl(self, r: rpc_pb2.LeaseTimeToLiveResponse, keys: bool) -> None:
        self._pb(r)

    def lease_revoke(self, lease_id: int, r: Message) -> None:
        self._pb(r)

    def member_remove(self, member_id: int, r: Message) -> None:
        self._pb(r)

    member_update = member_promote = member_remove

    def move_leader(self, leader_id: int, target_id: int, r: Message) -> None:
        self._pb(r)
