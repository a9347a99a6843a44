"""Settings of the gRPC transport and the libp2p gossip (durations in seconds, sizes in bytes).

The runtime builds these from the node's config file; every field has a working default
for a local testnet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from node.net.transport import TransportLimits


@dataclass(frozen=True, slots=True)
class GrpcConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    """0 picks a free port; ``GrpcTransport.port`` tells which after ``start``."""
    peers: dict[int, str] = field(default_factory=dict)
    """Validator index -> "host:port" of its gRPC server (``set_peer_address`` adds more)."""
    limits: TransportLimits = field(default_factory=TransportLimits)
    hello_timeout: float = 5.0
    """A stream that does not complete its handshake in this time is closed."""
    max_clock_skew: float = 300.0
    """How far a hello's timestamp may be from our clock."""
    backoff_base: float = 0.05
    backoff_cap: float = 5.0
    seed: int = 0
    """Seeds the reconnect jitter, so a run can be replayed."""
    ack_interval: float = 0.02
    """How long a receiver may delay acknowledging processed frames."""
    ack_timeout: float = 15.0
    """A stream whose oldest unacknowledged frame is this old is dead and reconnected."""
    max_unacked_frames: int = 256
    max_unacked_bytes: int = 64 << 20
    keepalive_interval: float = 10.0
    keepalive_timeout: float = 5.0

    @property
    def grpc_message_limit(self) -> int:
        """gRPC's own cap, above ours so a frame between the two is seen and penalized;
        anything larger gRPC cuts off, ending the stream."""
        return 2 * self.limits.max_message_size


@dataclass(frozen=True, slots=True)
class GossipConfig:
    enabled: bool = True
    listen: str = "/ip4/127.0.0.1/tcp/0"
    bootstrap: tuple[str, ...] = ()
    """Multiaddrs with /p2p/<peer id> to connect to at start (and again when lost)."""
    topic: str = "/lanenet/txs/1"
    batch_bytes: int = 32 << 10
    """A batch is published once it holds this many bytes of transactions..."""
    batch_interval: float = 0.05
    """...or this long after its first transaction, whichever comes first."""
    max_pending_bytes: int = 8 << 20
    """Transactions waiting to be published; beyond it the oldest are dropped."""
    max_message_size: int = 1 << 20
    identity_seed: bytes | None = None
    """32 bytes for a stable libp2p identity (peer id); random if None."""
    start_timeout: float = 30.0
    heartbeat_interval: int = 1
    redial_interval: float = 5.0
