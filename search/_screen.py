"""Stage 1 of ``nasnc search``: screen a pool with free scores, enqueue the shortlist.

The pool is ``screen.size`` distinct canonical cells (no all-zero cells),
drawn with :func:`nasnc.space.sample_archs` under ``screen.seed`` (default:
the study seed), so a study and its rerun screen the same pool. Scores come
from :func:`nasnc.pipeline.screen_archs` (score-only cache entries: a second
study scores nothing again). Each cell's ``aggregate`` is its rank aggregate
*within this pool* (:func:`nasnc.proxies.rank_aggregate`); a cell the sampler
proposes later is ranked against the pool as if it were in it
(:func:`nasnc.proxies.aggregate_against`).

The ``screen.top_k`` best cells are enqueued (``study.enqueue_trial`` with
the objective's ``edge_<target>_<source>`` parameters and user attributes
``aggregate`` and ``screen_rank``), so they are the study's first trials;
the sampler proposes the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import TrialState

from nasnc.data import ProxyData
from nasnc.pipeline import ScreenResult, screen_archs
from nasnc.proxies import aggregate_against, rank_aggregate
from nasnc.space import EDGES, Arch, sample_archs
from nasnc.store import Store

from ._config import ScreenConfig, SearchConfig
from ._objective import finite_or_none, param_name, trial_arch, trial_cell
from ._storage import counts_toward_n_trials

__all__ = [
    "SCREEN_ATTR",
    "ScreenPool",
    "enqueue_shortlist",
    "pool_archs",
    "run_screen",
]

logger = logging.getLogger(__name__)

#: Study user attribute describing the screen (size, shortlist, cost).
SCREEN_ATTR = "screen"


def pool_archs(config: SearchConfig) -> list[Arch]:
    """The screened pool: ``screen.size`` distinct, non-zero cells under the screen seed."""
    seed = config.seed if config.screen.seed is None else config.screen.seed
    return sample_archs(config.screen.size, seed=seed, unique=True, exclude_zero=True)


@dataclass(frozen=True)
class ScreenPool:
    """A screened pool and its aggregate; ranks cells inside or outside it."""

    result: ScreenResult
    config: ScreenConfig
    aggregate: np.ndarray
    rows: Mapping[str, int]  # graph form -> row

    @classmethod
    def from_result(cls, result: ScreenResult, config: ScreenConfig) -> ScreenPool:
        agg = rank_aggregate(
            result.scores,
            names=config.scores,
            weights=config.weights or None,
            nan=config.nan,
        )
        rows = {Arch.parse(a).graph_form(): i for i, a in enumerate(result.archs)}
        return cls(result=result, config=config, aggregate=agg, rows=rows)

    def __len__(self) -> int:
        return len(self.result)

    def order(self) -> np.ndarray:
        """Row indices, best aggregate first (NaN last; ties keep the pool's order)."""
        key = np.where(np.isfinite(self.aggregate), -self.aggregate, np.inf)
        return np.argsort(key, kind="stable")

    def shortlist(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` best cells with their aggregate, one per network: a pool drawn
        by the benchmark's canonical form can hold both of two twins (nodes 1 and 2
        swapped, one cache entry), and the second would only replay the first."""
        out: list[tuple[str, float]] = []
        seen: set[str] = set()
        for i in self.order():
            if len(out) == k:
                break
            arch = self.result.archs[i]
            form = Arch.parse(arch).graph_form()
            if form not in seen:
                seen.add(form)
                out.append((arch, float(self.aggregate[i])))
        return out

    def index_of(self, arch: Arch | str) -> int | None:
        """Row of ``arch`` (or of a cell building the same network) in the pool, else None."""
        return self.rows.get(Arch.parse(arch).graph_form())

    def aggregate_of(self, arch: Arch | str, score: Callable[[Arch], Mapping[str, float]]) -> float:
        """The aggregate of ``arch``: its pool value, else ranked against the pool.

        ``score(arch)`` gives the free scores of a cell outside the pool.
        """
        i = self.index_of(arch)
        if i is not None:
            return float(self.aggregate[i])
        return aggregate_against(
            self.result.scores,
            score(Arch.parse(arch)),
            names=self.config.scores,
            weights=self.config.weights or None,
            nan=self.config.nan,
        )


def run_screen(
    config: SearchConfig,
    data: ProxyData,
    store: Store,
    *,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    threads: int | None = None,
) -> ScreenPool:
    """Score the configured pool (from the cache where possible) and rank it.

    ``workers`` processes with ``threads`` torch threads each score the cells
    (see :func:`nasnc.pipeline.screen_archs`); the pool's scores do not depend
    on them.
    """
    result = screen_archs(
        pool_archs(config),
        config.proxy,
        data,
        names=config.screen.scores,
        seed=config.seed,
        device=device,
        store=store,
        progress=progress,
        workers=workers,
        threads=threads,
    )
    return ScreenPool.from_result(result, config.screen)


def edge_params(arch: Arch | str) -> dict[str, str]:
    """The objective's parameters for ``arch`` (``edge_1_0`` ... ``edge_3_2``)."""
    a = Arch.parse(arch)
    return {param_name(t, s): a.op(t, s) for t, s in EDGES}


def _held_cells(study: optuna.Study) -> set[str]:
    """Graph forms of the cells the study has waiting, running, or with a verdict (not
    merely interrupted)."""
    held = set()
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (TrialState.WAITING, TrialState.RUNNING) or counts_toward_n_trials(trial):
            cell = trial_cell(trial)
            if cell is None and len(trial.params) == len(EDGES):
                cell = trial_arch(trial.params).graph_form()
            if cell is not None:
                held.add(cell)
    return held


def enqueue_shortlist(study: optuna.Study, pool: ScreenPool, k: int) -> int:
    """Enqueue the pool's ``k`` best cells, but those the study already holds.

    A cell is held while a trial of it waits or runs, or once one reached a
    verdict; a trial failed by an interruption or a stale heartbeat does not
    hold its cell, so a rerun enqueues it again (Optuna's ``skip_if_exists``
    would skip it for good). Returns the shortlist's length.

    Writes :data:`SCREEN_ATTR` on the study; its cost (``scored``,
    ``cached``, ``seconds``) is the first screen's: a resumed study takes its
    pool from the cache in a second, and ``nasnc report`` charges the
    recorded seconds, so a resume must not replace them.
    """
    rows = pool.shortlist(k)
    held = _held_cells(study)
    for rank, (arch, value) in enumerate(rows, start=1):
        parsed = Arch.parse(arch)
        if parsed.graph_form() in held:
            continue
        cell = str(parsed)
        study.enqueue_trial(
            edge_params(cell),
            user_attrs={
                "arch": cell,
                "aggregate": finite_or_none(value),
                "screen_rank": rank,
            },
        )
    scored = len(pool) - pool.result.cached
    cost = {
        "scored": scored,
        "cached": pool.result.cached,
        "seconds": round(pool.result.seconds, 3),
    }
    before = study.user_attrs.get(SCREEN_ATTR)
    if isinstance(before, Mapping) and all(name in before for name in cost):
        cost = {name: before[name] for name in cost}
    info = {
        "size": len(pool),
        "top_k": k,
        **cost,
        "twins": pool.result.twins,  # of the cached: the same on a resume
        "config_hash": pool.result.config_hash,
        "scores": list(pool.config.scores),
        "shortlist": [a for a, _ in rows],
    }
    if before != info:
        study.set_user_attr(SCREEN_ATTR, info)
    logger.info(
        "screen: %d cells (%d scored now, %d cached) in %.1f s; top %d enqueued",
        len(pool),
        scored,
        pool.result.cached,
        pool.result.seconds,
        len(rows),
    )
    return len(rows)
