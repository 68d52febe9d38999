"""TEST-ONLY network partitions for process-level cluster tests. Not a production feature.

A test that runs real member processes cannot unplug a cable, so each member can be given
a partition file (the server's `--experimental-test-partition-file PATH`). The file lists
member IDs in hex, one per line (blank lines and `#` comments are ignored); while an ID is
listed, this member drops every message to and from that peer, in both directions, and
refuses snapshots either way. The transport re-reads the file every PARTITION_POLL_S, so a
test partitions and heals the cluster by rewriting small files.

A missing file means "no partition". An unreadable or malformed file keeps the previous
state (and is logged), so a test that writes the file non-atomically never sees a
half-written partition.
"""

from __future__ import annotations

import logging

__all__ = ["PARTITION_POLL_S", "PartitionFile", "parse_partition_file"]

log = logging.getLogger("kvstore.transport")

PARTITION_POLL_S = 0.1
PARTITION_FILE_BYTES_MAX = 64 * 1024


def parse_partition_file(text: str) -> frozenset[int]:
    """Member IDs (hex, one per line; blank lines and '#' comments ignored). ValueError if
    a line is not a hex number."""
    ids = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.add(int(line, 16))
    return frozenset(ids)


class PartitionFile:
    """The blocked peer IDs named by one partition file, re-read on `poll()`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.blocked: frozenset[int] = frozenset()
        self._text: str | None = None

    def poll(self) -> bool:
        """Re-read the file; True if the blocked set changed. The file is tiny and local, and
        this is test-only, so it is read on the event loop."""
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read(PARTITION_FILE_BYTES_MAX)
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            log.warning("cannot read the partition file %s: %r", self.path, exc)
            return False
        if text == self._text:
            return False
        try:
            blocked = parse_partition_file(text)
        except ValueError:
            log.warning("ignored a malformed partition file %s: %r", self.path, text[:200])
            return False
        self._text = text
        changed = blocked != self.blocked
        self.blocked = blocked
        return changed
