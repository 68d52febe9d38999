"""kvstore package (being written)."""
