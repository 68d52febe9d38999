"""-w table (etcdctl's ASCII tables) and, on a terminal without -w, readable `rich` tables.

The ASCII layout is olekukonko/tablewriter's as etcdctl configures it: headers centred,
cells right-aligned, one space of padding, and cells longer than 30 characters wrapped on
spaces onto extra lines. Only member list, endpoint status/health/hashkv and snapshot
status have tables; everything else is "table not supported" (exit 4) with -w table, and
plain simple output under `RichPrinter`.
"""

from __future__ import annotations

from collections.abc import Sequence

from api.cli.output.base import DbStatus, EndpointHashKV, EndpointHealth, EndpointStatus
from api.cli.output.simple import SimplePrinter, member_rows, status_rows
from api.cli.output.text import go_bool, humanize_bytes
from api.proto import rpc_pb2

__all__ = ["RichPrinter", "TablePrinter", "ascii_table"]

WRAP_WIDTH = 30

MEMBER_HEADER = ("ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER")
STATUS_HEADER = ("ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER", "IS LEARNER",
                 "RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX", "ERRORS")
HEALTH_HEADER = ("ENDPOINT", "HEALTH", "TOOK", "ERROR")
HASHKV_HEADER = ("ENDPOINT", "HASH")
DB_STATUS_HEADER = ("HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE")


def _wrap(cell: str) -> list[str]:
    if len(cell) <= WRAP_WIDTH:
        return [cell]
    lines: list[str] = []
    current: str | None = None
    for word in cell.split(" "):
        if current is None:
            current = word
        elif len(current) + 1 + len(word) <= WRAP_WIDTH:
            current += " " + word
        else:
            lines.append(current)
            current = word
    lines.append(current or "")
    return lines


def ascii_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    wrapped = [[_wrap(c) for c in row] for row in rows]
    widths = [len(h) for h in header]
    for row in wrapped:
        for i, lines in enumerate(row):
            widths[i] = max(widths[i], *(len(ln) for ln in lines))
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def centred(text: str, w: int) -> str:
        left = (w - len(text)) // 2
        return " " * left + text + " " * (w - len(text) - left)

    out = [sep, "| " + " | ".join(centred(h, w) for h, w in zip(header, widths, strict=True)) + " |", sep]
    for row in wrapped:
        height = max(len(lines) for lines in row)
        for n in range(height):
            cells = [(lines[n] if n < len(lines) else "").rjust(w)
                     for lines, w in zip(row, widths, strict=True)]
            out.append("| " + " | ".join(cells) + " |")
    out.append(sep)
    return "\n".join(out)


def _health_rows(results: list[EndpointHealth]) -> list[list[str]]:
    return [[h.endpoint, go_bool(h.health), h.took, h.error] for h in results]


def _hash_rows(hashes: list[EndpointHashKV]) -> list[list[str]]:
    return [[h.endpoint, str(h.resp.hash)] for h in hashes]


def _db_rows(ds: DbStatus) -> list[list[str]]:
    return [[f"{ds.hash:x}", str(ds.revision), str(ds.total_key), humanize_bytes(ds.total_size)]]


class TablePrinter(SimplePrinter):
    """-w table: the ASCII tables; every other display is unsupported."""

    name = "table"

    def _table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.out.line(ascii_table(header, rows))

    def member_list(self, r: rpc_pb2.MemberListResponse) -> None:
        self._table(MEMBER_HEADER, member_rows(r))

    def endpoint_status(self, statuses: list[EndpointStatus]) -> None:
        self._table(STATUS_HEADER, status_rows(statuses))

    def endpoint_health(self, results: list[EndpointHealth]) -> None:
        self._table(HEALTH_HEADER, _health_rows(results))

    def endpoint_hashkv(self, hashes: list[EndpointHashKV]) -> None:
        self._table(HASHKV_HEADER, _hash_rows(hashes))

    def db_status(self, ds: DbStatus) -> None:
        self._table(DB_STATUS_HEADER, _db_rows(ds))


for _name in ("get", "put", "delete", "txn", "watch", "lease_grant", "lease_revoke", "lease_ttl",
              "lease_keepalive", "lease_list", "member_add", "member_remove", "member_update",
              "member_promote", "alarm", "move_leader"):
    setattr(TablePrinter, _name, TablePrinter._no)


class RichPrinter(TablePrinter):
    """A terminal without -w: simple output, but tables drawn by rich for tabular commands."""

    name = "simple"

    def _table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(*header, header_style="bold")
        for row in rows:
            table.add_row(*row)
        Console(file=self.out.stdout).print(table)


for _name in ("get", "put", "delete", "txn", "watch", "lease_grant", "lease_revoke", "lease_ttl",
              "lease_keepalive", "lease_list", "member_add", "member_remove", "member_update",
              "member_promote", "alarm", "move_leader"):
    setattr(RichPrinter, _name, getattr(SimplePrinter, _name))
