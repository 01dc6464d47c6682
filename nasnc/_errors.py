"""Exception hierarchy shared by every nasnc module.

Every error nasnc raises on purpose derives from :class:`NasncError`, so callers
(and the CLI) can tell an expected, explainable failure from a bug. Subclasses
also derive from the matching built-in (``ValueError``, ``FileNotFoundError``,
...) so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "ArchError",
    "BenchmarkError",
    "ConfigError",
    "DataError",
    "NasncError",
    "StoreError",
]


class NasncError(Exception):
    """Base class of every error nasnc raises deliberately."""


class ArchError(NasncError, ValueError):
    """A malformed or unknown architecture string."""


class ConfigError(NasncError, ValueError):
    """A configuration key or value that cannot be used; the message names it."""


class DataError(NasncError, OSError):
    """Missing, corrupt or truncated dataset files; the message names the file."""


class StoreError(NasncError, OSError):
    """A cache file that cannot be read or written; the message names the file."""


class BenchmarkError(NasncError, LookupError):
    """A ground-truth source that is missing, unreadable or lacks the query."""
