"""The error tree: three fates hang off one base class."""

from __future__ import annotations

import pytest

from node.types import errors


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (errors.InvalidInput, errors.LanenetError),
        (errors.MalformedMessage, errors.InvalidInput),
        (errors.InvalidSignature, errors.InvalidInput),
        (errors.InvalidProposal, errors.InvalidInput),
        (errors.TransientError, errors.LanenetError),
        (errors.ConfigError, errors.LanenetError),
        (errors.FatalError, errors.LanenetError),
    ],
)
def test_error_tree_matches_its_docstring(cls: type, parent: type) -> None:
    """Each error subclasses the parent its module docstring draws, and is named there."""
    assert issubclass(cls, parent)
    assert cls.__name__ in (errors.__doc__ or "")


def test_fates_do_not_overlap() -> None:
    """Bad input, transient I/O, config and fatal errors are disjoint branches."""
    fates = [errors.InvalidInput, errors.TransientError, errors.ConfigError, errors.FatalError]
    for a in fates:
        for b in fates:
            assert issubclass(a, b) == (a is b)
    assert not issubclass(errors.LanenetError, errors.InvalidInput)
