"""Hashing and signatures: domain-separated hashes, ed25519 validator keys, a fast test twin."""
