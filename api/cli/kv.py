"""get, put, del and compaction; the op builders are shared with txn's request lines."""

from __future__ import annotations

import sys

from api.cli.command import Command, bad_args
from api.cli.context import Ctx
from api.cli.errors import EXIT_BAD_FEATURE, EXIT_ERROR, CliError
from api.cli.flags import BOOL, INT, STRING, Flag, Parsed
from api.client import Delete, Get, Put, SortOrder, SortTarget
from api.proto import rpc_pb2

__all__ = ["COMMANDS", "DEL_FLAGS", "GET_FLAGS", "PUT_FLAGS", "del_op", "get_op", "put_op"]

GET_FLAGS = (
    Flag("consistency", STRING, "l", "Linearizable(l) or Serializable(s)"),
    Flag("order", STRING, "", "Order of results; ASCEND or DESCEND (ASCEND by default)"),
    Flag("sort-by", STRING, "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION"),
    Flag("limit", INT, 0, "Maximum number of results"),
    Flag("prefix", BOOL, False, "Get keys with matching prefix"),
    Flag("from-key", BOOL, False, "Get keys that are greater than or equal to the given key using byte compare"),
    Flag("rev", INT, 0, "Specify the kv revision"),
    Flag("keys-only", BOOL, False, "Get only the keys"),
    Flag("print-value-only", BOOL, False, 'Only write values when using the "simple" output format'),
)
PUT_FLAGS = (
    Flag("lease", STRING, "0", "lease ID (in hexadecimal) to attach to the key"),
    Flag("prev-kv", BOOL, False, "return the previous key-value pair before modification"),
    Flag("ignore-value", BOOL, False, "updates the key using its current value"),
    Flag("ignore-lease", BOOL, False, "updates the key using its current lease"),
)
DEL_FLAGS = (
    Flag("prefix", BOOL, False, "delete keys with matching prefix"),
    Flag("prev-kv", BOOL, False, "return deleted key-value pairs"),
    Flag("from-key", BOOL, False, "delete keys that are greater than or equal to the given key using byte compare"),
)

_ORDERS = {"": SortOrder.NONE, "ASCEND": SortOrder.ASCEND, "DESCEND": SortOrder.DESCEND}
_TARGETS = {"CREATE": SortTarget.CREATE, "KEY": SortTarget.KEY, "MODIFY": SortTarget.MOD,
            "VALUE": SortTarget.VALUE, "VERSION": SortTarget.VERSION}


def _key_range(cmd: str, args: list[str], prefix: bool, from_key: bool
               ) -> tuple[bytes, bytes | None, bool, bool]:
    if not args:  # etcdctl ignores arguments after range_end
        raise bad_args(f"{cmd} command needs one argument as key and an optional argument as range_end")
    if prefix and from_key:
        raise bad_args("`--prefix` and `--from-key` cannot be set at the same time, choose one")
    key = args[0].encode()
    range_end = None
    if len(args) == 2:
        if prefix or from_key:
            raise bad_args("too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
        range_end = args[1].encode()
    if (prefix or from_key) and not key:
        # An empty key with --prefix or --from-key means every key (clientv3 uses "\0").
        return b"\0", None, False, True
    return key, range_end, prefix, from_key


def get_op(args: list[str], v: dict[str, object]) -> Get:
    key, range_end, prefix, from_key = _key_range("get", args, bool(v["prefix"]), bool(v["from_key"]))
    consistency = str(v["consistency"])
    if consistency not in ("l", "s"):
        raise CliError(EXIT_BAD_FEATURE, f'unknown consistency flag "{consistency}"')
    order_name = str(v["order"]).upper()
    if order_name not in _ORDERS:
        raise CliError(EXIT_BAD_FEATURE, f"bad sort order {v['order']}")
    target_name = str(v["sort_by"]).upper()
    if target_name and target_name not in _TARGETS:
        raise CliError(EXIT_BAD_FEATURE, f"bad sort target {v['sort_by']}")
    order = _ORDERS[order_name]
    target = _TARGETS.get(target_name, SortTarget.KEY)
    if target_name and order is SortOrder.NONE:
        order = SortOrder.ASCEND
    if target is SortTarget.KEY and order is SortOrder.ASCEND:
        order = SortOrder.NONE  # clientv3: keys already come sorted by key
    return Get(
        key, range_end=range_end, prefix=prefix, from_key=from_key, limit=int(str(v["limit"])),
        revision=int(str(v["rev"])), sort_order=order, sort_target=target,
        serializable=consistency == "s", keys_only=bool(v["keys_only"]),
    )


def parse_lease(text: str) -> int:
    try:
        value = int(text, 16)
        if value >= 2**63:
            raise OverflowError
    except ValueError:
        raise bad_args(f'bad lease ID ({_parse_int_error(text)}), expecting ID in Hex') from None
    except OverflowError:
        raise bad_args(f'bad lease ID (strconv.ParseInt: parsing "{text}": value out of range), '
                       "expecting ID in Hex") from None
    return value


def _parse_int_error(text: str) -> str:
    return f'strconv.ParseInt: parsing "{text}": invalid syntax'


def put_op(args: list[str], v: dict[str, object], *, stdin_ok: bool = True) -> Put:
    if not args:
        raise bad_args("put command needs 1 argument and input from stdin or 2 arguments")
    ignore_value = bool(v["ignore_value"])
    if ignore_value and len(args) > 1:
        raise bad_args("put command needs only 1 argument when 'ignore-value' is set")
    value = b""
    if not ignore_value:
        if len(args) > 1:
            value = args[1].encode()
        elif stdin_ok:
            value = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
            if not value:
                raise bad_args("put command needs 1 argument and input from stdin or 2 arguments")
        else:
            raise bad_args("put command needs 1 argument and input from stdin or 2 arguments")
    return Put(
        args[0].encode(), value, lease_id=parse_lease(str(v["lease"])), prev_kv=bool(v["prev_kv"]),
        ignore_value=ignore_value, ignore_lease=bool(v["ignore_lease"]),
    )


def del_op(args: list[str], v: dict[str, object]) -> Delete:
    key, range_end, prefix, from_key = _key_range("del", args, bool(v["prefix"]), bool(v["from_key"]))
    return Delete(key, range_end=range_end, prefix=prefix, from_key=from_key, prev_kv=bool(v["prev_kv"]))


async def _get(ctx: Ctx, p: Parsed) -> None:
    op = get_op(p.args, p.values)
    printer = ctx.printer(value_only=bool(p.values["print_value_only"]))
    r = await ctx.unary(lambda s: s.kv.Range, op.to_pb(), read_only=True)
    printer.get(r)


async def _put(ctx: Ctx, p: Parsed) -> None:
    op = put_op(p.args, p.values)
    printer = ctx.printer()
    r = await ctx.unary(lambda s: s.kv.Put, op.to_pb(), read_only=False)
    printer.put(r)


async def _del(ctx: Ctx, p: Parsed) -> None:
    op = del_op(p.args, p.values)
    printer = ctx.printer()
    r = await ctx.unary(lambda s: s.kv.DeleteRange, op.to_pb(), read_only=False)
    printer.delete(r)


async def _compaction(ctx: Ctx, p: Parsed) -> None:
    if len(p.args) != 1:
        raise bad_args("compaction command needs 1 argument")
    try:
        rev = int(p.args[0], 10)
    except ValueError:
        raise CliError(EXIT_ERROR, _parse_int_error(p.args[0])) from None
    ctx.printer()
    req = rpc_pb2.CompactionRequest(revision=rev, physical=bool(p.values["physical"]))
    await ctx.unary(lambda s: s.kv.Compact, req, read_only=False)
    ctx.out.line(f"compacted revision {rev}")


COMMANDS = [
    Command(("get",), "Gets the key or a range of keys", "etcdctl get [options] <key> [range_end] [flags]",
            _get, GET_FLAGS),
    Command(("put",), "Puts the given key into the store",
            "etcdctl put [options] <key> <value> (<value> can also be given from stdin) [flags]", _put, PUT_FLAGS),
    Command(("del",), "Removes the specified key or range of keys [key, range_end)",
            "etcdctl del [options] <key> [range_end] [flags]", _del, DEL_FLAGS),
    Command(("compaction",), "Compacts the event history in etcd",
            "etcdctl compaction [options] <revision> [flags]", _compaction,
            (Flag("physical", BOOL, False, "'true' to wait for compaction to physically remove all old revisions"),)),
]
