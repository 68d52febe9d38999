"""`kvctl`: an etcdctl 3.4-compatible command line client for kvstore (and any etcd 3.4+).

Theory of operation: `main(argv)` finds the command words (skipping global flags and their
values), parses the remaining arguments with the global and the command's flags (plus
`ETCDCTL_*` environment variables), builds a `Ctx` and runs the command's coroutine with
asyncio.run. Output goes through the printer the -w flag selects. Every failure becomes
`Error: <message>` on stderr and one of etcdctl's exit codes (api/cli/errors.py); a flag
error also prints the command's usage, as cobra does.

`main` reads sys.stdin/stdout/stderr when it is called (not at import), so tests can run it
in-process with captured streams.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from api.cli import (
    concurrency,
    endpoint,
    kv,
    lease,
    maintenance,
    member,
    mirror,
    snapshot,
    txn,
    watch,
)
from api.cli.command import Command
from api.cli.context import Ctx, Globals
from api.cli.errors import EXIT_BAD_CONNECTION, EXIT_ERROR, EXIT_SUCCESS, CliError
from api.cli.flags import BOOL, GLOBAL_FLAGS, FlagError, parse_flags, root_usage, usage
from api.cli.maintenance import API_VERSION, ETCDCTL_VERSION
from api.cli.output.base import Out
from api.client import EtcdError

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[tuple[str, ...], Command] = {
    c.path: c
    for module in (kv, txn, watch, lease, member, endpoint, maintenance, snapshot, concurrency,
                   mirror)
    for c in module.COMMANDS
}
GROUPS = {
    "lease": "Lease related commands", "member": "Membership related commands",
    "endpoint": "Endpoint related commands", "alarm": "Alarm related commands",
    "snapshot": "Manages etcd node snapshots", "check": "commands for checking properties",
}
_VALUE_FLAGS = {f"--{f.name}" for f in GLOBAL_FLAGS if f.kind != BOOL} | {
    f"-{f.short}" for f in GLOBAL_FLAGS if f.short and f.kind != BOOL
}


def _split_command(argv: Sequence[str]) -> tuple[tuple[str, ...], list[str], str | None]:
    """(command path, remaining argv, first unknown word)."""
    path: tuple[str, ...] = ()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            rest.extend(argv[i:])
            break
        if tok.startswith("-"):
            rest.append(tok)
            if tok in _VALUE_FLAGS and i + 1 < len(argv):
                rest.append(argv[i + 1])
                i += 1
            i += 1
            continue
        candidate = (*path, tok)
        is_group = tok in GROUPS and not path
        if candidate in COMMANDS or is_group:
            path = candidate
            i += 1
            if path in COMMANDS:
                rest.extend(argv[i:])
                break
            continue
        if not path:
            return (), list(argv), tok
        rest.extend(argv[i:])
        break
    return path, rest, None


def _group_usage(group: str) -> str:
    subs = sorted((p[1], c.short) for p, c in COMMANDS.items() if p[0] == group and len(p) == 2)
    from api.cli.command import Command as _C  # noqa: F401 -- keeps the import local and cheap
    from api.cli.flags import Flag

    return usage(
        name=group, short=GROUPS[group], use=f"etcdctl {group} <subcommand> [flags]",
        local=(Flag("help", BOOL, False, f"help for {group}", "h"),), subcommands=subs,
        api_version=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    out = Out(sys.stdout, sys.stderr)
    try:
        return _main(args, out)
    except KeyboardInterrupt:
        return 130
    finally:
        try:
            out.flush()
        except (BrokenPipeError, ValueError):
            pass


def _main(args: list[str], out: Out) -> int:
    environ = dict(os.environ)
    api = environ.get("ETCDCTL_API", "3")
    if api not in ("3", "3.4", ""):
        out.err(f"Error: kvctl speaks only the v3 API (ETCDCTL_API={api})")
        return EXIT_ERROR
    if args[:1] == ["help"]:  # cobra's `help [command]` is `[command] --help`
        args = [*args[1:], "--help"] if len(args) > 1 else []
    path, rest, unknown = _split_command(args)
    if unknown is not None:
        msg = f'unknown command "{unknown}" for "etcdctl"'
        out.err(f"Error: {msg}\nRun 'etcdctl --help' for usage.")
        out.err(f"Error: {msg}")
        return EXIT_ERROR
    if not path:  # `kvctl`, `kvctl --help`: etcdctl's root help
        listed = [(" ".join(p), c.short) for p, c in COMMANDS.items()]
        listed.append(("help", "Help about any command"))
        out.stdout.write(root_usage(sorted(listed), ETCDCTL_VERSION, API_VERSION))
        return EXIT_SUCCESS
    command = COMMANDS.get(path)
    if command is None:  # a bare group such as `kvctl lease`
        out.stdout.write(_group_usage(path[0]))
        return EXIT_SUCCESS
    local = command.local_flags
    try:
        parsed = parse_flags(rest, (*GLOBAL_FLAGS, *local), environ=environ, env_flags=GLOBAL_FLAGS)
    except FlagError as exc:
        out.err(f"Error: {exc}\n")
        out.stdout.write(usage(name=path[-1], short=command.short, use=command.use, local=local,
                               description=command.description))
        out.err(f"Error: {exc}")
        return EXIT_ERROR
    if parsed.values["help"]:
        out.stdout.write(usage(name=path[-1], short=command.short, use=command.use, local=local,
                               description=command.description))
        return EXIT_SUCCESS
    g = Globals.from_values(parsed.values, parsed.given)
    ctx = Ctx(g, out, terminal=_isatty(out))
    return asyncio.run(_run(command, ctx, parsed))


def _isatty(out: Out) -> bool:
    try:
        return out.stdout.isatty()
    except (AttributeError, ValueError):
        return False


async def _run(command: Command, ctx: Ctx, parsed: object) -> int:
    try:
        code = await command.run(ctx, parsed)  # type: ignore[arg-type]
        return EXIT_SUCCESS if code is None else code
    except CliError as exc:
        ctx.out.err(f"Error: {exc.message}")
        return exc.exit_code
    except EtcdError as exc:
        ctx.out.err(f"Error: {exc.message}")
        return EXIT_BAD_CONNECTION if exc.code == "UNAVAILABLE" and "connect" in exc.message else EXIT_ERROR
    finally:
        await ctx.close()


if __name__ == "__main__":
    sys.exit(main())
