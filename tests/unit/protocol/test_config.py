"""ProtocolConfig: validation of every field and the capped, doubling view timeout."""

from __future__ import annotations

import dataclasses

import pytest

from node.protocol.config import ProtocolConfig
from node.types.errors import ConfigError

POSITIVE_FIELDS = [
    f.name for f in dataclasses.fields(ProtocolConfig) if f.name != "fast_path_timeout_ms"
]


def test_defaults_are_valid() -> None:
    """The default configuration constructs without error."""
    assert ProtocolConfig().view_timeout(0) == ProtocolConfig().view_timeout_ms


@pytest.mark.parametrize("name", POSITIVE_FIELDS)
@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_fields_are_config_errors(name: str, value: int) -> None:
    """Every size, interval and bound must be positive."""
    with pytest.raises(ConfigError, match=name):
        ProtocolConfig(**{name: value})


def test_fast_path_timeout_may_be_zero_but_not_negative() -> None:
    """fast_path_timeout_ms = 0 disables the fast-path wait; negative is an error."""
    assert ProtocolConfig(fast_path_timeout_ms=0).fast_path_timeout_ms == 0
    with pytest.raises(ConfigError, match="fast_path_timeout_ms"):
        ProtocolConfig(fast_path_timeout_ms=-1)


def test_max_view_timeout_must_not_be_below_base() -> None:
    """The cap on view timeouts cannot be lower than the first timeout."""
    with pytest.raises(ConfigError, match="max_view_timeout_ms"):
        ProtocolConfig(view_timeout_ms=500, max_view_timeout_ms=499)


def test_view_timeout_doubles_per_view_up_to_the_cap() -> None:
    """view_timeout(v) = base * 2^v, capped at max_view_timeout_ms, even for huge views."""
    cfg = ProtocolConfig(view_timeout_ms=100, max_view_timeout_ms=1000)
    assert [cfg.view_timeout(v) for v in range(6)] == [100, 200, 400, 800, 1000, 1000]
    assert cfg.view_timeout(10**9) == 1000
