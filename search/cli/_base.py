"""Command objects and output helpers shared by every ``nasnc`` command.

A command is a small object with a space-separated ``name`` (``"space show"``),
a one-line ``help``, ``add_arguments(parser)`` and ``run(args) -> int``. The
main entry point builds nested sub-parsers from the names. Commands print;
library code only logs.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from nasnc._config import DEFAULT_CACHE

__all__ = [
    "ARCH_HELP",
    "CACHE_HELP",
    "FORMATS",
    "Command",
    "UsageError",
    "emit",
    "format_table",
    "positive_int",
    "progress_wanted",
    "resolve_cache_dataset",
    "to_jsonable",
]

#: How every command that reads a cell describes it.
ARCH_HELP = (
    "benchmark string '|op~0|+|op~0|op~1|+...', or a six-digit op code prefixed nb201: "
    "(nasnc/NAS-Bench-201 order) or naslib: (NASLib order)"
)


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit status 2."""


#: Output formats of every command that prints results.
FORMATS: tuple[str, ...] = ("table", "csv", "json")
#: The ``--cache`` option of every command: defaulted everywhere, never required.
CACHE_HELP = (
    f"the HDF5 trajectory cache folder (default: {DEFAULT_CACHE}, or the config's "
    "'cache:' for commands that read a config)"
)


def progress_wanted(no_progress: bool, stream: TextIO | None = None) -> bool:
    """Draw a progress bar only when not refused and ``stream`` (stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not no_progress and callable(isatty) and bool(isatty())


def resolve_cache_dataset(name: str, held: Iterable[str], cache: str) -> tuple[str, str | None]:
    """The cache's name for dataset ``name`` and the benchmark setup ``name`` spells, if any.

    ``name`` may be any spelling of the dataset catalogue (``CIFAR-10``); a
    benchmark setup such as ``cifar10-valid`` selects its proxy dataset and
    is returned as the second element. A dataset the cache does not hold is
    a :class:`UsageError` naming it, what the cache holds and, for an unknown
    name, the known datasets.
    """
    from nasnc._catalogue import BENCHMARK_DATASETS, PROXY_DATASETS, dataset_info
    from nasnc._errors import ConfigError

    present = sorted(set(held))
    if name in present:
        return name, None
    try:
        info = dataset_info(name)
    except ConfigError:
        info = None
    if info is not None and info.name in present:
        setup = next(
            (b for b in BENCHMARK_DATASETS if b.lower() == name.strip().lower() and b != info.name),
            None,
        )
        return info.name, setup
    known = "" if info is not None else f" (known datasets: {', '.join(PROXY_DATASETS)})"
    raise UsageError(
        f"the cache {cache} has no entries for dataset {name!r}{known}; "
        f"it holds: {', '.join(present) or 'nothing'}"
    )


def _int_at_least(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, but got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {what}, but got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse ``type`` of a count that must be at least 1 (exit 2 naming the option)."""
    return _int_at_least(text, 1, "a positive integer")


def seed_int(text: str) -> int:
    """argparse ``type`` of a seed: an integer of at least 0 (exit 2 naming the option)."""
    return _int_at_least(text, 0, "an integer seed of 0 or more")


def check_writable_folder(folder: Path, option: str, *, create: bool = False) -> None:
    """A usage error naming ``option`` unless a file can be written in ``folder``
    (made first with ``create``): checked before the work, not after it."""
    import tempfile

    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"{option}: cannot write in {folder}: {exc.strerror or exc}") from None


class Command(ABC):
    """One ``nasnc`` sub-command."""

    name: str = ""
    help: str = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027
        """Declare the command's options (none by default)."""

    @abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Execute; return the exit status."""


def to_jsonable(value: Any) -> Any:
    """Numpy scalars/arrays and non-finite floats made JSON-safe (NaN/inf -> None)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array, torch tensor
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}f}"
    return str(value)


def format_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, digits: int = 4
) -> str:
    """A plain aligned text table (numbers right-aligned)."""
    cells = [[_cell(row.get(c), digits) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row.get(c), (int, float)) or row.get(c) is None for row in rows)
        for c in columns
    ]

    def line(values: Iterable[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line(columns), line("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def emit(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: str,
    *,
    stream: TextIO | None = None,
    json_payload: Any = None,
) -> None:
    """Print ``rows`` as ``table``, ``csv`` or ``json`` (``json_payload`` overrides rows)."""
    stream = stream or sys.stdout
    if fmt == "json":
        payload = rows if json_payload is None else json_payload
        stream.write(json.dumps(to_jsonable(payload), indent=2) + "\n")
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: to_jsonable(row.get(c)) for c in columns})
        stream.write(buf.getvalue())
    elif fmt == "table":
        stream.write(format_table(rows, columns) + "\n")
    else:  # argparse choices prevent this
        raise UsageError(f"unknown format {fmt!r}")
