"""Build the Go watch receiver (bench/load/gowatch/main.go) once per source version.

It compiles against Debian's packaged Go sources of etcd 3.4 (clientv3 and its gRPC), in
GOPATH mode, so it needs no module download: Debian packages golang-go and
golang-etcd-server-dev (`make debs` installs them). Without them the watch workload
falls back to Python receivers, which bound what a run can measure (see main.go).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "gowatch" / "main.go"
GOPATH = Path("/usr/share/gocode")
CLIENTV3 = GOPATH / "src" / "go.etcd.io" / "etcd" / "clientv3"
MISSING = "needs Debian packages golang-go and golang-etcd-server-dev (`make debs` installs them)"


def missing_reason() -> str | None:
    """Why the receiver cannot be built here, or None when it can."""
    if shutil.which("go") is None or not CLIENTV3.is_dir():
        return MISSING
    return None


def gowatch_binary() -> Path:
    """Path of the built receiver, building it first if this source version is new."""
    reason = missing_reason()
    if reason is not None:
        raise RuntimeError(f"the Go watch receiver {reason}")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / "kvbench-gowatch"
    binary = cache / f"gowatch-{digest}"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOFLAGS": "",
           "GOCACHE": str(cache / "gocache")}
    partial = binary.with_suffix(f".{os.getpid()}.tmp")
    done = subprocess.run(["go", "build", "-o", str(partial), str(SOURCE)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building the Go watch receiver failed:\n{done.stderr.strip()}")
    partial.replace(binary)  # atomic: a concurrent run never starts a half-written binary
    return binary
