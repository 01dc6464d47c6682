"""Test doubles for nasnc's own tests and for users' tests.

:func:`make_entry` fabricates a realistic, deterministic
:class:`~nasnc.store.Entry` (trajectory columns, summary and baseline scores
shaped like those of a real proxy run) so that code reading a cache can be
tested without a training run. :func:`make_synthetic_dataset` writes a small,
learnable, seeded dataset in the CIFAR-10/100 or ImageNet16-120 file layout so
that code training on images can be tested without the real files. Never use
either as a result.
"""

from nasnc.testing._data import make_synthetic_dataset
from nasnc.testing._entries import DEFAULT_CONFIG, make_entry

__all__ = ["DEFAULT_CONFIG", "make_entry", "make_synthetic_dataset"]
