"""Networking: the Transport port, its gRPC and in-memory implementations, libp2p gossip.

Import the implementation you need from its module (``node.net.grpc_transport``,
``node.net.memory``, ``node.net.gossip``); libp2p is imported only when gossip starts.
"""
