"""snapshot package (being written)."""
