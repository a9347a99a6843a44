"""Client APIs of a node: Ethereum JSON-RPC, the gRPC client service, health probes."""
