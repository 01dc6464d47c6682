"""The ground-truth interface shared by every benchmark source.

Vocabulary
----------
- :class:`Dataset`: the benchmark's four training setups. ``cifar10-valid``
  trains on CIFAR-10's train split and reports *validation* accuracy (its
  valid split) and *test* accuracy (CIFAR-10's test set); ``cifar10`` trains
  on train+valid and reports *only test* accuracy, so asking it for
  validation accuracy is an error, never a silent remap; ``cifar100`` and
  ``ImageNet16-120`` report ``valid`` = the benchmark's x-valid half of the
  test images and ``test`` = the x-test half.
- :class:`Metric`: accuracies in percent as the benchmark reports them;
  ``params`` and ``flops`` in millions, ``latency`` in seconds per batch,
  ``train_time`` in seconds of training (cumulative up to ``epochs``).
- :class:`Schedule`: the benchmark trained each cell under two separate
  learning-rate schedules, 200 epochs (the ground truth everyone reports) and
  12 epochs. NAS-Bench-201's own API defaults to ``hp='12'``; nasnc always
  reads the 200-epoch schedule unless :attr:`Schedule.EPOCHS_12` is passed.
  ``epochs=12`` alone is epoch 12 *of the 200-epoch run* (learning rate still
  high), a different number from the 12-epoch schedule's end.
- Seeds: a value is the mean over the benchmark's seeds unless ``seed=`` asks
  for one; the official ``is_random=True`` (one random seed per call) is
  never used.
- Indices: :meth:`GroundTruth.index` is the benchmark's own order (index 0 is
  ``|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|``),
  not :func:`nasnc.space.all_archs` order. Sources that do not carry that
  order (``builtin``) return ``None``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from enum import Enum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nasnc._errors import ArchError, BenchmarkError, ConfigError
from nasnc.space import Arch

__all__ = [
    "ACCURACY_METRICS",
    "COST_METRICS",
    "Dataset",
    "GroundTruth",
    "Metric",
    "Schedule",
]


class Dataset(str, Enum):
    """A NAS-Bench-201 training setup (see the module docstring for the splits)."""

    CIFAR10_VALID = "cifar10-valid"
    CIFAR10 = "cifar10"
    CIFAR100 = "cifar100"
    IMAGENET16_120 = "ImageNet16-120"

    @classmethod
    def parse(cls, value: Dataset | str) -> Dataset:
        """Accept a member or its value (case-insensitive); :class:`ConfigError` otherwise."""
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower()
        for member in cls:
            if member.value.lower() == text:
                return member
        known = ", ".join(m.value for m in cls)
        raise ConfigError(f"unknown benchmark dataset; known: {known}, but got {value=}.")

    def __str__(self) -> str:
        return self.value


class Metric(str, Enum):
    """What to read from the benchmark (units in the module docstring)."""

    VALID_ACC = "valid"
    TEST_ACC = "test"
    PARAMS = "params"
    FLOPS = "flops"
    LATENCY = "latency"
    TRAIN_TIME = "train_time"

    @classmethod
    def parse(cls, value: Metric | str) -> Metric:
        """Accept a member, its value, ``valid_acc`` or ``test_acc``; else :class:`ConfigError`."""
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower()
        text = {"valid_acc": "valid", "test_acc": "test"}.get(text, text)
        for member in cls:
            if member.value == text:
                return member
        known = ", ".join(m.value for m in cls)
        raise ConfigError(f"unknown benchmark metric; known: {known}, but got {value=}.")

    @property
    def is_accuracy(self) -> bool:
        return self in ACCURACY_METRICS

    def __str__(self) -> str:
        return self.value


ACCURACY_METRICS = (Metric.VALID_ACC, Metric.TEST_ACC)
COST_METRICS = (Metric.PARAMS, Metric.FLOPS, Metric.LATENCY, Metric.TRAIN_TIME)


class Schedule(Enum):
    """The benchmark's training schedule; its value is the number of epochs.

    Deliberately not a string enum: ``"12"`` is refused so that the official
    API's ``hp='12'`` default cannot leak in by accident.
    """

    EPOCHS_200 = 200
    EPOCHS_12 = 12

    @classmethod
    def parse(cls, value: Schedule) -> Schedule:
        if isinstance(value, cls):
            return value
        raise ConfigError(
            "schedule must be a nasnc.bench.Schedule member (Schedule.EPOCHS_200 or "
            f"Schedule.EPOCHS_12), not a string or number, but got {value=}."
        )

    @property
    def epochs(self) -> int:
        return int(self.value)


_ACC_SETS: dict[tuple[Dataset, Metric], str] = {
    (Dataset.CIFAR10_VALID, Metric.VALID_ACC): "x-valid",
    (Dataset.CIFAR10_VALID, Metric.TEST_ACC): "ori-test",
    (Dataset.CIFAR10, Metric.TEST_ACC): "ori-test",
    (Dataset.CIFAR100, Metric.VALID_ACC): "x-valid",
    (Dataset.CIFAR100, Metric.TEST_ACC): "x-test",
    (Dataset.IMAGENET16_120, Metric.VALID_ACC): "x-valid",
    (Dataset.IMAGENET16_120, Metric.TEST_ACC): "x-test",
}
"""(dataset, metric) -> the official evaluation-set name it is read from."""


def missing_reason(dataset: Dataset | str, metric: Metric | str) -> str:
    """Why NAS-Bench-201 records no ``metric`` on ``dataset`` in any source ("" when it does)."""
    ds, me = Dataset.parse(dataset), Metric.parse(metric)
    if ds is Dataset.CIFAR10 and me is Metric.VALID_ACC:
        return (
            "NAS-Bench-201's 'cifar10' setup trains on train+valid and reports only test "
            "accuracy; use dataset 'cifar10-valid' for validation accuracy"
        )
    if me.is_accuracy and (ds, me) not in _ACC_SETS:
        return f"NAS-Bench-201 records no {me.value} on {ds.value}"
    return ""


class GroundTruth(ABC):
    """What a benchmark knows about the 15,625 cells, behind one interface.

    Subclasses implement a handful of row-level primitives; the public
    methods validate arguments once and share the conventions of the module
    docstring. Rows are the source's storage order; :meth:`index` maps an
    architecture to the *benchmark's* index where the source knows it.
    """

    #: Short name of the source kind: ``builtin``, ``nb201``, ``nats`` or ``table``.
    kind: str = ""
    #: True when scanning every row (``column``, ``best``) is cheap.
    fast_scan: bool = True

    # --------------------------------------------------------- primitives
    @property
    @abstractmethod
    def description(self) -> str:
        """One line naming the source (kind and file)."""

    @abstractmethod
    def _n_rows(self) -> int: ...

    @abstractmethod
    def _row(self, arch: Arch) -> int | None:
        """The row holding ``arch``, None when the source has no such row."""

    @abstractmethod
    def _row_arch(self, row: int) -> Arch: ...

    def _row_index(self, row: int) -> int | None:
        """The benchmark's own index of a row (None: the source lacks the order)."""
        return None

    @abstractmethod
    def _evaluated_rows(self) -> NDArray[np.int64]:
        """Rows that hold results (all rows for complete sources)."""

    def _has_results(self, row: int) -> bool:
        return True

    @abstractmethod
    def _supports(self, dataset: Dataset, metric: Metric, schedule: Schedule) -> bool:
        """Whether the source can answer this (dataset, metric, schedule) at all."""

    @abstractmethod
    def _seeds(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule, epoch: int | None
    ) -> dict[int, float]:
        """Per-seed accuracies (seed -> percent); ``epoch`` None is the schedule's end."""

    def _accuracy_mean(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule, epoch: int | None
    ) -> float | None:
        values = self._seeds(row, dataset, metric, schedule, epoch)
        return float(np.mean(list(values.values()))) if values else None

    @abstractmethod
    def _cost(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule, epoch: int | None
    ) -> float | None: ...

    def _column(self, dataset: Dataset, metric: Metric, schedule: Schedule) -> NDArray[np.float64]:
        """Seed-mean final values of every row (NaN where missing)."""
        out = np.full(self._n_rows(), np.nan)
        for row in self._evaluated_rows().tolist():
            value = self._value(row, dataset, metric, schedule, None, None)
            if value is not None:
                out[row] = value
        return out

    # ----------------------------------------------------------- helpers
    def _value(
        self,
        row: int,
        dataset: Dataset,
        metric: Metric,
        schedule: Schedule,
        epoch: int | None,
        seed: int | None,
    ) -> float | None:
        if metric.is_accuracy:
            if seed is None:
                value = self._accuracy_mean(row, dataset, metric, schedule, epoch)
            elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
                # 777.9 was read as seed 777, True as seed 1
                raise ConfigError(f"seed must be an integer or None, but got {seed=}.")
            else:
                value = self._seeds(row, dataset, metric, schedule, epoch).get(int(seed))
        else:
            value = self._cost(row, dataset, metric, schedule, epoch)
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    @staticmethod
    def _epoch(epochs: int | None, schedule: Schedule) -> int | None:
        """Validate ``epochs``; None for the end of the schedule."""
        if epochs is None:
            return None
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)):
            raise ConfigError(f"epochs must be an integer or None, but got {epochs=}.")
        if not 1 <= epochs <= schedule.epochs:
            raise ConfigError(
                f"epochs must lie in 1..{schedule.epochs} for {schedule.name}, but got {epochs=}."
            )
        return None if epochs == schedule.epochs else int(epochs)

    def _args(
        self, arch: Arch | str, dataset: Dataset | str, metric: Metric | str, schedule: Schedule
    ) -> tuple[Arch, Dataset, Metric, Schedule]:
        return (
            Arch.parse(arch),
            Dataset.parse(dataset),
            Metric.parse(metric),
            Schedule.parse(schedule),
        )

    # ------------------------------------------------------------ public
    def __len__(self) -> int:
        return self._n_rows()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"

    def supports(
        self,
        dataset: Dataset | str,
        metric: Metric | str = Metric.VALID_ACC,
        *,
        schedule: Schedule = Schedule.EPOCHS_200,
    ) -> bool:
        """Whether this source has ``metric`` on ``dataset`` under ``schedule`` at all."""
        ds, me, sc = Dataset.parse(dataset), Metric.parse(metric), Schedule.parse(schedule)
        if me.is_accuracy and (ds, me) not in _ACC_SETS:
            return False
        return self._supports(ds, me, sc)

    def get(
        self,
        arch: Arch | str,
        dataset: Dataset | str,
        metric: Metric | str = Metric.VALID_ACC,
        *,
        epochs: int | None = None,
        schedule: Schedule = Schedule.EPOCHS_200,
        seed: int | None = None,
    ) -> float | None:
        """The value of ``metric`` for ``arch``, or None when the source lacks it.

        Parameters
        ----------
        arch
            An :class:`~nasnc.space.Arch`, a benchmark string or an ``nb201:``/``naslib:`` op code.
        dataset
            A :class:`Dataset` or its value.
        metric
            A :class:`Metric` or its value; accuracies are in percent.
        epochs
            Value after this many epochs of ``schedule`` (1..schedule.epochs);
            None (default) or ``schedule.epochs`` is the end of training.
        schedule
            :attr:`Schedule.EPOCHS_200` (default) or :attr:`Schedule.EPOCHS_12`.
        seed
            One of the benchmark's seeds (e.g. 777); None averages the seeds.
            Cost metrics ignore it (the benchmark's own aggregate).
        """
        a, ds, me, sc = self._args(arch, dataset, metric, schedule)
        epoch = self._epoch(epochs, sc)
        if not self.supports(ds, me, schedule=sc):
            return None
        row = self._row(a)
        if row is None:
            return None
        return self._value(row, ds, me, sc, epoch, seed)

    def query(
        self,
        arch: Arch | str,
        dataset: Dataset | str,
        metric: Metric | str = Metric.VALID_ACC,
        *,
        epochs: int | None = None,
        schedule: Schedule = Schedule.EPOCHS_200,
        seed: int | None = None,
    ) -> float:
        """Like :meth:`get`, but raise :class:`BenchmarkError` saying why a value is missing."""
        value = self.get(arch, dataset, metric, epochs=epochs, schedule=schedule, seed=seed)
        if value is not None:
            return value
        a, ds, me, sc = self._args(arch, dataset, metric, schedule)
        what = f"{me.value} on {ds.value} ({sc.name}" + (
            f", epoch {epochs})" if epochs is not None else ")"
        )
        reason = missing_reason(ds, me)
        if not reason and not self.supports(ds, me, schedule=sc):
            reason = f"this source has no {what}"
        elif not reason and ((row := self._row(a)) is None or not self._has_results(row)):
            reason = "the architecture has no results in this source"
        elif not reason and seed is not None:
            held = sorted(self.seeds(a, ds, me, schedule=sc))
            if epochs is not None and seed in held:
                reason = (
                    f"this source keeps seed {seed}'s value at the end of the run only, "
                    f"not at epoch {epochs}"
                )
            else:
                reason = f"seed {seed} is not among its seeds ({', '.join(map(str, held))})"
        elif not reason and epochs is not None and self.curve(a, ds, me, schedule=sc) is None:
            reason = (
                f"this source records {me.value} on {ds.value} at the end of the "
                f"{sc.epochs}-epoch run only, not per epoch"
            )
        elif not reason:
            reason = "the value is not recorded"
        raise BenchmarkError(f"{self.description}: no {what} for {a}: {reason}.")

    def seeds(
        self,
        arch: Arch | str,
        dataset: Dataset | str,
        metric: Metric | str = Metric.VALID_ACC,
        *,
        epochs: int | None = None,
        schedule: Schedule = Schedule.EPOCHS_200,
    ) -> dict[int, float]:
        """Per-seed accuracies ``{seed: percent}`` (empty when unknown; cost metrics: empty)."""
        a, ds, me, sc = self._args(arch, dataset, metric, schedule)
        epoch = self._epoch(epochs, sc)
        row = self._row(a)
        if row is None or not me.is_accuracy or not self.supports(ds, me, schedule=sc):
            return {}
        return {
            int(s): float(v)
            for s, v in self._seeds(row, ds, me, sc, epoch).items()
            if math.isfinite(v)
        }

    def curve(
        self,
        arch: Arch | str,
        dataset: Dataset | str,
        metric: Metric | str = Metric.VALID_ACC,
        *,
        schedule: Schedule = Schedule.EPOCHS_200,
    ) -> NDArray[np.float64] | None:
        """Seed-mean value after each epoch 1..E of ``schedule`` (NaN where missing), or None."""
        a, ds, me, sc = self._args(arch, dataset, metric, schedule)
        row = self._row(a)
        if row is None or not self.supports(ds, me, schedule=sc):
            return None
        return self._curve(row, ds, me, sc)

    def _curve(
        self, row: int, dataset: Dataset, metric: Metric, schedule: Schedule
    ) -> NDArray[np.float64] | None:
        values = [
            self._value(row, dataset, metric, schedule, e if e < schedule.epochs else None, None)
            for e in range(1, schedule.epochs + 1)
        ]
        if all(v is None for v in values[:-1]):
            return None
        return np.array([math.nan if v is None else v for v in values])

    def index(self, arch: Arch | str) -> int | None:
        """The benchmark's own index of ``arch`` (None when the source does not carry it)."""
        row = self._row(Arch.parse(arch))
        return None if row is None else self._row_index(row)

    def arch_at(self, index: int) -> Arch:
        """The architecture at the benchmark's own ``index``."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ConfigError(f"index must be an integer, but got {index=}.")
        if self._row_index(0) is None:
            raise BenchmarkError(f"{self.description} does not carry the benchmark's index order")
        if not 0 <= index < self._n_rows():
            raise BenchmarkError(f"index out of range 0..{self._n_rows() - 1}, but got {index=}.")
        row = int(index)
        if self._row_index(row) != row:  # rows not in index order: look the index up
            found = (r for r in range(self._n_rows()) if self._row_index(r) == row)
            row = next(found, -1)
            if row < 0:
                raise BenchmarkError(f"{self.description} holds no architecture of index {index}")
        return self._row_arch(row)

    def archs(self) -> list[Arch]:
        """The architectures with results, in row order."""
        return [self._row_arch(r) for r in self._evaluated_rows().tolist()]

    def column(
        self,
        dataset: Dataset | str,
        metric: Metric | str = Metric.VALID_ACC,
        *,
        schedule: Schedule = Schedule.EPOCHS_200,
    ) -> tuple[list[Arch], NDArray[np.float64]]:
        """Every evaluated architecture and its (seed-mean, final) value; NaN where missing.

        Raises :class:`BenchmarkError` when the source has ``metric`` on
        ``dataset`` for no architecture at all (as :meth:`best` does), saying why.
        """
        ds, me, sc = Dataset.parse(dataset), Metric.parse(metric), Schedule.parse(schedule)
        rows = self._evaluated_rows()
        if not self.supports(ds, me, schedule=sc):
            raise BenchmarkError(
                f"{self.description}: no {me.value} on {ds.value} ({sc.name}). "
                f"{missing_reason(ds, me)}"
            )
        col = self._column(ds, me, sc)
        return [self._row_arch(r) for r in rows.tolist()], col[rows]

    def best(
        self,
        dataset: Dataset | str,
        metric: Metric | str = Metric.VALID_ACC,
        *,
        schedule: Schedule = Schedule.EPOCHS_200,
    ) -> tuple[Arch, float]:
        """The architecture with the highest seed-mean accuracy, and that accuracy.

        Over the architectures the source holds (all 15,625 for complete
        sources). Ties go to the first in row order.
        """
        ds, me, sc = Dataset.parse(dataset), Metric.parse(metric), Schedule.parse(schedule)
        if not me.is_accuracy:
            raise ConfigError(f"best() ranks accuracies only, but got {metric=}.")
        if not self.supports(ds, me, schedule=sc):
            raise BenchmarkError(
                f"{self.description}: no {me.value} on {ds.value} ({sc.name}). "
                f"{missing_reason(ds, me)}"
            )
        rows = self._evaluated_rows()
        col = self._column(ds, me, sc)[rows]
        if not np.isfinite(col).any():
            raise BenchmarkError(f"{self.description}: no {me.value} values on {ds.value}")
        i = int(np.nanargmax(col))
        return self._row_arch(int(rows[i])), float(col[i])

    def describe(
        self,
        arch: Arch | str,
        *,
        datasets: Iterable[Dataset | str] | None = None,
        schedules: Iterable[Schedule] = (Schedule.EPOCHS_200, Schedule.EPOCHS_12),
    ) -> dict[str, Any]:
        """Everything this source knows about one architecture, JSON-ready.

        ``{"arch", "code", "canonical", "index", "source", "results": [{"dataset",
        "schedule", "metric", "value", "seeds": {seed: value}}, ...]}``.
        """
        a = Arch.parse(arch)
        row = self._row(a)
        ds_list = [Dataset.parse(d) for d in (datasets if datasets is not None else Dataset)]
        results: list[dict[str, Any]] = []
        if row is not None:
            for sc in schedules:
                sc = Schedule.parse(sc)
                for ds in ds_list:
                    for me in Metric:
                        if not self.supports(ds, me, schedule=sc):
                            continue
                        value = self._value(row, ds, me, sc, None, None)
                        if value is None:
                            continue
                        seeds = (
                            {str(k): v for k, v in self._seeds(row, ds, me, sc, None).items()}
                            if me.is_accuracy
                            else {}
                        )
                        results.append(
                            {
                                "dataset": ds.value,
                                "schedule": sc.epochs,
                                "metric": me.value,
                                "value": value,
                                "seeds": seeds,
                            }
                        )
        return {
            "arch": str(a),
            "code": a.code,
            "canonical": a.canonical(),
            "index": None if row is None else self._row_index(row),
            "source": self.description,
            "results": results,
        }


def parse_arch_or_index(value: str, truth: GroundTruth) -> Arch:
    """An arch string, an ``nb201:``/``naslib:`` op code, or ``#N`` for the benchmark index N."""
    text = value.strip()
    if text.startswith("#"):
        try:
            idx = int(text[1:])
        except ValueError:
            raise ArchError(
                f"'#' must be followed by a benchmark index, but got {value=}."
            ) from None
        return truth.arch_at(idx)
    try:
        return Arch.parse(text)
    except ArchError as exc:
        if text.isdigit():  # not six digits: perhaps a benchmark index
            raise ArchError(f"{exc}; a benchmark index is written '#{text}'") from None
        raise
