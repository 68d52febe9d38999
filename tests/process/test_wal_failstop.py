"""A WAL fsync/write error stops the member at once and no write whose sync failed is acked.

A child process runs a real node with `KVSTORE_FAILPOINTS` making the N-th WAL fsync fail
(EIO, then ENOSPC); it acknowledges puts one by one on stdout. The parent checks the child
died with status 1 right at the failure, that it acknowledged only writes synced before it,
and that a restart on the same data dir has every acknowledged write.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from api.server.config import parse_config
from api.server.node import Node
from kvstore.types import RangeRequest

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from api.server.config import parse_config
    from api.server.failpoints import install_from_env
    from api.server.node import Node
    from kvstore.types import PutRequest

    async def main():
        install_from_env(os.environ)
        config = parse_config(["--data-dir", sys.argv[1]], {})
        node = await Node.start(config)
        for i in range(1000):
            await node.propose(PutRequest(b"key%04d" % i, b"value%d" % i))
            print(f"ack {i}", flush=True)
        print("no failure", flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("code", ["EIO", "ENOSPC"])
def test_fsync_error_is_fail_stop(tmp_path: Path, code: str) -> None:
    env = dict(os.environ, KVSTORE_FAILPOINTS=f"wal.before_fsync=error({code})@30")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    acked = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("ack ")]
    assert proc.returncode == 1, proc.stderr
    assert "WAL failure" in proc.stderr and code in proc.stderr
    assert "no failure" not in proc.stdout
    # Bootstrap and the election use a few fsyncs; each acked put needed its own.
    assert 0 < len(acked) < 30
    assert acked == list(range(len(acked)))

    async def check() -> None:
        node = await Node.start(parse_config(["--data-dir", str(tmp_path)], {}))
        got = await node.range(RangeRequest(b"key", b"kez"))
        present = {kv.key for kv in got.kvs}
        for i in acked:
            assert b"key%04d" % i in present
        await node.stop()

    asyncio.run(check())
