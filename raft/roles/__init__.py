"""Per-role step functions of the Raft core (follower, candidate/pre-candidate, leader)."""
