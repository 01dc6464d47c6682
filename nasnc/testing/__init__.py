"""Test doubles for nasnc's own tests and for users' tests.

Nothing here trains a network: :func:`make_entry` fabricates a realistic,
deterministic :class:`~nasnc.store.Entry` (trajectory columns, summary and
baseline scores shaped like those of a real proxy run) so that code reading a
cache can be tested without a training run. Never use it as a result.
"""

from nasnc.testing._entries import DEFAULT_CONFIG, make_entry

__all__ = ["DEFAULT_CONFIG", "make_entry"]
