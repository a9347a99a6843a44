"""Protocol parameters shared by every replica of a network (part of genesis)."""

from __future__ import annotations

from dataclasses import dataclass

from node.types.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ProtocolConfig:
    """Timers are in milliseconds of the clock that feeds events (virtual in the simulator)."""

    car_interval_ms: int = 50
    car_max_bytes: int = 1 << 20
    car_max_txs: int = 4000
    lane_window: int = 8
    view_timeout_ms: int = 1000
    max_view_timeout_ms: int = 16000
    fast_path_timeout_ms: int = 20
    parallel_slots: int = 4
    sync_retry_ms: int = 300
    max_sync_cars: int = 512
    car_retention: int = 1024
    """Ordered cars kept in memory per lane (to answer peers' range syncs): RSS is bounded by
    lanes x car_retention x car size. A peer that falls further behind than this catches up
    through block sync (a full node's path), not from these cars."""
    commit_retention: int = 1024
    """Committed slots (commit QC + cut) kept in memory to answer commit syncs."""
    exec_cert_interval: int = 10
    """Validators vote on their state commitment after every height that is a multiple."""

    def __post_init__(self) -> None:
        for name in (
            "car_interval_ms",
            "car_max_bytes",
            "car_max_txs",
            "lane_window",
            "view_timeout_ms",
            "max_view_timeout_ms",
            "parallel_slots",
            "sync_retry_ms",
            "max_sync_cars",
            "car_retention",
            "commit_retention",
            "exec_cert_interval",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"protocol config: {name} must be positive")
        if self.fast_path_timeout_ms < 0:
            raise ConfigError("protocol config: fast_path_timeout_ms must not be negative")
        if self.max_view_timeout_ms < self.view_timeout_ms:
            raise ConfigError("protocol config: max_view_timeout_ms < view_timeout_ms")

    def is_exec_checkpoint(self, height: int) -> bool:
        return height > 0 and height % self.exec_cert_interval == 0

    def view_timeout(self, view: int) -> int:
        """Timeouts double per view, capped."""
        return min(self.view_timeout_ms << min(view, 20), self.max_view_timeout_ms)
