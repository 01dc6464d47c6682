"""Stage 2 of ``nasnc search`` around the objective, and what the summary reports.

:class:`TrialStage` is what the :class:`~nasnc_search.Objective` consults beside
training: the objective(s) a trial returns (one name, or several for a
multi-objective study), the value it reports at each report point (βeff,
or the proxy accuracy when that is the objective; multi-objective studies
report nothing: Optuna cannot prune them), the cell's ``aggregate`` within
the screened pool, and its benchmark accuracy (``true_acc``) when ground
truth is configured (visible in optuna-dashboard and ``optuna trials``).

:func:`pick` chooses the study's answer: the rank aggregate of
``pick.weights`` over the candidates (see :class:`~nasnc_search.PickConfig`);
:func:`pareto_front` lists a multi-objective study's non-dominated trials.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nasnc._catalogue import dataset_info
from nasnc.data import ProxyData
from nasnc.pipeline import ReportPoint
from nasnc.proxies import PROXIES, expand_proxies, rank_aggregate
from nasnc.space import Arch
from nasnc.store import Entry

from ._config import COST_OBJECTIVES, READING_SCORES, PickConfig, SearchConfig
from ._objective import finite_or_none, last_reading, pruner_value, trial_cell
from ._screen import ScreenPool, enqueue_shortlist, run_screen

__all__ = [
    "TRUE_ACC_ATTR",
    "TrialStage",
    "better_sign",
    "directions",
    "load_study_data",
    "make_stage",
    "pareto_front",
    "pick",
    "screen_study",
    "trained_cells",
    "truth_dataset",
]

logger = logging.getLogger(__name__)

#: User attribute with the benchmark's accuracy of the trial's cell (%), when known.
TRUE_ACC_ATTR = "true_acc"


def directions(objectives: Sequence[str]) -> list[StudyDirection]:
    """Optuna directions: costs (params, FLOPs) are minimised, scores maximised."""
    return [
        StudyDirection.MINIMIZE if o in COST_OBJECTIVES else StudyDirection.MAXIMIZE
        for o in objectives
    ]


def better_sign(objective: str) -> float:
    """+1 when larger values of ``objective`` are better (scores), -1 for costs."""
    return -1.0 if objective in COST_OBJECTIVES else 1.0


def truth_dataset(config: SearchConfig) -> str:
    """The benchmark dataset the study's cells are judged on."""
    return config.benchmark_dataset or dataset_info(config.proxy.dataset).benchmark


class TrialStage:
    """Per-trial extras of a study: objectives, reports, pool aggregate, ground truth.

    Parameters
    ----------
    objectives : sequence of str
        Names of :data:`nasnc_search._config.TRIAL_SCORES` or proxies.
    pool : ScreenPool, optional
        The screened pool; gives every trial its ``aggregate``.
    score : callable, optional
        ``score(arch) -> {name: value}``: free scores of a cell outside the
        pool (cached score-only entries).
    truth, truth_dataset : optional
        A :class:`nasnc.bench.GroundTruth` and the dataset to read.
    """

    def __init__(
        self,
        objectives: Sequence[str] = ("beta_eff",),
        *,
        pool: ScreenPool | None = None,
        score: Callable[[Arch], Mapping[str, float]] | None = None,
        truth: Any = None,
        truth_dataset: str | None = None,
    ) -> None:
        self.objectives = tuple(objectives)
        self.pool = pool
        self.score = score
        self.truth = truth
        self.truth_dataset = truth_dataset

    @property
    def reports(self) -> bool:
        """Whether trials report intermediate values (single objective trained online)."""
        online = ("beta_eff", "proxy_valid_acc", *READING_SCORES)
        return len(self.objectives) == 1 and self.objectives[0] in online

    def proxies(self, configured: Sequence[str]) -> tuple[str, ...]:
        """Per-network proxies to compute: the configured ones (aggregates expanded)
        plus those named as objectives."""
        names = [*configured, *(o for o in self.objectives if o in PROXIES)]
        return expand_proxies(names)[0]

    def report_value(self, point: ReportPoint) -> float | None:
        """What a trial reports to the pruner at ``point`` (:func:`pruner_value`)."""
        return pruner_value(point, self.objectives[0])

    def before(self, trial: optuna.Trial, arch: Arch) -> None:
        """Record the cell's aggregate and benchmark accuracy before training."""
        pool = self.pool
        if (
            pool is not None
            and trial.user_attrs.get("aggregate") is None
            and (self.score is not None or pool.index_of(arch) is not None)
        ):
            value = pool.aggregate_of(arch, self.score or (lambda a: {}))
            trial.set_user_attr("aggregate", finite_or_none(value))
        if self.truth is not None and self.truth_dataset is not None:
            acc = self.truth.get(str(arch), self.truth_dataset, "valid")
            trial.set_user_attr(TRUE_ACC_ATTR, None if acc is None else float(acc))

    def values(self, trial: optuna.Trial, entry: Entry, beta_eff: float) -> float | list[float]:
        """The trial's objective value(s)."""
        out = []
        for name in self.objectives:
            if name == "beta_eff":
                value = beta_eff
            elif name in ("beta_eff_std", "proxy_valid_acc"):
                value = float(entry.summary.get(name, math.nan))
            elif name in READING_SCORES:
                value = last_reading(entry, name)
            elif name == "aggregate":
                got = trial.user_attrs.get("aggregate")
                value = math.nan if got is None else float(got)
            else:
                value = float(entry.scores.get(name, math.nan))
            out.append(value)
        return out[0] if len(out) == 1 else out


def trained_cells(study: optuna.Study) -> int:
    """Distinct cells the study's trials evaluated, completed or pruned (a cell
    replayed from a cache filled by an earlier study counts: see ``cache_hits``)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return len({trial_cell(t) for t in trials} - {None})


#: Scores known before training: a pruned trial has them in full.
_BEFORE_TRAINING = frozenset({"aggregate", *PROXIES})


def _trial_score(trial: FrozenTrial, name: str, first: str) -> float:
    if name == first and name not in trial.user_attrs and trial.values:
        # a trial recorded without the attribute (made by hand, or by an older
        # nasnc): its first value is the first objective, ``first``. A recorded
        # None is an undefined score.
        value: Any = trial.values[0]
    else:
        value = trial.user_attrs.get(name)
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _label(weights: Mapping[str, float]) -> str:
    return " + ".join(f"{w:g}*{k}" if w != 1 else k for k, w in weights.items())


def pick(
    trials: Sequence[FrozenTrial], config: PickConfig, *, fallback: str = "beta_eff"
) -> tuple[FrozenTrial | None, str, float]:
    """The chosen trial, what it was chosen by, and its combined score.

    Candidates: COMPLETE trials, and PRUNED ones when every weighted score is
    known before training (the aggregate, free proxies) and present: a pruned
    run's accuracy or βeff is partial and not comparable. The combined score
    is the rank aggregate of the weighted scores over the candidates (one per
    cell). A weighted score no candidate has (the aggregate of a study
    without a screen) is left out, and the label says so; when no candidate
    has any of them, the pick falls back to ``fallback``, the study's first
    objective (its smallest value when it is a cost), and says so; a trial
    without that score as an attribute is read at its first value.
    """
    weights = {k: float(v) for k, v in config.weights.items() if float(v) != 0.0}
    by = _label(weights)
    for attempt in (weights, {fallback: better_sign(fallback)}):
        seen: set[str] = set()
        rows: list[FrozenTrial] = []
        for t in trials:
            if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
                continue
            if t.state == TrialState.PRUNED and not (
                all(n in _BEFORE_TRAINING for n in attempt)
                and all(math.isfinite(_trial_score(t, n, fallback)) for n in attempt)
            ):
                continue  # a pruned run's trained signals are partial: not comparable
            cell = trial_cell(t)
            if cell is None or cell in seen:
                continue
            seen.add(cell)
            rows.append(t)
        columns = {n: np.array([_trial_score(t, n, fallback) for t in rows]) for n in attempt}
        present = {n: w for n, w in attempt.items() if np.isfinite(columns[n]).any()}
        if rows and present:
            combined = rank_aggregate(
                {n: columns[n] for n in present}, weights=present, nan=config.nan
            )
            if np.isfinite(combined).any():
                best = int(np.nanargmax(combined))
                missing = [n for n in attempt if n not in present]
                if attempt is not weights:
                    label = f"{fallback} (no trial has {by})"
                    logger.warning("pick: no candidate has %s; picked by %s", by, fallback)
                elif missing:
                    label = f"{_label(present)} (no trial has {', '.join(missing)})"
                    logger.warning("pick: no candidate has %s; picked by the rest", missing)
                else:
                    label = by
                return rows[best], label, float(combined[best])
    return None, by, math.nan


def pareto_front(study: optuna.Study, objectives: Sequence[str]) -> list[dict[str, Any]]:
    """The non-dominated completed trials of a multi-objective study
    (``study.best_trials``), one per cell (:func:`trial_cell`): a cell trained again,
    or replayed from the cache, has the same values and would be listed twice."""
    if len(study.directions) < 2:
        return []
    front = []
    seen: set[str | None] = set()
    for t in sorted(study.best_trials, key=lambda t: t.number):
        cell = trial_cell(t)
        if cell is None or cell not in seen:
            seen.add(cell)
            front.append(t)
    return [
        {
            "trial": t.number,
            "arch": t.user_attrs.get("arch"),
            "values": dict(zip(objectives, t.values or [], strict=False)),
            TRUE_ACC_ATTR: t.user_attrs.get(TRUE_ACC_ATTR),
        }
        for t in front
    ]


def _open_truth(config: SearchConfig) -> Any:
    if not config.benchmark:
        return None
    from nasnc import NasncError
    from nasnc.bench import open_benchmark

    try:
        return open_benchmark(config.benchmark)
    except NasncError as exc:  # the summary reports it; the search goes on
        logger.warning("no benchmark accuracy per trial: %s", exc)
        return None


def load_study_data(config: SearchConfig, device: str) -> ProxyData:
    """The proxy data a study's screen and trials use, on ``device``."""
    from nasnc.pipeline import load_proxy_data

    return load_proxy_data(
        config.proxy, config.data_root, device=device, seed=config.seed, download=config.download
    )


def screen_study(
    config: SearchConfig,
    study: optuna.Study,
    *,
    device: str | None = None,
    workers: int = 1,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScreenPool | None:
    """Stage 1 for ``study``: screen the pool (cached) and enqueue its shortlist.

    Does nothing when ``screen.size`` is 0. Score-only entries are written
    without fsync (they are cheap to recompute; a crash loses at most the
    cells in flight, as with any entry). ``workers`` processes with
    ``threads`` torch threads each score the pool on the CPU (the study's
    workers and threads: the screen runs before they start).
    """
    if not config.screen.size:
        return None
    from nasnc.store import Store
    from nasnc.train import resolve_device

    dev = str(resolve_device(device or config.device))
    data = load_study_data(config, dev)
    store = Store(config.cache, durable=False)
    pool = run_screen(
        config, data, store, device=dev, progress=progress, workers=workers, threads=threads
    )
    enqueue_shortlist(study, pool, config.screen.top_k)
    return pool


def make_stage(config: SearchConfig, data: Any, store: Any, device: str) -> TrialStage:
    """The :class:`TrialStage` of a worker: its pool (from the cache) and ground truth."""
    pool = score = None
    if config.screen.size:
        from nasnc.pipeline import screen_archs

        pool = run_screen(config, data, store, device=device)

        def score(arch: Arch) -> dict[str, float]:
            one = screen_archs(
                [arch],
                config.proxy,
                data,
                names=config.screen.scores,
                seed=config.seed,
                device=device,
                store=store,
            )
            return {n: float(col[0]) for n, col in one.scores.items()}

    return TrialStage(
        config.objectives,
        pool=pool,
        score=score,
        truth=_open_truth(config),
        truth_dataset=truth_dataset(config),
    )
