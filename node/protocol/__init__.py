"""Pure, deterministic protocol state machines: ``step(event) -> list[Effect]``.

No clocks, sockets, disks, threads or global randomness: time arrives inside events.
"""
