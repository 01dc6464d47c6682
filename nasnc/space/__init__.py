"""The NAS-Bench-201 search space: the :class:`Arch` value type and helpers."""

from nasnc.space._arch import (
    EDGES,
    NASLIB_OPS,
    NUM_ARCHS,
    NUM_EDGES,
    NUM_GRAPHS,
    NUM_UNIQUE,
    NUM_UNIQUE_NONZERO,
    OPS,
    Arch,
    all_archs,
    canonical_classes,
    sample_archs,
)

__all__ = [
    "EDGES",
    "NASLIB_OPS",
    "NUM_ARCHS",
    "NUM_EDGES",
    "NUM_GRAPHS",
    "NUM_UNIQUE",
    "NUM_UNIQUE_NONZERO",
    "OPS",
    "Arch",
    "all_archs",
    "canonical_classes",
    "sample_archs",
]
