"""Decoding the server's response header blocks in tests (api/http2 tests, unit and wire)."""

from __future__ import annotations

import hpack


def decode_block(block: bytes) -> list[tuple[str, str]]:
    """A block's fields, with a fresh decoder: the server's literals must never index."""
    decoder = hpack.Decoder()
    fields = [(str(name), str(value)) for name, value in decoder.decode(block)]
    assert len(decoder.header_table.dynamic_entries) == 0
    return fields
