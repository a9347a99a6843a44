"""Inputs to the protocol state machines. Time (``now``, milliseconds) is always an input."""

from __future__ import annotations

from dataclasses import dataclass

from node.types.messages import Message


@dataclass(frozen=True, slots=True)
class Timer:
    """A named timer: ``car`` (seal own car), ``view`` (slot, view), ``fast`` (slot, view),
    ``sync`` (lane retry)."""

    kind: str
    slot: int = 0
    view: int = 0


@dataclass(frozen=True, slots=True)
class Start:
    """The replica starts (fresh or after restore); it arms its timers."""

    now: int


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message from peer ``sender`` (authenticated by the transport, not trusted for votes)."""

    now: int
    sender: int
    message: Message


@dataclass(frozen=True, slots=True)
class TimerFired:
    now: int
    timer: Timer


@dataclass(frozen=True, slots=True)
class TxsSubmitted:
    """Transactions for this validator's own lane (already admitted by the mempool)."""

    now: int
    txs: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Executed:
    """The runtime executed block ``height`` and saved it; ``commitment`` is the state
    commitment after it. Fed in height order (after a restart: from the latest checkpoint)."""

    now: int
    height: int
    commitment: bytes


Event = Start | MessageReceived | TimerFired | TxsSubmitted | Executed
