"""txn: read compares, success ops and failure ops from stdin (etcdctl's grammar).

Each section ends with an empty line; reaching EOF before the third empty line is
"Error: EOF" (exit 3). A compare is `target("key") op "value"` with target ver/version,
c/create, m/mod, val/value or lease (hex) and op one of = != < >. A request line is a
get/put/del command line with its flags (shared with kv.py), split like a shell line.
With -i the section prompts are printed first, as etcdctl does.
"""

from __future__ import annotations

import json
import re
import sys

from api.cli.command import Command, bad_args
from api.cli.context import Ctx
from api.cli.errors import EXIT_INVALID_INPUT, CliError
from api.cli.flags import BOOL, Flag, FlagError, Parsed, parse_flags
from api.cli.kv import DEL_FLAGS, GET_FLAGS, PUT_FLAGS, del_op, get_op, put_op
from api.client import Comparison, Get, Op, Txn

__all__ = ["COMMANDS", "argify", "parse_compare", "parse_request"]

_ARG = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[^\'"\s]\S*[^\'"\s]?')
_QUOTED = r'"(?:[^"\\]|\\.)*"|`[^`]*`'
_COMPARE_REST = re.compile(rf"^({_QUOTED})\)\s+(\S+)\s+({_QUOTED})")
_TARGETS = {"ver": "VERSION", "version": "VERSION", "c": "CREATE", "create": "CREATE",
            "m": "MOD", "mod": "MOD", "val": "VALUE", "value": "VALUE", "lease": "LEASE"}
_RESULTS = {"=": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    try:
        value = json.loads(text)
    except ValueError:
        return text[1:-1]
    return value if isinstance(value, str) else text[1:-1]


def argify(line: str) -> list[str]:
    """Split a request line like etcdctl: quoted words keep their spaces."""
    out = []
    for word in _ARG.findall(line):
        if word.startswith("'"):
            word = word[1:-1]
        elif word.startswith('"'):
            word = _unquote(word)
        out.append(word)
    return out


def _go_int(text: str, base: int) -> int:
    try:
        return int(text, base)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


def parse_compare(line: str) -> Comparison:
    target, paren, rest = line.partition("(")
    if not paren:
        raise ValueError(f"malformed comparison: {line}")
    m = _COMPARE_REST.match(rest)
    if m is None:
        raise ValueError(f"malformed comparison: {line}")
    key, op, raw = _unquote(m.group(1)).encode(), m.group(2), _unquote(m.group(3))
    name = _TARGETS.get(target)
    if name is None:
        raise ValueError(f"malformed comparison: {line} (unknown target {target})")
    if op not in _RESULTS:
        raise ValueError(f"malformed comparison: {line} (unknown op {op})")
    try:
        if name == "VALUE":
            operand: int | bytes = raw.encode()
        else:
            operand = _go_int(raw, 16 if name == "LEASE" else 10)
    except ValueError:
        raise ValueError(f"invalid txn compare request: {line}") from None
    return Comparison(key, name, _RESULTS[op], operand)


_OP_FLAGS = {"get": GET_FLAGS, "put": PUT_FLAGS, "del": DEL_FLAGS}


def parse_request(line: str) -> Op:
    args = argify(line)
    if len(args) < 2:
        raise ValueError(f"invalid txn compare request: {line}")
    flags = _OP_FLAGS.get(args[0])
    if flags is None:
        raise ValueError(f"invalid txn request: {line}")
    try:
        p = parse_flags(args[1:], (*flags, Flag("help", BOOL, False, "")))
    except FlagError:
        raise ValueError(f"invalid txn request: {line}") from None
    if args[0] == "get":
        return get_op(p.args, p.values)
    if args[0] == "put":
        return put_op(p.args, p.values, stdin_ok=False)
    return del_op(p.args, p.values)


def _read_section(lines: list[str]) -> list[str]:
    out = []
    while True:
        if not lines:
            raise CliError(EXIT_INVALID_INPUT, "EOF")
        line = lines.pop(0)
        if not line.endswith("\n"):
            raise CliError(EXIT_INVALID_INPUT, "EOF")
        line = line.strip()
        if not line:
            return out
        out.append(line)


def _invalid(fn: object, line: str) -> object:
    try:
        return fn(line)  # type: ignore[operator]
    except ValueError as exc:
        raise CliError(EXIT_INVALID_INPUT, str(exc)) from None


async def _txn(ctx: Ctx, p: Parsed) -> None:
    if p.args:
        raise bad_args("txn command does not accept argument")
    printer = ctx.printer()
    interactive = bool(p.values["interactive"])
    lines = sys.stdin.readlines()
    sections = []
    for prompt, parse in (("compares:", parse_compare), ("success requests (get, put, del):", parse_request),
                          ("failure requests (get, put, del):", parse_request)):
        if interactive:
            ctx.out.line(prompt)
        sections.append([_invalid(parse, line) for line in _read_section(lines)])
    compares, success, failure = sections
    txn = Txn(compare=tuple(compares), success=tuple(success), failure=tuple(failure))  # type: ignore[arg-type]
    read_only = all(isinstance(op, Get) for op in (*txn.success, *txn.failure))
    r = await ctx.unary(lambda s: s.kv.Txn, txn.to_pb(), read_only=read_only)
    printer.txn(r)


COMMANDS = [
    Command(("txn",), "Txn processes all the requests in one transaction", "etcdctl txn [options] [flags]",
            _txn, (Flag("interactive", BOOL, False, "Input transaction in interactive mode", "i"),)),
]
