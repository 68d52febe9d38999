"""Revisions and the byte layouts that keep LMDB's B-trees in MVCC order.

A revision is (main, sub): `main` counts write requests (one per put, effective delete,
txn with changes, lease revoke with keys), `sub` numbers the changes inside one main
revision (a txn that writes three keys produces (7, 0), (7, 1), (7, 2)). etcd writes a
revision as 17 bytes, `main(8, big-endian) + b"_" + sub(8, big-endian)`, so byte order is
revision order; we keep that layout for the `rev` database and as the suffix of `key`
database keys.

`key` database keys are `escape(user key) + rev17`. The escaping makes the composite order
"by user key, then by revision" even for user keys that contain NUL bytes or are prefixes
of one another (b"a" vs b"a\\x00"): every NUL becomes b"\\x00\\xff" and the key ends with
b"\\x00\\x00". The encoding is order-preserving and prefix-free (an encoded key never
starts another encoded key), the same trick as FoundationDB's tuple layer, so:

* all versions of one key are adjacent and sorted by revision, and
* [escape(a), escape(b)) holds exactly the versions of user keys in [a, b).

Worked example: b"a" at rev 2 and 5, b"a\\x00" at rev 3, b"b" at rev 4 are stored as

    61 00 00 | 2_0      (b"a",    rev 2)
    61 00 00 | 5_0      (b"a",    rev 5)
    61 00 ff 00 00 | 3_0  (b"a\\x00", rev 3)
    62 00 00 | 4_0      (b"b",    rev 4)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kvstore.errors import invariant

__all__ = [
    "REV_BYTES",
    "Revision",
    "escape_key",
    "key_prefix_end",
    "pack_rev",
    "rev_main",
    "unescape_key",
    "unpack_rev",
]

REV_BYTES = 17
_REV = struct.Struct(">QcQ")
_MAIN = struct.Struct(">Q")
# Greater than any rev17 suffix: appended to an escaped key it bounds all of its versions.
REV_MAX_SUFFIX = b"\xff" * REV_BYTES


@dataclass(frozen=True, slots=True, order=True)
class Revision:
    main: int
    sub: int = 0

    def to_bytes(self) -> bytes:
        return pack_rev(self.main, self.sub)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Revision:
        main, sub = unpack_rev(raw)
        return cls(main, sub)


def pack_rev(main: int, sub: int = 0) -> bytes:
    """The 17-byte, order-preserving form of (main, sub)."""
    return _REV.pack(main, b"_", sub)


def unpack_rev(raw: bytes) -> tuple[int, int]:
    invariant(len(raw) == REV_BYTES and raw[8:9] == b"_", f"bad revision bytes {raw!r}")
    main, _, sub = _REV.unpack(raw)
    return int(main), int(sub)


def rev_main(raw: bytes) -> int:
    """The main revision of a rev17 (or of the last 17 bytes of a `key` database key)."""
    return int(_MAIN.unpack_from(raw, len(raw) - REV_BYTES)[0])


def escape_key(key: bytes) -> bytes:
    """Order-preserving, prefix-free encoding of a user key (see module docstring)."""
    return key.replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def unescape_key(escaped: bytes) -> bytes:
    invariant(escaped.endswith(b"\x00\x00"), f"bad escaped key {escaped!r}")
    return escaped[:-2].replace(b"\x00\xff", b"\x00")


def key_prefix_end(key: bytes) -> bytes:
    """etcd's prefix range end: the key with its last byte incremented (b"\\x00" = no end)."""
    end = bytearray(key)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"
