"""The load generator behind ``lanenet spam`` (entry point: ``node.tools.spammer``).

plan: which transaction goes when, to which node, from which account (pure).
keys: the account pool's keys and a signer that keeps each key loaded.
signer: signs the plan ahead of the schedule in a background thread.
ledger: the fate of every transaction, the counts and the final report.
endpoints: the nodes' client APIs (gRPC or JSON-RPC) behind one small interface.
funding: moves funds from the dev accounts into the pool.
runner: the open-loop scheduler, the block watcher and the run from start to report.
progress: the live view.
localnet: a throwaway local testnet on free ports, for the benchmark and the tests.
"""
