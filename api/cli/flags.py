"""Command-line flags parsed the way etcdctl's (cobra + pflag) parser does.

Why not argparse: scripts depend on etcdctl's exact behaviour and messages. Flags may come
before or after positionals, `--flag=value` and `--flag value` are both accepted, boolean
flags take `--flag` or `--flag=false`, `--` ends flag parsing, and a bad flag is reported as
`unknown flag: --foo` / `invalid argument "x" for "--limit" flag: ...` followed by the
command's usage (rendered by `usage()` in pflag's tab-aligned layout).

Every global flag also reads `ETCDCTL_<FLAG>` from the environment when not given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Flag", "FlagError", "GLOBAL_FLAGS", "parse_duration_s", "parse_flags", "usage"]

BOOL, STRING, INT, UINT, DURATION, STRINGS = "bool", "string", "int", "uint", "duration", "strings"


class FlagError(Exception):
    """A flag the parser refuses; printed with the command's usage, exit code 1."""


@dataclass(frozen=True, slots=True)
class Flag:
    name: str
    kind: str
    default: Any
    help: str
    short: str = ""

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def shown_default(self) -> str:
        if self.kind == BOOL:
            return f"[={str(self.default).lower()}]"
        if self.kind == STRING:
            return f'="{self.default}"'
        if self.kind == STRINGS:
            return "=[" + ",".join(self.default) + "]"
        return f"={self.default}"


GLOBAL_FLAGS: tuple[Flag, ...] = (
    Flag("cacert", STRING, "", "verify certificates of TLS-enabled secure servers using this CA bundle"),
    Flag("cert", STRING, "", "identify secure client using this TLS certificate file"),
    Flag("command-timeout", DURATION, "5s", "timeout for short running command (excluding dial timeout)"),
    Flag("debug", BOOL, False, "enable client-side debug logging"),
    Flag("dial-timeout", DURATION, "2s", "dial timeout for client connections"),
    Flag("discovery-srv", STRING, "", "domain name to query for SRV records describing cluster endpoints", "d"),
    Flag("discovery-srv-name", STRING, "", "service name to query when using DNS discovery"),
    Flag("endpoints", STRINGS, ("127.0.0.1:2379",), "gRPC endpoints"),
    Flag("hex", BOOL, False, "print byte strings as hex encoded strings"),
    Flag("insecure-discovery", BOOL, True, "accept insecure SRV records describing cluster endpoints"),
    Flag("insecure-skip-tls-verify", BOOL, False, "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)"),
    Flag("insecure-transport", BOOL, True, "disable transport security for client connections"),
    Flag("keepalive-time", DURATION, "2s", "keepalive time for client connections"),
    Flag("keepalive-timeout", DURATION, "6s", "keepalive timeout for client connections"),
    Flag("key", STRING, "", "identify secure client using this TLS key file"),
    Flag("password", STRING, "", "password for authentication (if this option is used, --user option shouldn't include password)"),
    Flag("user", STRING, "", "username[:password] for authentication (prompt if password is not supplied)"),
    Flag("write-out", STRING, "simple", "set the output format (fields, json, protobuf, simple, table)", "w"),
)

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(text: str) -> float:
    """Go's time.ParseDuration ("1.5s", "2m30s", "300ms"), in seconds."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total


def _convert(flag: Flag, raw: str, current: Any) -> Any:
    def bad(reason: str) -> FlagError:
        return FlagError(f'invalid argument "{raw}" for "{_spelling(flag)}" flag: {reason}')

    if flag.kind == BOOL:
        low = raw.lower()
        if low in ("1", "t", "true"):
            return True
        if low in ("0", "f", "false"):
            return False
        raise bad(f'strconv.ParseBool: parsing "{raw}": invalid syntax')
    if flag.kind in (INT, UINT):
        try:
            value = int(raw, 10)
        except ValueError:
            fn = "ParseInt" if flag.kind == INT else "ParseUint"
            raise bad(f'strconv.{fn}: parsing "{raw}": invalid syntax') from None
        return value
    if flag.kind == DURATION:
        try:
            parse_duration_s(raw)
        except ValueError as exc:
            raise bad(str(exc)) from None
        return raw
    if flag.kind == STRINGS:
        items = [s for s in raw.split(",")]
        return (*current, *items) if current is not None else tuple(items)
    return raw


def _spelling(flag: Flag) -> str:
    return f"-{flag.short}, --{flag.name}" if flag.short else f"--{flag.name}"


@dataclass
class Parsed:
    values: dict[str, Any]
    given: set[str] = field(default_factory=set)
    args: list[str] = field(default_factory=list)
    dash_index: int | None = None  # len(args) when `--` was seen (exec forms split there)


def parse_flags(
    argv: Sequence[str],
    flags: Sequence[Flag],
    *,
    environ: Mapping[str, str] | None = None,
    env_flags: Sequence[Flag] = (),
) -> Parsed:
    """Parse `argv` (command words already removed) against `flags`."""
    by_name = {f.name: f for f in flags}
    by_short = {f.short: f for f in flags if f.short}
    out = Parsed(values={f.dest: f.default for f in flags})
    seen_strings: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if tok == "--":
            out.dash_index = len(out.args)
            out.args.extend(argv[i:])
            break
        if tok.startswith("--") and len(tok) > 2:
            name, eq, raw = tok[2:].partition("=")
            flag = by_name.get(name)
            if flag is None:
                raise FlagError(f"unknown flag: --{name}")
            if not eq:
                if flag.kind == BOOL:
                    raw = "true"
                elif i < len(argv):
                    raw = argv[i]
                    i += 1
                else:
                    raise FlagError(f"flag needs an argument: --{name}")
        elif tok.startswith("-") and len(tok) > 1:
            short, rest = tok[1], tok[2:]
            flag = by_short.get(short)
            if flag is None:
                raise FlagError(f"unknown shorthand flag: '{short}' in {tok}")
            if rest.startswith("="):
                raw = rest[1:]
            elif rest:
                raw = rest
            elif flag.kind == BOOL:
                raw = "true"
            elif i < len(argv):
                raw = argv[i]
                i += 1
            else:
                raise FlagError(f"flag needs an argument: '{short}' in -{short}")
        else:
            out.args.append(tok)
            continue
        value = _convert(flag, raw, seen_strings.get(flag.dest))
        if flag.kind == STRINGS:
            seen_strings[flag.dest] = value
        out.values[flag.dest] = value
        out.given.add(flag.name)
    # Environment: ETCDCTL_<FLAG> for flags not given on the command line.
    env = environ or {}
    for flag in env_flags:
        var = "ETCDCTL_" + flag.name.upper().replace("-", "_")
        if flag.name not in out.given and var in env:
            out.values[flag.dest] = _convert(flag, env[var], None)
            out.given.add(flag.name)
    return out


def _tab_aligned(rows: Sequence[tuple[str, str]]) -> list[str]:
    """Go's tabwriter with '\\t' padding (tabwidth 8, padding 1): pad cells with tabs."""
    width = max(len(left) for left, _ in rows) + 1
    width = -(-width // 8) * 8
    lines = []
    for left, right in rows:
        tabs = -(-(width - len(left)) // 8)
        lines.append(left + "\t" * tabs + right)
    return lines


def _flag_rows(flags: Sequence[Flag]) -> list[tuple[str, str]]:
    rows = []
    for f in sorted(flags, key=lambda f: f.name):
        prefix = f"  -{f.short}, " if f.short else "      "
        rows.append((f"{prefix}--{f.name}{f.shown_default()}", f.help))
    return rows


def root_usage(commands: Sequence[tuple[str, str]], version: str, api_version: str) -> str:
    """`etcdctl --help`: every command with its short text, then the global flags."""
    flags = (*GLOBAL_FLAGS, Flag("help", BOOL, False, "help for etcdctl", "h"))
    return (
        "NAME:\n\tetcdctl - A simple command line client for etcd3.\n\n"
        "USAGE:\n\tetcdctl [flags]\n\n"
        f"VERSION:\n\t{version}\n\n"
        f"API VERSION:\n\t{api_version}\n\n\n"
        "COMMANDS:\n" + "".join(f"\t{ln}\n" for ln in _tab_aligned(commands)) + "\n"
        "OPTIONS:\n" + "".join(f"{ln}\n" for ln in _tab_aligned(_flag_rows(flags))) + "\n"
    )


def usage(
    *, name: str, short: str, use: str, local: Sequence[Flag], description: str = "",
    subcommands: Sequence[tuple[str, str]] = (), api_version: bool = False,
) -> str:
    """The usage text etcdctl prints after a flag error (and for a bare command group)."""
    parts = [f"NAME:\n\t{name} - {short}\n", f"USAGE:\n\t{use}\n"]
    if description:
        parts.append("DESCRIPTION:\n" + "\n".join("\t" + ln for ln in description.split("\n")) + "\n")
    if api_version:
        parts.append("API VERSION:\n\t3.4\n\n")
    if subcommands:
        parts.append("COMMANDS:\n" + "\n".join("\t" + ln for ln in _tab_aligned(subcommands)) + "\n")
    parts.append("OPTIONS:\n" + "\n".join(_tab_aligned(_flag_rows(local))) + "\n")
    parts.append("GLOBAL OPTIONS:\n" + "\n".join(_tab_aligned(_flag_rows(GLOBAL_FLAGS))) + "\n")
    return "\n".join(parts) + "\n"
