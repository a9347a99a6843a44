"""The one error tree of lanenet.

    LanenetError
    ├── InvalidInput          bad peer or client input: dropped, counted, peer penalized
    │   ├── MalformedMessage  could not be decoded or is structurally wrong
    │   ├── InvalidSignature  a signature or certificate does not verify
    │   └── InvalidProposal   well-formed but breaks a protocol rule (wrong leader, stale view)
    ├── TransientError        I/O that may succeed later: retried with backoff
    ├── ConfigError           the operator's configuration is wrong: exit with a clear message
    └── FatalError            a broken invariant or storage failure: the node stops loudly

State machines never raise for bad input; they return ``Ignore``/``Reject`` outcomes.
These exceptions are for the edges (decoding, config loading, storage).
"""

from __future__ import annotations


class LanenetError(Exception):
    """Base of every error lanenet raises on purpose."""


class InvalidInput(LanenetError):
    """Input from a peer or client that must be dropped."""


class MalformedMessage(InvalidInput):
    """A message that could not be decoded or has structurally wrong fields."""


class InvalidSignature(InvalidInput):
    """A signature or a certificate that does not verify."""


class InvalidProposal(InvalidInput):
    """A well-formed message that breaks a protocol rule."""


class TransientError(LanenetError):
    """An I/O failure that may succeed when retried."""


class ConfigError(LanenetError):
    """A configuration the operator must fix."""


class FatalError(LanenetError):
    """A broken invariant or storage failure: the node must stop."""
