"""What a study found: counts, the ranked cells, the pick and its regret."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasnc import NasncError

from ._config import SearchConfig
from ._objective import finite_or_none, trial_cell
from ._screen import SCREEN_ATTR
from ._stages import better_sign, pareto_front, pick, trained_cells, truth_dataset
from ._storage import shown_url

__all__ = ["FINISHED_STATES", "SearchSummary", "summarize"]

logger = logging.getLogger(__name__)

#: Trial states that end a trial (see :func:`~nasnc_search._storage.counts_toward_n_trials`).
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class SearchSummary:
    """What a study found; ``to_dict()`` is the ``--format json`` output.

    ``screened`` counts the cells scored in stage 1, ``trained`` the
    distinct cells trained (completed or pruned) in stage 2. ``best_found``
    is the study's answer, the cell chosen by ``pick`` (its ``arch``,
    ``trial``, combined ``score``, what it was picked ``by`` and, when known,
    its benchmark accuracy ``true_acc``). With a benchmark configured,
    ``regret`` is the space's best accuracy minus that of ``best_found``;
    ``top1_regret`` the same for the top cell by the first objective (βeff
    by default; a cost's top cell is its smallest);
    ``best_trained`` the best true accuracy among all completed cells and
    ``best_trained_regret`` its regret (what stage 2 trained, whether or not
    the pick chose it); all in accuracy points, like ``true_acc``. A
    multi-objective study lists its non-dominated trials in ``pareto_front``.
    """

    study_name: str
    storage: str
    completed: int
    pruned: int
    failed: int
    running: int
    cache_hits: int
    top: list[dict[str, Any]]
    regret: float | None = None
    top1_regret: float | None = None
    best_found: dict[str, Any] | None = None
    best_in_space: float | None = None
    benchmark: str | None = None
    benchmark_error: str | None = None
    screened: int = 0
    trained: int = 0
    best_trained: float | None = None
    best_trained_regret: float | None = None
    objectives: list[str] | None = None
    pareto_front: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study_name,
            "storage": self.storage,
            "completed": self.completed,
            "pruned": self.pruned,
            "failed": self.failed,
            "running": self.running,
            "cache_hits": self.cache_hits,
            "top": self.top,
            "regret": self.regret,
            "top1_regret": self.top1_regret,
            "best_found": self.best_found,
            "best_in_space": self.best_in_space,
            "benchmark": self.benchmark,
            "benchmark_error": self.benchmark_error,
            "screened": self.screened,
            "trained": self.trained,
            "best_trained": self.best_trained,
            "best_trained_regret": self.best_trained_regret,
            "objectives": self.objectives,
            "pareto_front": self.pareto_front,
        }


def summarize(
    study: optuna.Study, config: SearchConfig, *, top_k: int = 10, truth: Any = None
) -> SearchSummary:
    """Counts by state, cache hits and the top architectures (one per cell, :func:`trial_cell`).

    ``truth`` is an open :class:`nasnc.bench.GroundTruth`; by default the
    config's ``benchmark`` is opened. A ground truth that cannot be opened is
    reported in ``benchmark_error`` (logged), never fatal: the counts and the
    table are what a finished study must always show.
    """
    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    hits = sum(bool(t.user_attrs.get("cache_hit")) for t in trials if t.state in FINISHED_STATES)
    sign = better_sign(config.objectives[0])  # the best first: a cost's smallest
    done = sorted(
        (
            t
            for t in trials
            if t.state == TrialState.COMPLETE and finite_or_none(_first(t)) is not None
        ),
        key=lambda t: sign * float(_first(t)),  # type: ignore[arg-type]
        reverse=True,
    )
    seen: set[str] = set()
    ranked: list[dict[str, Any]] = []
    for t in done:
        cell = str(trial_cell(t))
        if cell in seen:
            continue
        seen.add(cell)
        ranked.append(
            {
                "trial": t.number,
                "arch": t.user_attrs.get("arch"),
                "beta_eff": finite_or_none(t.user_attrs.get("beta_eff", _first(t))),
                "beta_eff_std": finite_or_none(t.user_attrs.get("beta_eff_std")),
                "proxy_valid_acc": finite_or_none(t.user_attrs.get("proxy_valid_acc")),
                "aggregate": finite_or_none(t.user_attrs.get("aggregate")),
                "cost_s": finite_or_none(t.user_attrs.get("cost_s")),
                "cache_hit": bool(t.user_attrs.get("cache_hit")),
            }
        )
    chosen, pick_by, pick_score = pick(trials, config.pick, fallback=config.objectives[0])
    best_found = None
    if chosen is not None:
        best_found = {
            "trial": chosen.number,
            "arch": chosen.user_attrs.get("arch"),
            "score": finite_or_none(pick_score),
            "by": pick_by,
            "state": chosen.state.name,
            "true_acc": None,
        }
    extra: dict[str, Any] = {}
    front = pareto_front(study, config.objectives) or None
    if (truth is not None or config.benchmark) and (ranked or best_found):
        try:
            extra = _add_ground_truth(ranked, config, truth, best_found, front)
        except NasncError as exc:
            logger.warning("no ground truth in the summary: %s", exc)
            extra = {"benchmark_error": str(exc)}
    return SearchSummary(
        study_name=study.study_name,
        storage=shown_url(config.storage_url),
        completed=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        running=count[TrialState.RUNNING],
        cache_hits=hits,
        top=ranked[:top_k],
        benchmark=config.benchmark,
        best_found=best_found,
        screened=int(study.user_attrs.get(SCREEN_ATTR, {}).get("size", 0)),
        trained=trained_cells(study),
        objectives=list(config.objectives),
        pareto_front=front,
        **extra,
    )


def _first(trial: FrozenTrial) -> float | None:
    """The first objective value (``trial.value`` raises for multi-objective trials)."""
    return trial.values[0] if trial.values else None


def _add_ground_truth(
    ranked: list[dict[str, Any]],
    config: SearchConfig,
    truth: Any,
    best_found: dict[str, Any] | None = None,
    front: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Fill ``true_acc`` (validation accuracy, %) of every ranked row, of the
    Pareto ``front``'s rows and of ``best_found``; return the regrets."""
    from nasnc.bench import open_benchmark
    from nasnc.metrics import regret

    if truth is None:
        assert config.benchmark is not None
        truth = open_benchmark(config.benchmark)
    dataset = truth_dataset(config)
    for row in ranked:
        row["true_acc"] = truth.get(row["arch"], dataset, "valid")
    for row in front or ():
        row["true_acc"] = truth.get(row["arch"], dataset, "valid") if row["arch"] else None
    _arch, best = truth.best(dataset, "valid")
    found = [float(r["true_acc"]) for r in ranked if r["true_acc"] is not None]
    first = ranked[0]["true_acc"] if ranked else None
    picked = None
    if best_found is not None and best_found["arch"]:
        picked = truth.get(best_found["arch"], dataset, "valid")
        best_found["true_acc"] = None if picked is None else float(picked)
    return {
        "best_in_space": float(best),
        "best_trained": max(found) if found else None,
        "best_trained_regret": float(regret(found, float(best))) if found else None,
        "regret": None if picked is None else float(best) - float(picked),
        "top1_regret": None if first is None else float(best) - float(first),
    }
