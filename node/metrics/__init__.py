"""Prometheus metrics of a node (``registry``) and the HTTP app that serves them (``http``)."""

from node.metrics.registry import (
    CounterLike,
    GaugeLike,
    HistogramLike,
    Metrics,
    NoopMetrics,
    family_names,
)

__all__ = [
    "CounterLike",
    "GaugeLike",
    "HistogramLike",
    "Metrics",
    "NoopMetrics",
    "family_names",
]
