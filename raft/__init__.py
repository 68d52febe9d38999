"""raft package (being written)."""
