"""Reading a snapshot file made by `snapshot save` against kvstore.

The file is what Maintenance.Snapshot streams (api/grpc/maintenance.py): a consistent,
compacted copy of the member's LMDB store (`kvstore.Store.snapshot_to`) followed by the
SHA-256 of that copy (32 bytes), which etcdctl keeps in the file. A file saved from real
etcd holds a bbolt database instead; kvctl recognises and refuses it (use etcdctl or etcdutl).
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

from api.cli.errors import EXIT_ERROR, CliError
from api.cli.output.base import DbStatus

__all__ = ["body_size", "extract_body", "read_status", "verify_hash"]

SHA256_BYTES = 32
CHUNK_BYTES = 1024 * 1024
_LMDB_MAGIC = struct.pack("<I", 0xBEEFC0DE)  # MDB_meta.mm_magic, after the 16-byte page header
_BOLT_MAGIC = struct.pack("<I", 0xED0CDAED)
_STORE_DBS = (b"key", b"rev", b"meta", b"lease", b"lease_keys")

Progress = Callable[[int, int], object]  # (done bytes, total bytes)


def _check_format(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise CliError(EXIT_ERROR, f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from None
    if head[16:20] == _LMDB_MAGIC:
        return
    if head[16:20] == _BOLT_MAGIC:
        raise CliError(EXIT_ERROR, f"{path} is an etcd (bbolt) snapshot: use etcdctl/etcdutl for it")
    raise CliError(EXIT_ERROR, f"{path} is not a kvstore snapshot (no LMDB header)")


def body_size(path: Path) -> int:
    """Size of the store copy: the file without its SHA-256 trailer (if it has one)."""
    size = path.stat().st_size
    return size - SHA256_BYTES if has_valid_hash(path) else size


def has_valid_hash(path: Path, progress: Progress | None = None) -> bool:
    size = path.stat().st_size
    if size <= SHA256_BYTES:
        return False
    sha = hashlib.sha256()
    done, body = 0, size - SHA256_BYTES
    with open(path, "rb") as f:
        while done < body:
            chunk = f.read(min(CHUNK_BYTES, body - done))
            if not chunk:
                return False
            sha.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, size)
        return sha.digest() == f.read(SHA256_BYTES)


def verify_hash(path: Path, *, skip: bool, progress: Progress | None = None) -> int:
    """Check the trailer as etcdctl snapshot restore does; returns the body size."""
    _check_format(path)
    if has_valid_hash(path, progress):
        return path.stat().st_size - SHA256_BYTES
    if skip:
        return path.stat().st_size
    raise CliError(EXIT_ERROR, "snapshot missing hash but --skip-hash-check=false")


def extract_body(path: Path, dest: Path, size: int, progress: Progress | None = None) -> None:
    """Copy the first `size` bytes (the LMDB copy) of the snapshot to `dest`, fsynced."""
    done = 0
    with open(path, "rb") as src, open(dest, "wb") as out:
        while done < size:
            chunk = src.read(min(CHUNK_BYTES, size - done))
            if not chunk:
                raise CliError(EXIT_ERROR, f"{path} is truncated")
            out.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, size)
        out.flush()
        os.fsync(out.fileno())


def read_status(path: Path) -> DbStatus:
    """Hash (our store's crc32c hash), revision, total keys (entries in every LMDB
    database) and size, from a throw-away copy of the store."""
    import lmdb

    from kvstore.store import Store

    _check_format(path)
    size = body_size(path)
    with tempfile.TemporaryDirectory(prefix="kvctl-status-") as tmp:
        body = Path(tmp) / "body.mdb"
        extract_body(path, body, size)
        Store.restore_from(body, tmp)
        with Store(tmp, durable=False) as store:
            revision, digest = store.current_revision, store.hash()
        env = lmdb.open(str(Path(tmp) / "member" / "kv"), readonly=True, max_dbs=8, lock=False)
        try:
            with env.begin() as txn:
                total = 0
                for name in _STORE_DBS:
                    db = env.open_db(name, txn=txn, create=False)
                    total += int(txn.stat(db)["entries"])
        finally:
            env.close()
    return DbStatus(hash=digest & 0xFFFFFFFF, revision=revision, total_key=total, total_size=size)
