"""A throwaway local testnet on free ports, for the benchmark and the integration tests.

``lanenet testnet generate`` uses fixed default ports, which collide when several testnets
run on one machine; ``free_ports`` finds a base for each service where every node's port
is free, and ``local_testnet`` generates, starts, waits for and always stops a testnet.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from node.tools import testnet
from node.tools.testnet import Ports
from node.types.errors import ConfigError

_SERVICES = 5  # grpc, client, jsonrpc, metrics, p2p
# below Linux's ephemeral range (32768-60999), so outgoing connections cannot take them
_LOW, _HIGH = 20_000, 32_000
_ATTEMPTS = 200
_POLL_S = 0.25


def _is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(validators: int, host: str = "127.0.0.1") -> Ports:
    """Ports with ``validators`` consecutive free ports from each service's base."""
    rng = random.SystemRandom()
    span = _SERVICES * validators
    for _ in range(_ATTEMPTS):
        base = rng.randrange(_LOW, _HIGH - span)
        if all(_is_free(host, port) for port in range(base, base + span)):
            v = validators
            return Ports(grpc=base, client=base + v, jsonrpc=base + 2 * v,
                         metrics=base + 3 * v, p2p=base + 4 * v)  # fmt: skip
    raise ConfigError(f"no {span} consecutive free ports found on {host}")


def wait_ready(directory: Path, timeout_s: float) -> list[dict[str, object]]:
    """The status rows once every node runs and answers; raises if one dies or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = testnet.status(directory)
        dead = [r["name"] for r in rows if r["pid"] is None]
        if dead:
            raise ConfigError(f"{directory}: nodes not running: {dead} (see their node.log)")
        if all(r["committed_height"] is not None for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise ConfigError(f"{directory}: nodes did not answer within {timeout_s:.0f} s")
        time.sleep(_POLL_S)


@contextlib.contextmanager
def local_testnet(
    directory: Path, validators: int = 4, ready_timeout_s: float = 60.0
) -> Iterator[list[dict[str, object]]]:
    """A started testnet of ``validators`` nodes (no p2p) in ``directory``; stopped on exit."""
    testnet.generate(directory, validators, ports=free_ports(validators), p2p=False)
    try:
        testnet.up(directory)
        yield wait_ready(directory, ready_timeout_s)
    finally:
        testnet.down(directory)
