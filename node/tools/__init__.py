"""Operator tools: testnet generator and local runner, spammer."""
