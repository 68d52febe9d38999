"""The body a leader streams to a member that needs compacted entries.

A bundle file is `magic(8) | cluster state length (u32 BE) | cluster state | LMDB copy`:
the cluster state (members, alarms) as of the raft snapshot, and a consistent compacted copy
of the store. The copy may be AHEAD of the snapshot index (it is taken when the message is
sent); that is safe because the store records its own applied index in the same file, so
the entries between the snapshot index and that index are skipped when re-applied.

Both sides work in chunks: the store copy is written straight into the bundle and split
back out with a bounded buffer, so a multi-GiB store never sits in memory.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

MAGIC = b"KVSNAP01"
_HEADER = struct.Struct(">8sI")
CHUNK_BYTES = 1024 * 1024


class BundleError(ValueError):
    pass


def write_bundle(path: str, cluster_state: bytes, copy_store_to: Callable[[str], None]) -> None:
    """Write a bundle at `path`; `copy_store_to(p)` writes the store copy to file p."""
    store_part = path + ".store"
    try:
        copy_store_to(store_part)
        with open(path, "wb") as out, open(store_part, "rb") as src:
            out.write(_HEADER.pack(MAGIC, len(cluster_state)))
            out.write(cluster_state)
            while chunk := src.read(CHUNK_BYTES):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    finally:
        if os.path.exists(store_part):
            os.unlink(store_part)


def split_bundle(path: str, store_path: str) -> bytes:
    """Write the store part of the bundle to `store_path` (fsynced); return the cluster state."""
    with open(path, "rb") as f:
        header = f.read(_HEADER.size)
        if len(header) != _HEADER.size:
            raise BundleError(f"snapshot bundle {path} is truncated")
        magic, state_len = _HEADER.unpack(header)
        if magic != MAGIC:
            raise BundleError(f"snapshot bundle {path} has a bad magic {magic!r}")
        cluster_state = f.read(state_len)
        if len(cluster_state) != state_len:
            raise BundleError(f"snapshot bundle {path} is truncated")
        with open(store_path, "wb") as out:
            while chunk := f.read(CHUNK_BYTES):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    return cluster_state
