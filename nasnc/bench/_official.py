"""Sources read through the benchmark authors' own libraries.

- ``nats``: NATS-Bench topology (``tss``) through ``nats_bench`` (extra
  ``nb201``). A directory (``NATS-tss-v1_0-3ffb9-simple/``: ``meta.pickle.pbz2``
  plus one ``NNNNNN.pickle.pbz2`` per cell) is opened with ``fast_mode=True``
  and records are read on first use; a single ``.pickle.pbz2`` file is read
  whole (``fast_mode=False``).
- ``nb201``: the NAS-Bench-201 ``.pth`` file (v1_0 or v1_1) through
  ``nas_201_api`` (extra ``nb201``). Recent torch refuses to unpickle it by
  default, so it is read with ``torch.load(path, weights_only=False)``.

Both formats are Python pickles: unpickling can run code. nasnc unpickles
them only from a path the user names (``open_benchmark(path)``, ``--benchmark
FILE``), never from a default location. Import such a file once with
``nasnc bench import`` to get a pickle-free HDF5 table that reloads in about a
second.

How the official API's traps are handled
----------------------------------------
- ``hp``: every read names the schedule, ``'200'`` unless
  :attr:`Schedule.EPOCHS_12` is asked for; the official default ``hp='12'``
  is never used.
- ``is_random``: values are read per seed (``is_random=<seed>``) and
  averaged here, which equals the official ``is_random=False``; a random seed
  (``is_random=True``) is never used.
- Splits: see :mod:`nasnc.bench._types` (``cifar10`` has no validation
  accuracy; ``cifar10-valid``'s test accuracy is ``ori-test``).
- Indices: ``meta_archs`` is the benchmark's own order; architectures are
  matched by their string, never by a position in another enumeration.
- Costs follow ``ArchResults.get_compute_costs`` of NATS-Bench 1.8: mean over
  seeds, except params/FLOPs that disagree between seeds, where seed 888's
  value is used (the authors' legacy fix; ``nas_201_api`` lacks it). The
  training time is the seed mean of the cumulative training time.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nasnc._errors import BenchmarkError
from nasnc.bench._types import _ACC_SETS, Dataset, GroundTruth, Metric, Schedule
from nasnc.space import NUM_ARCHS, Arch

__all__ = ["NATSBenchmark", "NB201Benchmark"]

logger = logging.getLogger(__name__)


def _warn_pickle(path: Path) -> None:
    """Say what opening ``path`` means, once it is known to be there (a config file
    can name it): unpickling can run code."""
    logger.warning(
        "%s is a Python pickle: loading it can run code; open only files you trust "
        "(`nasnc bench import` converts it once into a pickle-free .h5 table)",
        path,
    )


_HP = {Schedule.EPOCHS_200: "200", Schedule.EPOCHS_12: "12"}
_NB201_HP = {Schedule.EPOCHS_200: "full", Schedule.EPOCHS_12: "less"}
_LEGACY_SEED = 888
_RECORD_FILE = re.compile(r"^(\d{6})\.pickle\.pbz2$")
_CACHE_SIZE = 64


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _legacy_mean(values: list[float], seeds: list[int]) -> float | None:
    """NATS-Bench's aggregation of params/FLOPs over seeds."""
    if not values:
        return None
    if len({f"{v:.5f}" for v in values}) > 1 and _LEGACY_SEED in seeds:
        return float(values[seeds.index(_LEGACY_SEED)])
    return float(sum(values) / len(values))


class _OfficialBenchmark(GroundTruth):
    """Shared reading logic over ``ArchResults`` objects of either official library."""

    fast_scan = True

    def __init__(self, meta_archs: list[str], path: Path) -> None:
        self._path = path
        self._meta = list(meta_archs)
        self._index_of = {s: i for i, s in enumerate(self._meta)}
        self._archs: dict[int, Arch] = {}
        self._cache: OrderedDict[int, dict[Schedule, Any]] = OrderedDict()

    # ----------------------------------------------------- to implement
    def _load_record(self, index: int) -> dict[Schedule, Any]:
        """The official ``ArchResults`` of ``index`` per schedule (empty: not stored)."""
        raise NotImplementedError

    # ------------------------------------------------------- primitives
    def _n_rows(self) -> int:
        return len(self._meta)

    def _row(self, arch: Arch) -> int | None:
        return self._index_of.get(str(arch))

    def _row_arch(self, row: int) -> Arch:
        arch = self._archs.get(row)
        if arch is None:
            arch = self._archs[row] = Arch.from_str(self._meta[row])
        return arch

    def _row_index(self, row: int) -> int | None:
        return row

    def _results(self, row: int, schedule: Schedule) -> Any | None:
        record = self._cache.get(row)
        if record is None:
            record = self._load_record(row)
            self._cache[row] = record
            if len(self._cache) > _CACHE_SIZE:  # bounded memory, whatever the scan
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(row)
        return record.get(schedule)

    def _trials(self, row: int, dataset: Dataset, schedule: Schedule) -> dict[int, Any]:
        """seed -> ResultsCount for one (arch, dataset, schedule); empty when absent."""
        res = self._results(row, schedule)
        if res is None or dataset.value not in res.get_dataset_names():
            return {}
        return {int(s): t for s, t in res.query(dataset.value).items()}

    def _seeds(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule, epoch: int | None
    ) -> dict[int, float]:
        setname = _ACC_SETS.get((dataset, metric))
        if setname is None:
            return {}
        res = self._results(row, schedule)
        if res is None or dataset.value not in res.get_dataset_names():
            return {}
        iepoch = None if epoch is None else epoch - 1
        out: dict[int, float] = {}
        for seed in res.get_dataset_seeds(dataset.value):
            try:
                # is_random=<seed>: that trial only (never True: a random seed per call)
                info = res.get_metrics(dataset.value, setname, iepoch=iepoch, is_random=int(seed))
            except (KeyError, ValueError, AssertionError, IndexError):
                continue  # e.g. cifar10-valid's ori-test exists at the last epoch only
            value = _finite(info.get("accuracy"))
            if value is not None:
                out[int(seed)] = value
        return out

    def _cost(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule, epoch: int | None
    ) -> float | None:
        trials = self._trials(row, dataset, schedule)
        if not trials:
            return None
        seeds = sorted(trials)
        if metric is Metric.PARAMS:
            return _legacy_mean([float(trials[s].params) for s in seeds], seeds)
        if metric is Metric.FLOPS:
            return _legacy_mean([float(trials[s].flop) for s in seeds], seeds)
        if metric is Metric.LATENCY:
            lat = [float(trials[s].get_latency()) for s in seeds]
            lat = [x for x in lat if x > 0]
            return float(sum(lat) / len(lat)) if lat else None
        # TRAIN_TIME: cumulative training time up to the epoch, mean over seeds
        iepoch = None if epoch is None else epoch - 1
        times = []
        for s in seeds:
            try:
                t = _finite(trials[s].get_train(iepoch)["all_time"])
            except (KeyError, ValueError, AssertionError, IndexError):
                t = None
            if t is not None:
                times.append(t)
        return float(sum(times) / len(times)) if times else None

    def _supports(self, dataset: Dataset, metric: Metric, schedule: Schedule) -> bool:
        return True  # the records say per cell what exists; missing values read as None

    def _curve(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule
    ) -> NDArray[np.float64] | None:
        if not metric.is_accuracy:
            return super()._curve(row, dataset, metric, schedule)
        setname = _ACC_SETS.get((dataset, metric))
        trials = self._trials(row, dataset, schedule)
        if setname is None or not trials:
            return None
        epochs = schedule.epochs
        per_seed = np.full((len(trials), epochs), np.nan)
        for i, trial in enumerate(trials.values()):
            accs = trial.eval_acc1es  # public attribute: {"<set>@<iepoch>": percent}
            for e in range(min(epochs, int(trial.epochs))):
                value = _finite(accs.get(f"{setname}@{e}"))
                if value is not None:
                    per_seed[i, e] = value
        counts = np.isfinite(per_seed).sum(axis=0)
        if counts[:-1].sum() == 0:
            return None  # only the final value: no curve
        with np.errstate(invalid="ignore"):
            return np.where(counts > 0, np.nansum(per_seed, axis=0) / np.maximum(counts, 1), np.nan)


class NATSBenchmark(_OfficialBenchmark):
    """NATS-Bench topology search space (= NAS-Bench-201 cells) via ``nats_bench``.

    Parameters
    ----------
    path
        A ``NATS-tss-*-simple`` directory (read lazily, ``fast_mode=True``) or
        a whole-benchmark ``NATS-tss-*.pickle.pbz2`` file. Unpickled: name
        only files you trust.
    """

    kind = "nats"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            import nats_bench
        except ImportError:
            raise BenchmarkError(
                "reading NATS-Bench needs the nats-bench package: pip install 'nasnc[nb201]'"
            ) from None
        p = Path(path).expanduser()
        self._fast = p.is_dir()
        if self._fast and not (p / "meta.pickle.pbz2").is_file():
            raise BenchmarkError(f"{p} is not a NATS-Bench directory: meta.pickle.pbz2 is missing")
        if not self._fast and not p.is_file():
            raise BenchmarkError(f"NATS-Bench file not found: {p}")
        _warn_pickle(p)
        try:
            self._api = nats_bench.create(str(p), "tss", fast_mode=self._fast, verbose=False)
        except Exception as exc:  # the library raises bare ValueError/AssertionError/pickle errors
            raise BenchmarkError(
                f"nats_bench cannot open {p}: {type(exc).__name__}: {exc}"
            ) from exc
        super().__init__(self._api.meta_archs, p)
        if len(self._meta) != NUM_ARCHS:
            raise BenchmarkError(
                f"{p} lists {len(self._meta)} architectures, expected {NUM_ARCHS} (tss)"
            )
        if self._fast:
            found = sorted(int(m.group(1)) for f in os.listdir(p) if (m := _RECORD_FILE.match(f)))
            self._available = np.array(found, dtype=np.int64)
            self.fast_scan = len(found) <= 1000
        else:
            self._available = np.array(sorted(self._api.evaluated_indexes), dtype=np.int64)
        self._available_set = set(self._available.tolist())

    @property
    def description(self) -> str:
        return f"nats ({self._path})"

    @property
    def api(self) -> Any:
        """The underlying official ``NATStopology`` object.

        In fast mode (a directory of per-record pickles) this object holds no
        records: each one read here is loaded through it and then taken out
        again, so a full scan does not keep every record in memory. Query it
        through this class, or call its ``reload`` yourself.
        """
        return self._api

    def _evaluated_rows(self) -> NDArray[np.int64]:
        return self._available

    def _has_results(self, row: int) -> bool:
        return row in self._available_set

    def _load_record(self, index: int) -> dict[Schedule, Any]:
        if index not in self._available_set:
            return {}
        api = self._api
        try:
            if self._fast:
                # reload() is the library's public per-record loader; the record is then
                # taken out of the API object, which would otherwise keep every record
                # it ever loaded (several GB over a full scan)
                api.reload(str(self._path), index)
                hp2res = api.arch2infos_dict.pop(index, {})
                api.evaluated_indexes.discard(index)
            else:
                hp2res = api.arch2infos_dict.get(index, {})
        except (
            ValueError,
            KeyError,
            AssertionError,
            OSError,
            EOFError,
            pickle.UnpicklingError,
        ) as exc:
            # EOFError: a truncated .pbz2 ("Compressed file ended before ...")
            raise BenchmarkError(f"{self.description}: cannot read record {index}: {exc}") from exc
        return {sc: hp2res[hp] for sc, hp in _HP.items() if hp in hp2res}


class NB201Benchmark(_OfficialBenchmark):
    """The NAS-Bench-201 ``.pth`` file via ``nas_201_api``'s ``ArchResults``.

    The file is unpickled with ``torch.load(path, map_location="cpu",
    weights_only=False)``: name only a file you trust (the official download).
    Records are turned into ``ArchResults`` on first use, so the file is held
    in memory once (the official ``NASBench201API`` deep-copies it).
    """

    kind = "nb201"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            import torch
            from nas_201_api import ArchResults
        except ImportError:
            raise BenchmarkError(
                "reading NAS-Bench-201 needs the nas-bench-201 package: pip install 'nasnc[nb201]'"
            ) from None
        p = Path(path).expanduser()
        if not p.is_file():
            raise BenchmarkError(f"NAS-Bench-201 file not found: {p}")
        _warn_pickle(p)
        logger.info("unpickling %s (torch.load weights_only=False)", p)
        try:
            raw = torch.load(p, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise BenchmarkError(
                f"cannot read NAS-Bench-201 file {p}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(raw, dict) or not {"meta_archs", "arch2infos"} <= set(raw):
            raise BenchmarkError(
                f"{p} is not a NAS-Bench-201 file: expected a dict with 'meta_archs' and "
                f"'arch2infos', got {type(raw).__name__}"
                + (f" with keys {sorted(raw)[:5]}" if isinstance(raw, dict) else "")
            )
        self._raw_infos: dict[int, dict[str, Any]] = raw["arch2infos"]
        self._arch_results = ArchResults
        super().__init__(raw["meta_archs"], p)
        if len(self._meta) != NUM_ARCHS:
            raise BenchmarkError(f"{p} lists {len(self._meta)} architectures, expected {NUM_ARCHS}")
        self._available = np.array(sorted(int(i) for i in self._raw_infos), dtype=np.int64)
        self._available_set = set(self._available.tolist())

    @property
    def description(self) -> str:
        return f"nb201 ({self._path})"

    def _evaluated_rows(self) -> NDArray[np.int64]:
        return self._available

    def _has_results(self, row: int) -> bool:
        return row in self._available_set

    def _load_record(self, index: int) -> dict[Schedule, Any]:
        info = self._raw_infos.get(index)
        if info is None:
            return {}
        return {
            sc: self._arch_results.create_from_state_dict(info[key])
            for sc, key in _NB201_HP.items()
            if key in info
        }
