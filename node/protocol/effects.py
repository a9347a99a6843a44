"""Outputs of the protocol state machines, carried out in list order by a driver.

A ``Persist`` must be durable before any later effect in the same list is carried out: that
is how a vote is written before it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.protocol.events import Timer
from node.types.messages import Block, Cut, Message

PersistKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Send:
    to: int
    message: Message


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send to every other validator."""

    message: Message


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Arm (or re-arm) ``timer`` to fire ``delay_ms`` from now."""

    timer: Timer
    delay_ms: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Persist:
    """Durably store ``value`` under ``key`` (overwriting); ``value`` None deletes the key."""

    key: PersistKey
    value: object


@dataclass(frozen=True, slots=True)
class Committed:
    """Consensus decided ``cut`` for ``slot`` in ``view``; ``fast`` tells which path."""

    slot: int
    view: int
    cut: Cut
    fast: bool


@dataclass(frozen=True, slots=True)
class Deliver:
    """The next block of the total order, ready for execution."""

    block: Block


@dataclass(frozen=True, slots=True)
class Ignore:
    """Input dropped without blame (stale, duplicate, early)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reject:
    """Input dropped because ``peer`` broke the protocol: counted and penalized."""

    peer: int
    reason: str


@dataclass(frozen=True, slots=True)
class Halt:
    """This validator's own state commitment diverges from what the network certified: it
    must stop at once, serving and signing nothing more. Emitted once; the replica then
    answers every event with nothing."""

    reason: str
    height: int
    own: bytes
    certified: bytes


Effect = (
    Send
    | Broadcast
    | SetTimer
    | CancelTimer
    | Persist
    | Committed
    | Deliver
    | Ignore
    | Reject
    | Halt
)
