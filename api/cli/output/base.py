"""The printer interface (one method per thing etcdctl displays) and the records it takes.

Printers receive the raw protobuf responses, so every format sees every field the server
sent (-w protobuf re-marshals them byte for byte). A format that cannot show something
raises etcdctl's "<format> not supported as output format" (exit 4), after the RPC ran,
as etcdctl does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from api.cli.errors import EXIT_BAD_FEATURE, CliError
from api.proto import rpc_pb2

__all__ = ["DbStatus", "EndpointHashKV", "EndpointHealth", "EndpointStatus", "Out", "Printer"]


class Out:
    """stdout/stderr as `main` was given them (looked up per call: tests swap sys.stdout)."""

    def __init__(self, stdout: IO[str], stderr: IO[str]) -> None:
        self.stdout = stdout
        self.stderr = stderr

    def line(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def err(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def raw(self, data: bytes) -> None:
        buffer = getattr(self.stdout, "buffer", None)
        if buffer is None:
            self.stdout.write(data.decode("latin-1"))
        else:
            self.stdout.flush()
            buffer.write(data)
            buffer.flush()

    def flush(self) -> None:
        self.stdout.flush()


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    endpoint: str
    health: bool
    took: str
    error: str = ""


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    endpoint: str
    resp: rpc_pb2.StatusResponse


@dataclass(frozen=True, slots=True)
class EndpointHashKV:
    endpoint: str
    resp: rpc_pb2.HashKVResponse


@dataclass(frozen=True, slots=True)
class DbStatus:
    hash: int
    revision: int
    total_key: int
    total_size: int


class Printer:
    """Defaults: unsupported. Subclasses implement what their format can show."""

    name = ""

    def __init__(self, out: Out, *, hex_: bool = False, value_only: bool = False) -> None:
        self.out = out
        self.hex = hex_
        self.value_only = value_only

    def unsupported(self) -> CliError:
        return CliError(EXIT_BAD_FEATURE, f"{self.name} not supported as output format")

    def _no(self, *_: Any) -> None:
        raise self.unsupported()

    get = put = delete = txn = watch = _no
    lease_grant = lease_revoke = lease_ttl = lease_keepalive = lease_list = _no
    member_add = member_remove = member_update = member_promote = member_list = _no
    endpoint_health = endpoint_status = endpoint_hashkv = _no
    alarm = move_leader = db_status = _no
