"""What every command gets: global options, the output streams, the printer and the client.

`Ctx.unary` runs one RPC through api.client's connection (failover and the safe-retry rule)
and returns the raw protobuf response, so printers can show every field. On a server error
it writes the warning line clientv3 3.4's retry interceptor logs before etcdctl's own
`Error:` line (scripts and our differential tests see the same stderr), then re-raises.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from api.cli.errors import EXIT_BAD_FEATURE, CliError
from api.cli.flags import parse_duration_s
from api.cli.output.base import Out, Printer
from api.cli.output.fields import FieldsPrinter
from api.cli.output.json_printer import JsonPrinter
from api.cli.output.protobuf_printer import ProtobufPrinter
from api.cli.output.simple import SimplePrinter
from api.cli.output.table import RichPrinter, TablePrinter
from api.client import Client, EtcdError

__all__ = ["Ctx", "Globals"]

T = TypeVar("T")

_PRINTERS: dict[str, type[Printer]] = {
    "simple": SimplePrinter, "json": JsonPrinter, "fields": FieldsPrinter,
    "protobuf": ProtobufPrinter, "table": TablePrinter,
}


@dataclass(frozen=True, slots=True)
class Globals:
    endpoints: tuple[str, ...]
    dial_timeout_s: float
    command_timeout_s: float
    write_out: str
    write_out_given: bool
    hex: bool
    debug: bool
    cacert: str
    cert: str
    key: str

    @classmethod
    def from_values(cls, v: dict[str, Any], given: set[str]) -> Globals:
        endpoints = tuple(e.strip() for ep in v["endpoints"] for e in ep.split(",") if e.strip())
        return cls(
            endpoints=endpoints, dial_timeout_s=parse_duration_s(v["dial_timeout"]),
            command_timeout_s=parse_duration_s(v["command_timeout"]), write_out=v["write_out"],
            write_out_given="write-out" in given, hex=v["hex"], debug=v["debug"],
            cacert=v["cacert"], cert=v["cert"], key=v["key"],
        )


def _go_code(code: str) -> str:
    """grpc code name (INVALID_ARGUMENT) as Go's codes.Code prints it (InvalidArgument)."""
    if code == "CANCELLED":
        return "Canceled"
    return "".join(part.capitalize() for part in code.split("_"))


def _endpoint_host(endpoint: str) -> str:
    for scheme in ("http://", "https://"):
        if endpoint.startswith(scheme):
            return endpoint[len(scheme):]
    return endpoint


class Ctx:
    def __init__(self, g: Globals, out: Out, *, terminal: bool) -> None:
        self.g = g
        self.out = out
        self.terminal = terminal
        self._client: Client | None = None
        self._client_id = uuid.uuid4()

    def printer(self, *, value_only: bool = False) -> Printer:
        fmt = self.g.write_out
        if fmt not in _PRINTERS:
            raise CliError(EXIT_BAD_FEATURE, "unsupported output format")
        cls = _PRINTERS[fmt]
        if fmt == "simple" and self.terminal and not self.g.write_out_given:
            cls = RichPrinter
        return cls(self.out, hex_=self.g.hex, value_only=value_only)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(
                list(self.g.endpoints), timeout_s=self.g.command_timeout_s,
                ca_file=self.g.cacert or None, cert_file=self.g.cert or None,
                key_file=self.g.key or None,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def unary(
        self, fn: Callable[[Any], Callable[..., Awaitable[T]]], request: Any, *,
        read_only: bool, endpoint: str | None = None, require_leader: bool = True,
    ) -> T:
        try:
            return await self.client.conn.call(
                fn, request, read_only=read_only, timeout_s=self.g.command_timeout_s,
                endpoint=endpoint, require_leader=require_leader,
            )
        except EtcdError as e:
            self.warn_retry(e, endpoint)
            raise

    def warn_retry(self, e: EtcdError, endpoint: str | None = None) -> None:
        now = datetime.datetime.now(datetime.UTC)
        line = {
            "level": "warn",
            "ts": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "caller": "clientv3/retry_interceptor.go:62",
            "msg": "retrying of unary invoker failed",
            "target": f"endpoint://client-{self._client_id}/"
                      f"{_endpoint_host(endpoint or self.g.endpoints[0])}",
            "attempt": 0,
            "error": f"rpc error: code = {_go_code(e.code)} desc = {e.message}",
        }
        self.out.err(json.dumps(line, separators=(",", ":")))
