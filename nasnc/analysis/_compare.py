"""Compare cached proxy scores with benchmark ground truth (the library behind ``nasnc compare``).

Entries (``nasnc.store.Entry`` or anything with the same attributes) are
grouped by their proxy configuration (one group per config hash = one proxy
budget). Within a group, the entries of one architecture (several seeds) are
averaged per score. Every score is then correlated, signed, with the
benchmark's value of the same architecture.

Score columns, per architecture:

- ``beta_eff`` (summary: the BRR estimate of converged βeff) and
  ``beta_eff_last`` (summary: the last measured value);
- ``beta_eff_chain``, ``beta_eff_product``, ``beta_eff_chain_sf``,
  ``beta_eff_product_sf`` (the probe's βeff) and ``beta_eff_dw_product_sf``
  (the whole network's βeff of the weight change ``W - W0``, recorded but
  never the objective): the last finite value of these trajectory columns,
  when the trajectory has them (entries cached before a column existed
  simply lack it: the score is absent or counts fewer architectures);
- ``proxy_valid_acc`` (summary);
- every key of ``scores`` (baseline proxies, higher = better by convention);
- ``aggregate`` (:data:`nasnc.proxies.AGGREGATES`) when the scores it combines
  are present: the rank aggregate over the cells of the group (the pool).

With ``pareto`` (cost names of :data:`~nasnc.analysis.PARETO_COSTS`), the
same per-architecture columns also give, per cost, the cells non-dominated in
(score max, cost min) (:func:`~nasnc.analysis.pareto_table`).

No sign is assumed: a negative tau is reported as negative.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from nasnc._catalogue import PROXY_DATASETS, dataset_info
from nasnc._errors import ArchError, ConfigError
from nasnc.analysis._pareto import PARETO_COSTS, pareto_table
from nasnc.bench import Dataset, GroundTruth, Metric, Schedule
from nasnc.metrics import correlation_summary, kendall_tau
from nasnc.space import Arch

__all__ = [
    "BETA_VARIANTS",
    "EntryLike",
    "calibrate",
    "compare_scores",
    "entry_scores",
    "truth_dataset_for",
]

logger = logging.getLogger(__name__)

#: Trajectory columns whose last value is compared: the CapacitanceObserver variants
#: and those of the WeightChangeObserver and ProbeWeightChangeObserver (spelled out
#: here so that ``nasnc.analysis`` does not import torch, checked equal by the tests).
BETA_VARIANTS: tuple[str, ...] = (
    "beta_eff_chain",
    "beta_eff_product",
    "beta_eff_chain_sf",
    "beta_eff_product_sf",
    "beta_eff_dw_product_sf",
    "beta_eff_probe_dw_chain_sf",
    "beta_eff_probe_dw_product_sf",
)
_SUMMARY_SCORES: tuple[str, ...] = ("beta_eff", "beta_eff_last")
_TRAJECTORY_CURVES: tuple[str, ...] = ("beta_eff", *BETA_VARIANTS, "valid_acc")
_CALIBRATION_FEATURES: tuple[str, ...] = ("beta_eff", "beta_eff_last")


class EntryLike(Protocol):
    """What :func:`compare_scores` reads from a cache entry (``nasnc.store.Entry`` fits)."""

    @property
    def arch(self) -> str: ...
    @property
    def dataset(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def config(self) -> Mapping[str, Any]: ...
    @property
    def trajectory(self) -> Mapping[str, Any]: ...
    @property
    def summary(self) -> Mapping[str, Any]: ...
    @property
    def scores(self) -> Mapping[str, Any]: ...


def truth_dataset_for(cache_dataset: str) -> Dataset:
    """The benchmark dataset a proxy trained on ``cache_dataset`` is compared with by default.

    A CIFAR-10 proxy is compared with ``cifar10-valid`` (the benchmark's
    validation accuracy after training on the train split); ``cifar100`` and
    ``ImageNet16-120`` map to themselves.
    """
    try:
        info = dataset_info(cache_dataset)
    except ConfigError:
        raise ConfigError(
            f"no default benchmark dataset for cache dataset; known: {', '.join(PROXY_DATASETS)} "
            f"(and their aliases); pass the benchmark dataset explicitly, but got {cache_dataset=}."
        ) from None
    return Dataset.parse(info.benchmark)


def _as_float(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _last_finite(column: Any) -> float:
    arr = np.asarray(column, dtype=np.float64).ravel()
    finite = arr[np.isfinite(arr)]
    return float(finite[-1]) if finite.size else math.nan


def entry_scores(entry: EntryLike) -> dict[str, float]:
    """The score columns of one entry (NaN where absent); see the module docstring."""
    out: dict[str, float] = {}
    summary = entry.summary or {}
    trajectory = entry.trajectory or {}
    for name in _SUMMARY_SCORES:
        if name in summary:
            out[name] = _as_float(summary[name])
    for name in BETA_VARIANTS:
        if name in trajectory:
            out[name] = _last_finite(trajectory[name])
    if "proxy_valid_acc" in summary:
        out["proxy_valid_acc"] = _as_float(summary["proxy_valid_acc"])
    for name, value in sorted((entry.scores or {}).items()):
        key = name if name not in out else f"scores.{name}"
        out[key] = _as_float(value)
    return out


def _config_hash(entry: EntryLike) -> str:
    value = getattr(entry, "config_hash", None)
    if isinstance(value, str):
        return value
    text = json.dumps(entry.config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _budget(config: Mapping[str, Any]) -> float | None:
    for key in ("epochs", "budget_epochs", "budget"):
        value = config.get(key) if isinstance(config, Mapping) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, Mapping) and isinstance(value.get("epochs"), (int, float)):
            return float(value["epochs"])
    return None


class _Group:
    """Entries of one proxy configuration, averaged per architecture."""

    def __init__(self, config_hash: str, config: Mapping[str, Any]) -> None:
        self.config_hash = config_hash
        self.config = config
        self.epochs = _budget(config)
        self.entries: dict[str, list[EntryLike]] = defaultdict(list)
        self.created = -math.inf

    def add(self, arch: str, entry: EntryLike) -> None:
        self.entries[arch].append(entry)
        self.created = max(self.created, _as_float(getattr(entry, "created", -math.inf)))

    @property
    def label(self) -> str:
        ep = f"{self.epochs:g} ep" if self.epochs is not None else "budget ?"
        return f"{ep} ({self.config_hash[:8]})"

    def table(self) -> tuple[list[str], dict[str, np.ndarray]]:
        archs = sorted(self.entries)
        per_arch = [[entry_scores(e) for e in self.entries[a]] for a in archs]
        names: list[str] = []
        for rows in per_arch:
            for row in rows:
                for name in row:
                    if name not in names:
                        names.append(name)
        columns: dict[str, np.ndarray] = {}
        for name in names:
            col = np.full(len(archs), np.nan)
            for i, rows in enumerate(per_arch):
                vals = np.array([r.get(name, math.nan) for r in rows], dtype=np.float64)
                vals = vals[np.isfinite(vals)]
                if vals.size:
                    col[i] = vals.mean()
            columns[name] = col
        # rank aggregates (nasnc.proxies.AGGREGATES) over this group's cells as the pool
        from nasnc.proxies import AGGREGATES, rank_aggregate

        for name, parts in AGGREGATES.items():
            if name not in columns and archs and all(p in columns for p in parts):
                columns[name] = rank_aggregate(columns, names=parts)
        return archs, columns


def _truth_values(
    archs: Sequence[str], truth: GroundTruth, dataset: Dataset, metric: Metric
) -> np.ndarray:
    out = np.full(len(archs), np.nan)
    for i, arch in enumerate(archs):
        value = truth.get(arch, dataset, metric)
        if value is not None:
            out[i] = value
    return out


def _by_epoch(group: _Group, archs: Sequence[str], y: np.ndarray) -> dict[str, Any] | None:
    """Kendall tau of trajectory columns at each report epoch shared by every entry.

    A column enters when any entry has it; entries without it (cached before
    it existed) count as missing, and ``n`` gives the architectures each tau
    is computed on.
    """
    common: set[float] | None = None
    for arch in archs:
        for entry in group.entries[arch]:
            ep = entry.trajectory.get("epoch") if entry.trajectory else None
            if ep is None:
                return None
            values = {round(float(v), 3) for v in np.asarray(ep, dtype=np.float64).ravel()}
            common = values if common is None else common & values
    if not common or len(common) < 2:
        return None
    epochs = sorted(common)
    cols = [
        c
        for c in _TRAJECTORY_CURVES
        if any(c in e.trajectory for a in archs for e in group.entries[a])
    ]
    if not cols:
        return None
    taus: dict[str, list[float]] = {c: [] for c in cols}
    counts: dict[str, list[int]] = {c: [] for c in cols}
    for ep in epochs:
        for col in cols:
            x = np.full(len(archs), np.nan)
            for i, arch in enumerate(archs):
                vals = []
                for e in group.entries[arch]:
                    if col not in e.trajectory:
                        continue
                    eps = np.round(np.asarray(e.trajectory["epoch"], dtype=np.float64), 3)
                    hit = np.flatnonzero(eps == ep)
                    if hit.size:
                        vals.append(float(np.asarray(e.trajectory[col], dtype=np.float64)[hit[-1]]))
                finite = [v for v in vals if math.isfinite(v)]
                if finite:
                    x[i] = float(np.mean(finite))
            taus[col].append(kendall_tau(x, y))
            counts[col].append(int((np.isfinite(x) & np.isfinite(y)).sum()))
    return {"epoch": epochs, "kendall_tau": taus, "n": counts}


def calibrate(
    features: np.ndarray,
    target: np.ndarray,
    n_train: int,
    *,
    seed: int = 0,
    feature_names: Sequence[str] = (),
) -> dict[str, Any]:
    """Fit :class:`nasnc.capacitance.CapacitanceCalibrator` on ``n_train`` rows, score the rest.

    Rows with a non-finite feature or target are left out first. The split is
    a seeded random permutation. Reports MAE and RMSE of the predicted
    accuracy on the held-out rows, the mean predicted std, the fraction of
    held-out truths inside the 95 % predictive interval, and, for scale, the
    MAE/RMSE of predicting the training mean.
    """
    from nasnc.capacitance import CapacitanceCalibrator

    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or n_train < 2:
        raise ConfigError(
            f"calibration needs at least 2 training architectures, but got {n_train=}."
        )
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(target, dtype=np.float64)
    keep = np.isfinite(x).all(axis=1) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if n_train >= y.size:
        raise ConfigError(
            f"calibration needs held-out architectures: only {y.size} have finite features "
            f"and ground truth, but got {n_train=}."
        )
    order = np.random.default_rng(seed).permutation(y.size)
    tr, te = order[:n_train], order[n_train:]
    model = CapacitanceCalibrator().fit(x[tr], y[tr])
    mean, std = model.predict(x[te], return_std=True)
    err = mean - y[te]
    base = y[tr].mean() - y[te]
    return {
        "features": list(feature_names),
        "n_train": int(tr.size),
        "n_test": int(te.size),
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "mean_std": float(np.mean(std)),
        "coverage_95": float(np.mean(np.abs(err) <= 1.96 * std)),
        "baseline_mae": float(np.abs(base).mean()),
        "baseline_rmse": float(np.sqrt((base**2).mean())),
        "seed": int(seed),
    }


def compare_scores(
    entries: Iterable[EntryLike],
    truth: GroundTruth,
    dataset: Dataset | str | None = None,
    metric: Metric | str = Metric.VALID_ACC,
    *,
    config_hash: str | None = None,
    k: int = 10,
    n_boot: int = 1000,
    seed: int = 0,
    calibrate_n: int | None = None,
    regret: bool = True,
    return_rows: bool = False,
    pareto: Sequence[str] = (),
    pareto_score: str | None = None,
) -> dict[str, Any]:
    """Signed agreement of every cached score with the benchmark's ground truth.

    Parameters
    ----------
    entries
        Cache entries of one proxy dataset (``Store(path).entries(dataset=...)``).
    truth
        A ground-truth source (:func:`nasnc.bench.open_benchmark`).
    dataset
        Benchmark dataset; None maps the entries' dataset with
        :func:`truth_dataset_for` (``cifar10`` -> ``cifar10-valid``).
    metric
        ``valid`` (default) or ``test`` accuracy, 200-epoch schedule, seed mean.
    config_hash
        Which proxy configuration the main ``scores`` describe; None picks
        the one with the most architectures (the newest on ties). Every
        configuration appears in ``budgets``.
    k
        For ``top{k}_precision``.
    n_boot, seed
        Bootstrap resamples and seed of the 95 % intervals.
    calibrate_n
        When given, fit the capacitance calibrator on this many architectures
        (features ``beta_eff``, ``beta_eff_last``) and report its error on
        the others under ``calibration``.
    regret
        Compute the search's regret (needs a scan of the whole benchmark;
        skipped for sources where that is slow).
    return_rows
        Add ``rows``: per architecture, its ground truth and scores (for plots).
    pareto
        Costs (``params``, ``flops``, ``latency``: cached scores, minimised)
        to set against ``pareto_score`` (maximised) over the main
        configuration's architectures; adds ``pareto_front``, a dict from
        each cost to :func:`~nasnc.analysis.pareto_table`'s result.
    pareto_score
        The front's score; None: ``aggregate`` when the entries give it,
        else ``beta_eff``.

    Returns
    -------
    dict
        ``{"dataset", "metric", "n", "missing", "n_missing", "scores": {NAME:
        {"kendall_tau", "kendall_ci", "spearman", "spearman_ci", "pearson",
        "pearson_ci", "top10_precision", "n", "n_dropped", "top1_regret"}}, ...}``
        plus ``cache_dataset``, ``benchmark``, ``config_hash``, ``budget``,
        ``n_entries``, ``regret``, ``budgets``, ``by_epoch`` and
        ``calibration``. ``n`` counts architectures with ground truth;
        ``missing`` lists those without (never an error). ``top1_regret`` is
        the best ground truth among the compared architectures minus that of
        the one the score ranks first; ``regret`` compares the best cached
        architecture (over every configuration) with the best one the source
        holds (all 15,625 cells for complete sources).
    """
    pareto = list(dict.fromkeys(pareto))
    bad_costs = [c for c in pareto if c not in PARETO_COSTS]
    if bad_costs:
        raise ConfigError(
            f"a Pareto front's cost must be one of {', '.join(PARETO_COSTS)}, "
            f"but got pareto={pareto!r}."
        )
    me = Metric.parse(metric)
    if not me.is_accuracy:
        raise ConfigError(f"compare ranks accuracies (valid or test), but got {metric=}.")
    entries = list(entries)  # read more than once (a generator was read once)
    if config_hash is not None and not isinstance(config_hash, str):
        raise ConfigError(f"config_hash must be a hash prefix (str), but got {config_hash=}.")
    cache_datasets = sorted({str(e.dataset) for e in entries})
    kinds = set()
    for name in cache_datasets:  # one benchmark dataset, or a dataset of its own
        try:
            kinds.add(str(truth_dataset_for(name).value))
        except ConfigError:  # not in the catalogue: compared with a dataset given
            kinds.add(name)
    if len(kinds) > 1:  # with a dataset given too: the main group could be another's
        raise ConfigError(
            f"entries of several datasets ({', '.join(cache_datasets)}); "
            "filter them by dataset first"
        )
    if dataset is None:
        if not cache_datasets:
            raise ConfigError("no entries and no dataset: pass the benchmark dataset")
        ds = truth_dataset_for(cache_datasets[0])
    else:
        ds = Dataset.parse(dataset)
    if not truth.supports(ds, me):
        from nasnc.bench import missing_reason

        reason = missing_reason(ds, me) or f"{truth.description} has no {me.value} on {ds.value}"
        raise ConfigError(f"cannot compare with {me.value} accuracy on {ds.value}: {reason}.")

    groups: dict[str, _Group] = {}
    bad: list[str] = []
    for entry in entries:
        try:
            arch = str(Arch.parse(entry.arch))
        except ArchError:
            bad.append(str(entry.arch))
            continue
        h = _config_hash(entry)
        if h not in groups:
            groups[h] = _Group(h, entry.config)
        groups[h].add(arch, entry)

    result: dict[str, Any] = {
        "dataset": ds.value,
        "metric": me.value,
        "cache_dataset": cache_datasets[0] if len(cache_datasets) == 1 else cache_datasets,
        "benchmark": truth.description,
        "n_entries": len(entries),
    }
    if config_hash is not None:
        chosen = [h for h in groups if h.startswith(config_hash)]
        if len(chosen) != 1:
            raise ConfigError(
                f"config hash prefix must match exactly one of {sorted(groups)}, "
                f"but got {config_hash=}."
            )
        main_hash = chosen[0]
    elif groups:
        main_hash = max(groups, key=lambda h: (len(groups[h].entries), groups[h].created))
    else:
        main_hash = None

    budgets: list[dict[str, Any]] = []
    truth_cache: dict[str, float] = {}

    def truth_of(archs: Sequence[str]) -> np.ndarray:
        todo = [a for a in archs if a not in truth_cache]
        for a, v in zip(todo, _truth_values(todo, truth, ds, me)):
            truth_cache[a] = float(v)
        return np.array([truth_cache[a] for a in archs], dtype=np.float64)

    for h, group in sorted(groups.items(), key=lambda t: (t[1].epochs or math.inf, t[0])):
        archs, columns = group.table()
        y = truth_of(archs)
        budgets.append(
            {
                "config_hash": h,
                "label": group.label,
                "epochs": group.epochs,
                "n": int(np.isfinite(y).sum()),
                "kendall_tau": {name: kendall_tau(col, y) for name, col in columns.items()},
            }
        )

    scores: dict[str, Any] = {}
    missing: list[str] = []
    n = 0
    archs, columns, y = [], {}, np.empty(0)
    if main_hash is not None:
        group = groups[main_hash]
        archs, columns = group.table()
        y = truth_of(archs)
        missing = [a for a, v in zip(archs, y) if not math.isfinite(v)]
        n = int(np.isfinite(y).sum())
        result["config_hash"] = main_hash
        result["budget"] = group.label
        best_true = float(np.nanmax(y)) if n else math.nan
        for name, col in columns.items():
            summ = correlation_summary(col, y, k=k, n_boot=n_boot, seed=seed)
            ok = np.isfinite(col) & np.isfinite(y)
            summ["top1_regret"] = (
                best_true - float(y[ok][np.argmax(col[ok])]) if ok.any() else math.nan
            )
            scores[name] = summ
        result["by_epoch"] = _by_epoch(group, archs, y) if n >= 2 else None
        if return_rows:
            result["rows"] = [
                {"arch": a, "truth": float(y[i]), **{c: float(v[i]) for c, v in columns.items()}}
                for i, a in enumerate(archs)
            ]
        if calibrate_n is not None:
            feats = [f for f in _CALIBRATION_FEATURES if f in columns]
            if not feats:
                raise ConfigError("calibration needs beta_eff features, but the entries have none")
            x = np.column_stack([columns[f] for f in feats])
            result["calibration"] = calibrate(x, y, calibrate_n, seed=seed, feature_names=feats)
    result.setdefault("calibration", None)  # the key is always there: null without calibrate_n
    result["n"] = n
    result["missing"] = missing + bad
    result["n_missing"] = len(missing) + len(bad)
    result["scores"] = scores
    result["budgets"] = budgets

    result["regret"] = None
    space: tuple[Any, float] | None = None
    if ((regret and n) or pareto) and truth.fast_scan:
        space = truth.best(ds, me, schedule=Schedule.EPOCHS_200)
    if regret and n and space is not None:
        best_arch, best_value = space
        found = [(v, a) for a, v in truth_cache.items() if math.isfinite(v)]
        found_value, found_arch = max(found)
        result["regret"] = {
            "space_best": best_value,
            "space_best_arch": str(best_arch),
            "best_found": found_value,
            "best_found_arch": found_arch,
            "regret": best_value - found_value,
        }
    elif regret and n:
        logger.warning(
            "%s is slow to scan; import it with `nasnc bench import` to get the regret",
            truth.description,
        )
    if pareto:
        score = pareto_score or ("aggregate" if "aggregate" in columns else "beta_eff")
        result["pareto_front"] = {
            cost: pareto_table(
                archs,
                columns,
                y,
                score=score,
                cost=cost,
                space_best=None if space is None else float(space[1]),
                space_best_arch=None if space is None else str(space[0]),
            )
            for cost in pareto
        }
    first = ("dataset", "metric", "n", "missing", "n_missing", "scores")
    return {**{key: result[key] for key in first}, **result}
