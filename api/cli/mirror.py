"""make-mirror: copy the keys under a prefix to another cluster, then keep the copy in sync.

etcdctl 3.4's semantics: the keys under --prefix (all keys when empty) are read at one
revision R in pages and put into the destination one by one, their prefix replaced by
--dest-prefix (by default the same prefix; --no-dest-prefix strips it); then a watch from
R + 1 replays every later put and delete, the events of one source revision as one
destination Txn (so a source transaction lands whole). The number of keys processed so far
is printed every 30 s. It runs until interrupted; a compacted resume point or a destination
error ends it with `Error: ...`. Leases and revisions are not mirrored (etcdctl neither).
"""

from __future__ import annotations

import asyncio

from api.cli.command import Command, bad_args
from api.cli.context import Ctx
from api.cli.flags import BOOL, STRING, Flag, Parsed
from api.client import Client, Delete, EventType, Put, prefix_range_end

__all__ = ["COMMANDS"]

PAGE = 1000  # keys per Range page of the initial copy (clientv3 mirror's batch)
REPORT_EVERY_S = 30.0


class _Mirror:
    def __init__(self, src: Client, dest: Client, prefix: bytes, dest_prefix: bytes) -> None:
        self.src, self.dest = src, dest
        self.prefix, self.dest_prefix = prefix, dest_prefix
        self.total = 0

    def rename(self, key: bytes) -> bytes:
        # Go's strings.Replace(k, prefix, dest, 1); an empty prefix matches at the start.
        return key.replace(self.prefix, self.dest_prefix, 1)

    async def copy_base(self) -> int:
        """Copy every key at one revision; returns that revision."""
        revision = (await self.src.get(b"foo")).header.revision
        key = self.prefix or b"\0"
        end = prefix_range_end(self.prefix) if self.prefix else b"\0"
        while True:
            page = await self.src.get(key, range_end=end, revision=revision, limit=PAGE)
            for kv in page.kvs:
                await self.dest.put(self.rename(kv.key), kv.value)
                self.total += 1
            if not page.more or not page.kvs:
                return revision
            key = page.kvs[-1].key + b"\0"

    async def follow(self, revision: int) -> None:
        """Replay changes after `revision`, one destination Txn per source revision."""
        watcher = self.src.watch(self.prefix, prefix=True, start_revision=revision + 1)
        ops: list[Put | Delete] = []
        rev = 0
        async for ev in watcher:
            if ops and ev.kv.mod_revision != rev:
                await self.dest.txn().then(*ops).commit()
                ops = []
            rev = ev.kv.mod_revision
            key = self.rename(ev.kv.key)
            ops.append(Put(key, ev.kv.value) if ev.type is EventType.PUT else Delete(key))
            self.total += 1
            if watcher.buffered == 0:  # the rest of this revision would already be queued
                await self.dest.txn().then(*ops).commit()
                ops = []
        if ops:
            await self.dest.txn().then(*ops).commit()

    async def report(self, ctx: Ctx) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            ctx.out.line(str(self.total))
            ctx.out.flush()


async def _make_mirror(ctx: Ctx, p: Parsed) -> int:
    if len(p.args) != 1:
        raise bad_args("make-mirror takes one destination argument")
    v = p.values
    prefix, dest_prefix = str(v["prefix"]).encode(), str(v["dest_prefix"]).encode()
    if v["no_dest_prefix"] and dest_prefix:
        raise bad_args("`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, "
                       "choose one")
    if not v["no_dest_prefix"] and not dest_prefix:
        dest_prefix = prefix
    dest = Client([p.args[0]], timeout_s=ctx.g.command_timeout_s,
                  ca_file=str(v["dest_cacert"]) or None, cert_file=str(v["dest_cert"]) or None,
                  key_file=str(v["dest_key"]) or None)
    mirror = _Mirror(ctx.client, dest, prefix, dest_prefix)
    reporter = asyncio.create_task(mirror.report(ctx))
    try:
        await mirror.follow(await mirror.copy_base())
    finally:
        reporter.cancel()
        await dest.close()
    return 0


COMMANDS = [
    Command(("make-mirror",), "Makes a mirror at the destination etcd cluster",
            "etcdctl make-mirror [options] <destination> [flags]", _make_mirror, (
                Flag("dest-cacert", STRING, "", "Verify certificates of TLS enabled secure servers using this CA bundle"),
                Flag("dest-cert", STRING, "", "Identify secure client using this TLS certificate file for the destination cluster"),
                Flag("dest-key", STRING, "", "Identify secure client using this TLS key file"),
                Flag("dest-insecure-transport", BOOL, True, "Disable transport security for client connections"),
                Flag("prefix", STRING, "", "Key-value prefix to mirror"),
                Flag("dest-prefix", STRING, "", "destination prefix to mirror a prefix to a different prefix in the destination cluster"),
                Flag("no-dest-prefix", BOOL, False, "mirror key-values to the root of the destination cluster"),
            )),
]
