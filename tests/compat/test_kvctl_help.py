"""`kvctl --help` / `kvctl help` print etcdctl 3.4's root help, byte for byte, but for the
commands kvctl does not have (auth, completion, check datascale, migrate)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.process.servers import REPO

NOT_PROVIDED = ("\tauth ", "\tuser ", "\trole ", "\tcompletion ", "\tcheck datascale", "\tmigrate")


def _run(cmd: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ETCDCTL_API": "3"}
    done = subprocess.run(cmd, capture_output=True, env=env, timeout=30, check=True)
    return done.stdout.decode()


@pytest.mark.skipif(shutil.which("etcdctl") is None, reason="etcdctl not installed")
@pytest.mark.parametrize("args", [["--help"], ["help"]])
def test_root_help_matches_etcdctl(args: list[str]) -> None:
    etcdctl = shutil.which("etcdctl")
    assert etcdctl is not None
    want = "".join(line for line in _run([etcdctl, *args]).splitlines(keepends=True)
                   if not line.startswith(NOT_PROVIDED))
    assert _run([sys.executable, "-m", "api.cli.main", *args]) == want
