"""Deterministic simulator: N replicas on a virtual clock, an in-memory network with seeded
faults, Byzantine behaviours and invariant checkers. A run is a pure function of
(validators, scenario, seed)."""
