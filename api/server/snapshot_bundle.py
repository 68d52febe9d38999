"""The body a leader streams to a member that needs compacted entries.

A bundle file is `LMDB copy | cluster state | cluster state length (u32 BE) | magic(8)`:
a consistent compacted copy of the store, then the cluster state (members, alarms) as of
the raft snapshot. The copy may be AHEAD of the snapshot index (it is taken when the
message is sent); that is safe because the store records its own applied index in the same
file, so the entries between the snapshot index and that index are skipped when re-applied.

The store copy comes first so that neither side copies it again: the sender has LMDB write
it straight into the bundle, and the receiver cuts the trailer off (truncate) and renames
what is left into place as its store. A multi-GiB store is written once on each side and
never sits in memory.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

MAGIC = b"KVSNAP02"
_TRAILER = struct.Struct(">I8s")


class BundleError(ValueError):
    pass


def write_bundle(path: str, cluster_state: bytes, copy_store_to_fd: Callable[[int], None]) -> None:
    """Write a bundle at `path`; `copy_store_to_fd(fd)` writes the store copy at the
    descriptor's current offset. Not fsynced: the file lives only until it has been sent
    (the receiver makes its copy durable), and a crash discards it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        copy_store_to_fd(fd)
        os.lseek(fd, 0, os.SEEK_END)
        tail = memoryview(cluster_state + _TRAILER.pack(len(cluster_state), MAGIC))
        while tail:
            tail = tail[os.write(fd, tail):]
    finally:
        os.close(fd)


def cut_bundle(path: str) -> bytes:
    """Leave only the store copy in the bundle at `path` (truncated and fsynced, ready to be
    renamed into place); return the cluster state."""
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        if size < _TRAILER.size:
            raise BundleError(f"snapshot bundle {path} is truncated")
        f.seek(size - _TRAILER.size)
        state_len, magic = _TRAILER.unpack(f.read(_TRAILER.size))
        if magic != MAGIC:
            raise BundleError(f"snapshot bundle {path} has a bad magic {magic!r}")
        store_len = size - _TRAILER.size - state_len
        if store_len < 0:
            raise BundleError(f"snapshot bundle {path} is truncated")
        f.seek(store_len)
        cluster_state = f.read(state_len)
        f.truncate(store_len)
        os.fsync(f.fileno())
    return cluster_state
