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
    """Three short lines (fits an 80-column terminal)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column()
    if s is None:
        grid.add_row("[bold]lanenet spam[/] starting")
        return grid
    c = s.counts
    p50 = "-" if s.p50_ms is None else f"{s.p50_ms} ms"
    grid.add_row(
        f"[bold]lanenet spam[/] {s.phase}  {s.elapsed_s:.1f} s  "
        f"target {s.target_tps} tx/s  height {s.height}"
    )
    grid.add_row(
        f"sent {c.sent}  accepted {c.accepted}  rejected {c.rejected}  "
        f"committed {c.committed}  pending {c.pending}"
    )
    grid.add_row(f"TPS (last 5 s) {s.tps:.0f}  latency p50 (recent) {p50}")
    return grid
