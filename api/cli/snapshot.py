"""snapshot save / status / restore, with a progress bar on stderr when it is a terminal.

save works against etcd and kvstore (it only streams Maintenance.Snapshot into a file);
status and restore read files saved from kvstore (see snapshot_file.py, snapshot_restore.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from api.cli.command import Command, bad_args
from api.cli.context import Ctx
from api.cli.errors import EXIT_ERROR, CliError
from api.cli.flags import BOOL, STRING, Flag, Parsed
from api.cli.snapshot_file import read_status
from api.cli.snapshot_restore import RestoreConfig, restore
from api.client import EtcdError

__all__ = ["COMMANDS"]


@contextlib.contextmanager
def _progress(ctx: Ctx, description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal stderr; None (no output at all) otherwise."""
    stderr = ctx.out.stderr
    try:
        tty = stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), console=Console(file=stderr), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, done))

        yield update


async def _save(ctx: Ctx, p: Parsed) -> None:
    if len(p.args) != 1:
        raise bad_args("snapshot save expects one argument")
    path = p.args[0]
    with _progress(ctx, "saving snapshot") as bar:
        def progress(received: int, remaining: int) -> None:
            if bar is not None:
                bar(received, received + remaining)

        try:
            await ctx.client.snapshot_save(path, endpoint=ctx.g.endpoints[0], progress=progress)
        except EtcdError as exc:
            raise CliError(EXIT_ERROR, exc.message) from None
    ctx.out.line(f"Snapshot saved at {path}")


async def _status(ctx: Ctx, p: Parsed) -> None:
    if len(p.args) != 1:
        raise bad_args("snapshot status requires exactly one argument")
    printer = ctx.printer()
    status = await asyncio.get_running_loop().run_in_executor(None, read_status, Path(p.args[0]))
    printer.db_status(status)


async def _restore(ctx: Ctx, p: Parsed) -> None:
    if len(p.args) != 1:
        raise bad_args("snapshot restore requires exactly one argument")
    v = p.values
    name = str(v["name"])
    data_dir = Path(str(v["data_dir"]) or f"{name}.etcd")
    wal_dir = str(v["wal_dir"])
    if wal_dir and Path(wal_dir).resolve() != (data_dir / "member" / "wal").resolve():
        raise bad_args("--wal-dir must be <data-dir>/member/wal: kvstore keeps its WAL in the data dir")
    cfg = RestoreConfig(
        snapshot=Path(p.args[0]), data_dir=data_dir, name=name,
        initial_cluster=str(v["initial_cluster"]), initial_cluster_token=str(v["initial_cluster_token"]),
        initial_advertise_peer_urls=tuple(u for u in str(v["initial_advertise_peer_urls"]).split(",") if u),
        skip_hash_check=bool(v["skip_hash_check"]),
    )
    with _progress(ctx, "restoring snapshot") as bar:
        def progress(step: str, done: int, total: int) -> None:
            if bar is not None:
                bar(done, total)

        restored = await asyncio.get_running_loop().run_in_executor(None, restore, cfg, progress)
    ctx.out.err(f"restored snapshot {cfg.snapshot} into {data_dir} "
                f"(member {restored.member_id:x} of cluster {restored.cluster_id:x})")


COMMANDS = [
    Command(("snapshot", "save"), "Stores an etcd node backend snapshot to a given file",
            "etcdctl snapshot save <filename> [flags]", _save),
    Command(("snapshot", "status"), "Gets backend snapshot status of a given file",
            "etcdctl snapshot status <filename> [flags]", _status),
    Command(("snapshot", "restore"), "Restores an etcd member snapshot to an etcd directory",
            "etcdctl snapshot restore <filename> [options] [flags]", _restore,
            (Flag("data-dir", STRING, "", "Path to the data directory"),
             Flag("wal-dir", STRING, "", "Path to the WAL directory (use --data-dir if none given)"),
             Flag("initial-cluster", STRING, "default=http://localhost:2380", "Initial cluster configuration for restore bootstrap"),
             Flag("initial-cluster-token", STRING, "etcd-cluster", "Initial cluster token for the etcd cluster during restore bootstrap"),
             Flag("initial-advertise-peer-urls", STRING, "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster"),
             Flag("name", STRING, "default", "Human-readable name for this member"),
             Flag("skip-hash-check", BOOL, False, "Ignore snapshot integrity hash value (required if copied from data directory)"))),
]

