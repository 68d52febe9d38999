"""wal package (being written)."""
