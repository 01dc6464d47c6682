"""Compact HDF5 ground-truth tables, written by ``nasnc bench import``.

No pickle anywhere: plain numeric arrays, so a table can be shared and opened
safely, and it reloads in well under a second.

Tree (``N`` rows, ``S`` seeds, ``E`` epochs)::

    /                         attrs: format="nasnc-bench-table", schema_version=1,
                                     source_kind, source, created (unix s), nasnc_version,
                                     indexed (row i is the benchmark's index i), curves
    /codes                    (N, 6) uint8    op indices (nasnc.space.OPS) of each row
    /index                    (N,)   int32    benchmark index of each row, -1 unknown
    /evaluated                (N,)   bool     the source held results for this row
    /s200/<dataset>/          attrs: seeds (S,) int64, epochs
        valid, test           (N, S) float64  final accuracy per seed, percent; NaN missing
        params, flops         (N,)   float64  millions (official aggregation over seeds)
        latency, train_time   (N,)   float64  seconds
        valid_curve, test_curve (N, E) float32 seed-mean accuracy after each epoch (only
                                               when imported with curves=True)
    /s12/<dataset>/           the same for the separate 12-epoch schedule

Only what the source has is written: a dataset array exists when at least one
row has a finite value.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from numpy.typing import NDArray

from nasnc._errors import BenchmarkError, ConfigError
from nasnc.bench._types import (
    ACCURACY_METRICS,
    COST_METRICS,
    Dataset,
    GroundTruth,
    Metric,
    Schedule,
)
from nasnc.space import NUM_EDGES, OPS, Arch

__all__ = ["TABLE_FORMAT", "TABLE_SCHEMA_VERSION", "TableBenchmark", "import_table", "is_table"]

logger = logging.getLogger(__name__)

TABLE_FORMAT = "nasnc-bench-table"
TABLE_SCHEMA_VERSION = 1
_COMPRESS = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


def _group(schedule: Schedule) -> str:
    return f"s{schedule.epochs}"


def _codes_to_keys(codes: NDArray[np.uint8]) -> list[bytes]:
    digits = (np.asarray(codes, dtype=np.uint8) + ord("0")).astype(np.uint8)
    return [bytes(r) for r in digits]


def is_table(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a nasnc benchmark table: an HDF5 file whose ``format``
    attribute says so (False for any other file, or none)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return bool(f.attrs.get("format") == TABLE_FORMAT)
    except OSError:
        return False


def import_table(
    source: GroundTruth,
    path: str | os.PathLike[str],
    *,
    curves: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write everything ``source`` knows into a compact HDF5 table at ``path``.

    Parameters
    ----------
    source
        Any :class:`GroundTruth` (an official file, ``builtin``, another table).
    path
        Output file; written to ``<path>.tmp`` first and renamed, so a killed
        import never leaves a half table under the final name.
    curves
        Also store seed-mean per-epoch accuracies (``*_curve``, float32); the
        table grows from about 1 MB to about 70 MB for a full benchmark.
    progress
        Called as ``progress(done, total)`` after each architecture.

    Returns
    -------
    pathlib.Path
        The written table.
    """
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"the output table {str(out)!r} is a folder; name a file")
    if not out.parent.is_dir():
        raise ConfigError(
            f"the folder {str(out.parent)!r} of the output table {str(out)!r} does not exist"
        )
    rows = source._evaluated_rows()
    n = source._n_rows()
    total = int(rows.size)
    codes = np.zeros((n, NUM_EDGES), dtype=np.uint8)
    index = np.full(n, -1, dtype=np.int32)
    for r in range(n):
        codes[r] = source._row_arch(r).op_indices
        idx = source._row_index(r)
        if idx is not None:
            index[r] = idx
    evaluated = np.zeros(n, dtype=bool)
    evaluated[rows] = True

    # (schedule, dataset, metric) -> {row: {seed: value}} ; costs -> array
    seeds_found: dict[tuple[Schedule, Dataset], set[int]] = {}
    acc: dict[tuple[Schedule, Dataset, Metric], dict[int, dict[int, float]]] = {}
    cost: dict[tuple[Schedule, Dataset, Metric], NDArray[np.float64]] = {}
    curve: dict[tuple[Schedule, Dataset, Metric], NDArray[np.float32]] = {}
    combos = [
        (sc, ds, me)
        for sc in Schedule
        for ds in Dataset
        for me in Metric
        if source.supports(ds, me, schedule=sc)
    ]
    for done, row in enumerate(rows.tolist(), start=1):
        for sc, ds, me in combos:
            key = (sc, ds, me)
            if me in ACCURACY_METRICS:
                values = source._seeds(row, ds, me, sc, None)
                if values:
                    acc.setdefault(key, {})[row] = values
                    seeds_found.setdefault((sc, ds), set()).update(values)
                if curves:
                    c = source._curve(row, ds, me, sc)
                    if c is not None:
                        if key not in curve:
                            curve[key] = np.full((n, sc.epochs), np.nan, dtype=np.float32)
                        curve[key][row] = c
            else:
                value = source._cost(row, ds, me, sc, None)
                if value is not None:
                    if key not in cost:
                        cost[key] = np.full(n, np.nan)
                    cost[key][row] = value
        if progress is not None:
            progress(done, total)

    tmp = out.with_name(out.name + ".tmp")
    try:
        _write_table(tmp, source, codes, index, evaluated, seeds_found, acc, cost, curve, curves)
        os.replace(tmp, out)
    except BaseException:  # a full disk, an interruption: no half table is left behind
        tmp.unlink(missing_ok=True)
        raise
    logger.info("wrote %s (%d of %d rows evaluated)", out, total, n)
    return out


def _write_table(
    tmp: Path,
    source: GroundTruth,
    codes: NDArray[np.uint8],
    index: NDArray[np.int32],
    evaluated: NDArray[np.bool_],
    seeds_found: dict[tuple[Schedule, Dataset], set[int]],
    acc: dict[tuple[Schedule, Dataset, Metric], dict[int, dict[int, float]]],
    cost: dict[tuple[Schedule, Dataset, Metric], NDArray[np.float64]],
    curve: dict[tuple[Schedule, Dataset, Metric], NDArray[np.float32]],
    curves: bool,
) -> None:
    """The table's HDF5 file at ``tmp`` (:func:`import_table` renames it into place)."""
    from nasnc import __version__

    n = int(codes.shape[0])
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = TABLE_FORMAT
        f.attrs["schema_version"] = TABLE_SCHEMA_VERSION
        f.attrs["source_kind"] = source.kind
        f.attrs["source"] = source.description
        f.attrs["created"] = time.time()
        f.attrs["nasnc_version"] = __version__
        f.attrs["indexed"] = bool((index == np.arange(n)).all())
        f.attrs["curves"] = bool(curves)
        f.create_dataset("codes", data=codes, **_COMPRESS)
        f.create_dataset("index", data=index, **_COMPRESS)
        f.create_dataset("evaluated", data=evaluated)
        for sc, ds in sorted(
            {(k[0], k[1]) for k in (*acc, *cost, *curve)}, key=lambda t: (t[0].value, t[1].value)
        ):
            g = f.require_group(f"{_group(sc)}/{ds.value}")
            seeds = sorted(seeds_found.get((sc, ds), set()))
            g.attrs["seeds"] = np.array(seeds, dtype=np.int64)
            g.attrs["epochs"] = sc.epochs
            for me in ACCURACY_METRICS:
                per_row = acc.get((sc, ds, me))
                if per_row:
                    arr = np.full((n, len(seeds)), np.nan)
                    col = {s: i for i, s in enumerate(seeds)}
                    for row, values in per_row.items():
                        for s, v in values.items():
                            arr[row, col[s]] = v
                    g.create_dataset(me.value, data=arr, **_COMPRESS)
                if (sc, ds, me) in curve:
                    g.create_dataset(f"{me.value}_curve", data=curve[(sc, ds, me)], **_COMPRESS)
            for me in COST_METRICS:
                if (sc, ds, me) in cost:
                    g.create_dataset(me.value, data=cost[(sc, ds, me)], **_COMPRESS)


class TableBenchmark(GroundTruth):
    """A table written by :func:`import_table`; everything but the curves is read at open."""

    kind = "table"
    fast_scan = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise BenchmarkError(f"benchmark table not found: {p}")
        self._path = p
        self._data: dict[tuple[Schedule, Dataset], dict[str, NDArray[np.float64]]] = {}
        self._seed_ids: dict[tuple[Schedule, Dataset], tuple[int, ...]] = {}
        self._curves: dict[tuple[Schedule, Dataset, Metric], NDArray[np.float32]] = {}
        self._curve_names: set[tuple[Schedule, Dataset, Metric]] = set()
        try:
            with h5py.File(p, "r") as f:
                fmt = f.attrs.get("format")
                if fmt != TABLE_FORMAT:
                    raise BenchmarkError(
                        f"{p} is not a nasnc benchmark table (format attribute {fmt!r}); "
                        "create one with `nasnc bench import`"
                    )
                version = int(f.attrs.get("schema_version", -1))
                if version > TABLE_SCHEMA_VERSION:
                    raise BenchmarkError(
                        f"{p} has table schema {version}, newer than this nasnc "
                        f"({TABLE_SCHEMA_VERSION}); upgrade nasnc"
                    )
                self._source = str(f.attrs.get("source", "?"))
                self._codes = np.asarray(f["codes"][()], dtype=np.uint8)
                self._index = np.asarray(f["index"][()], dtype=np.int64)
                self._evaluated_mask = np.asarray(f["evaluated"][()], dtype=bool)
                self._evaluated = np.flatnonzero(self._evaluated_mask)
                for sc in Schedule:
                    if _group(sc) not in f:
                        continue
                    for ds in Dataset:
                        name = f"{_group(sc)}/{ds.value}"
                        if name not in f:
                            continue
                        g = f[name]
                        self._seed_ids[(sc, ds)] = tuple(int(s) for s in g.attrs["seeds"])
                        arrays: dict[str, NDArray[np.float64]] = {}
                        for me in Metric:
                            if me.value in g:
                                arrays[me.value] = np.asarray(g[me.value][()], dtype=np.float64)
                            if f"{me.value}_curve" in g:
                                self._curve_names.add((sc, ds, me))
                        self._data[(sc, ds)] = arrays
        except OSError as exc:
            raise BenchmarkError(f"cannot read benchmark table {p}: {exc}") from exc
        except KeyError as exc:
            raise BenchmarkError(f"benchmark table {p} is incomplete: missing {exc}") from exc
        except (ValueError, TypeError) as exc:  # a column of strings, say
            raise BenchmarkError(f"benchmark table {p} holds a non-numeric column: {exc}") from exc
        self._row_of = {k: i for i, k in enumerate(_codes_to_keys(self._codes))}
        self._check_shapes()

    def _check_shapes(self) -> None:
        """Every column has one row per cell and one value per seed; each cell once.

        A table that passed its format check but was cut or edited would
        otherwise answer with another cell's or another seed's value.
        """
        n = int(self._codes.shape[0]) if self._codes.ndim == 2 else -1

        def bad(what: str) -> BenchmarkError:
            return BenchmarkError(f"benchmark table {self._path} is inconsistent: {what}")

        if self._codes.ndim != 2 or self._codes.shape[1] != NUM_EDGES:
            raise bad(f"codes has shape {self._codes.shape}, expected (cells, {NUM_EDGES})")
        if self._codes.size and int(self._codes.max()) >= len(OPS):
            raise bad(f"codes holds op index {int(self._codes.max())} (ops: 0..{len(OPS) - 1})")
        if len(self._row_of) != n:
            raise bad(f"{n - len(self._row_of)} cells appear more than once in codes")
        for name, column in (("index", self._index), ("evaluated", self._evaluated_mask)):
            if column.shape != (n,):
                raise bad(f"{name} has shape {column.shape}, expected ({n},) as codes")
        for (sc, ds), arrays in self._data.items():
            k = len(self._seed_ids[(sc, ds)])
            for metric, arr in arrays.items():
                want = (n, k) if Metric(metric) in ACCURACY_METRICS else (n,)
                if arr.shape != want:
                    where = f"{_group(sc)}/{ds.value}/{metric}"
                    raise bad(f"{where} has shape {arr.shape}, expected {want}")

    @property
    def description(self) -> str:
        return f"table ({self._path}; from {self._source})"

    def _n_rows(self) -> int:
        return int(self._codes.shape[0])

    def _row(self, arch: Arch) -> int | None:
        return self._row_of.get(arch.code.encode())

    def _row_arch(self, row: int) -> Arch:
        return Arch.from_indices(self._codes[row].tolist())

    def _row_index(self, row: int) -> int | None:
        idx = int(self._index[row])
        return None if idx < 0 else idx

    def _evaluated_rows(self) -> NDArray[np.int64]:
        return self._evaluated.astype(np.int64)

    def _has_results(self, row: int) -> bool:
        return bool(self._evaluated_mask[row])

    def _supports(self, dataset: Dataset, metric: Metric, schedule: Schedule) -> bool:
        arrays = self._data.get((schedule, dataset))
        return arrays is not None and (
            metric.value in arrays or (schedule, dataset, metric) in self._curve_names
        )

    def _load_curve(self, key: tuple[Schedule, Dataset, Metric]) -> NDArray[np.float32] | None:
        if key not in self._curve_names:
            return None
        if key not in self._curves:
            sc, ds, me = key
            with h5py.File(self._path, "r") as f:
                self._curves[key] = np.asarray(f[f"{_group(sc)}/{ds.value}/{me.value}_curve"][()])
        return self._curves[key]

    def _seeds(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule, epoch: int | None
    ) -> dict[int, float]:
        if epoch is not None:
            return {}  # per-seed curves are not stored
        arr = self._data[(schedule, dataset)].get(metric.value)
        if arr is None:
            return {}
        seeds = self._seed_ids[(schedule, dataset)]
        return {s: float(v) for s, v in zip(seeds, arr[row]) if np.isfinite(v)}

    def _accuracy_mean(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule, epoch: int | None
    ) -> float | None:
        if epoch is None:
            return super()._accuracy_mean(row, dataset, metric, schedule, epoch)
        curve = self._load_curve((schedule, dataset, metric))
        if curve is None:
            return None
        value = float(curve[row, epoch - 1])
        return value if np.isfinite(value) else None

    def _curve(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule
    ) -> NDArray[np.float64] | None:
        curve = self._load_curve((schedule, dataset, metric))
        if curve is None:
            return None
        return curve[row].astype(np.float64)

    def _cost(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule, epoch: int | None
    ) -> float | None:
        if metric is Metric.TRAIN_TIME and epoch is not None:
            return None  # only the total is stored
        arr = self._data[(schedule, dataset)].get(metric.value)
        if arr is None:
            return None
        value = float(arr[row])
        return value if np.isfinite(value) else None

    def _column(self, dataset: Dataset, metric: Metric, schedule: Schedule) -> NDArray[np.float64]:
        arr = self._data[(schedule, dataset)].get(metric.value)
        if arr is None:
            return np.full(self._n_rows(), np.nan)
        if arr.ndim == 2:
            with np.errstate(invalid="ignore"):
                counts = np.isfinite(arr).sum(axis=1)
                return np.where(counts > 0, np.nansum(arr, axis=1) / np.maximum(counts, 1), np.nan)
        return arr.copy()
