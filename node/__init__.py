"""lanenet: an Autobahn validator node in Python."""

__version__ = "0.1.0"
