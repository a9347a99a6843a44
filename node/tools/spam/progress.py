"""The live view of a run: one rich table refreshed a few times a second, or nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table

from node.tools.spam.ledger import Counts

REFRESH_PER_S = 4


@dataclass(frozen=True, slots=True)
class Snapshot:
    phase: str
    elapsed_s: float
    counts: Counts
    tps: float
    p50_ms: int | None
    target_tps: int
    height: int


class Progress(Protocol):
    def update(self, snapshot: Snapshot) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def update(self, snapshot: Snapshot) -> None:
        pass

    def close(self) -> None:
        pass


class LiveProgress:
    """A rich ``Live`` table on the console."""

    def __init__(self, console: Console | None = None) -> None:
        self._live = Live(
            render(None), console=console, refresh_per_second=REFRESH_PER_S, transient=False
        )
        self._live.start()

    def update(self, snapshot: Snapshot) -> None:
        self._live.update(render(snapshot))

    def close(self) -> None:
        self._live.stop()


def render(s: Snapshot | None) -> Table:
    table = Table(title="lanenet spam", title_justify="left")
    for name in (
        "phase",
        "elapsed",
        "sent",
        "accepted",
        "rejected",
        "committed",
        "pending",
        "TPS (5 s)",
        "p50",
        "height",
    ):
        table.add_column(name, justify="right")
    if s is None:
        table.add_row("starting", *["-"] * 9)
        return table
    c = s.counts
    table.add_row(
        s.phase,
        f"{s.elapsed_s:.1f} s",
        str(c.sent),
        str(c.accepted),
        str(c.rejected),
        str(c.committed),
        str(c.pending),
        f"{s.tps:.0f} / {s.target_tps}",
        "-" if s.p50_ms is None else f"{s.p50_ms} ms",
        str(s.height),
    )
    return table
