"""Anytime regret: the best accuracy a search has found so far, beside random search.

A search is a sequence of trained cells, each with a cost (seconds) and a
benchmark accuracy. :func:`anytime_curve` turns it into the best accuracy
found so far after each cell, against the cumulative cost (a fixed start
cost, such as a free-score screen, comes first) and against the number of
cells. A NaN accuracy is a cell that counts toward the cost but is never
*found* (a pruned trial: the search discarded it).

:func:`random_search` is the baseline at the same budget: distinct cells
drawn at random from a ground-truth table, over several seeds. With
``groups`` (one label per row, e.g. the canonical form) a draw skips cells
of a group already drawn, exactly as :func:`nasnc.space.sample_archs` with
``unique=True`` draws cells (uniform over cells, no two of one canonical form).
:func:`anytime_regret` puts the two side by side: random search at the same
number of cells, and at the same seconds when each draw costs ``draw_cost``
(by default the search's median cost per cell). Regret is the space's best
accuracy minus the best found, in the accuracy's units (points).

Pure numpy; :func:`plot_anytime` imports matplotlib only when called.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from nasnc._config import check_int, is_real
from nasnc._errors import ConfigError

__all__ = [
    "AnytimeCurve",
    "AnytimeRegret",
    "RandomSearchCurves",
    "anytime_curve",
    "anytime_regret",
    "best_so_far",
    "plot_anytime",
    "random_search",
]

logger = logging.getLogger(__name__)


def best_so_far(values: ArrayLike) -> NDArray[np.float64]:
    """Running maximum of ``values``, ignoring non-finite ones (NaN until the first finite).

    >>> best_so_far([float("nan"), 3.0, 1.0, 4.0]).tolist()
    [nan, 3.0, 3.0, 4.0]
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return x.copy()
    run = np.maximum.accumulate(np.where(np.isfinite(x), x, -np.inf))
    return np.where(np.isneginf(run), np.nan, run)


@dataclass(frozen=True)
class AnytimeCurve:
    """Best accuracy found after each cell of a search.

    Attributes
    ----------
    cells : ndarray of int
        1, 2, ..., n (cells trained so far).
    cost : ndarray
        Cumulative seconds after each cell, the start cost included.
    accuracy : ndarray
        Each cell's accuracy (NaN: not counted as found).
    best : ndarray
        Best accuracy found so far (NaN before the first found cell).
    start_cost : float
        Seconds spent before the first cell (e.g. the screen).
    """

    cells: NDArray[np.int64]
    cost: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    best: NDArray[np.float64]
    start_cost: float = 0.0

    def __len__(self) -> int:
        return int(self.cells.size)


def _accuracy_table(name: str, values: ArrayLike) -> NDArray[np.float64]:
    """One accuracy per cell, 1-D, each finite or NaN (a missing cell); named otherwise."""
    table = np.asarray(values, dtype=np.float64)
    if table.ndim != 1:  # a 2-D table was flattened without a word
        raise ConfigError(f"{name} must be 1-D (one value per cell), but got shape {table.shape}.")
    if np.isinf(table).any():
        at = int(np.flatnonzero(np.isinf(table))[0])
        raise ConfigError(
            f"{name} must be finite or NaN (missing), but got {table[at]} at row {at}."
        )
    return table


def _check_seconds(name: str, value: Any, *, positive: bool = False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not math.isfinite(out) or out < 0 or (positive and out == 0):
        what = "positive" if positive else "non-negative"
        raise ConfigError(f"{name} must be a finite {what} number, but got {name}={value!r}.")
    return out


def anytime_curve(
    costs: ArrayLike, accuracies: ArrayLike, *, start_cost: float = 0.0
) -> AnytimeCurve:
    """The anytime curve of cells trained in order, with ``costs[i]`` seconds each.

    ``accuracies[i]`` NaN marks a cell that cost time but was not found
    (a pruned trial). Costs must be finite and non-negative.

    >>> c = anytime_curve([10, 20, 10], [80.0, 85.0, 82.0], start_cost=5)
    >>> c.cost.tolist(), c.best.tolist()
    ([15.0, 35.0, 45.0], [80.0, 85.0, 85.0])
    """
    cost = np.asarray(costs, dtype=np.float64)
    acc = np.asarray(accuracies, dtype=np.float64)
    if cost.ndim != 1 or acc.ndim != 1 or cost.shape != acc.shape:
        raise ConfigError(
            "costs and accuracies must be 1-D sequences of one length, but got "
            f"shapes {cost.shape} and {acc.shape}."
        )
    if not np.all(np.isfinite(cost) & (cost >= 0)):
        bad = cost[~(np.isfinite(cost) & (cost >= 0))][0]
        raise ConfigError(f"costs must be finite and non-negative, but got a cost of {bad!r}.")
    start = _check_seconds("start_cost", start_cost)
    return AnytimeCurve(
        cells=np.arange(1, cost.size + 1, dtype=np.int64),
        cost=start + np.cumsum(cost),
        accuracy=acc,
        best=best_so_far(acc),
        start_cost=start,
    )


@dataclass(frozen=True)
class RandomSearchCurves:
    """Best accuracy after each random draw, one row per seed.

    Attributes
    ----------
    best : ndarray, shape (n_seeds, n_draws)
        Best accuracy after 1, 2, ..., n_draws distinct draws.
    seed : int
        The seed the per-run streams were spawned from.
    """

    best: NDArray[np.float64]
    seed: int = 0

    @property
    def n_seeds(self) -> int:
        return int(self.best.shape[0])

    @property
    def n_draws(self) -> int:
        return int(self.best.shape[1])

    @property
    def mean(self) -> NDArray[np.float64]:
        """Mean over seeds of the best after each draw."""
        return self.best.mean(axis=0)

    @property
    def sd(self) -> NDArray[np.float64]:
        """Sample standard deviation over seeds (0 for one seed)."""
        return self.best.std(axis=0, ddof=1 if self.n_seeds > 1 else 0)

    def at(self, draws: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Mean and sd after ``draws`` draws each (NaN for 0; beyond ``n_draws``, the last)."""
        n = np.asarray(draws, dtype=np.int64)
        idx = np.clip(n, 1, self.n_draws) - 1
        mean, sd = self.mean[idx], self.sd[idx]
        return np.where(n >= 1, mean, np.nan), np.where(n >= 1, sd, np.nan)


def random_search(
    accuracy: ArrayLike,
    n_draws: int,
    *,
    groups: ArrayLike | None = None,
    n_seeds: int = 20,
    seed: int = 0,
) -> RandomSearchCurves:
    """Random search over a ground-truth table: ``n_draws`` distinct cells, ``n_seeds`` times.

    Parameters
    ----------
    accuracy : array-like
        The accuracy of every cell of the space (rows with a non-finite value
        are left out: a table's missing cells are not drawable).
    n_draws : int
        Draws per run; capped at the number of distinct cells (groups).
    groups : array-like, optional
        A label per row; no two draws of one run share a label (drawn
        uniformly over rows, a row of a drawn group skipped).
    n_seeds, seed : int
        Runs, and the seed their independent streams are spawned from.
    """
    acc = _accuracy_table("accuracy", accuracy)
    n_draws = check_int("n_draws", n_draws, low=1)
    n_seeds = check_int("n_seeds", n_seeds, low=1)
    seed = check_int("seed", seed)
    labels = None
    if groups is not None:
        labels = np.asarray(groups).ravel()
        if labels.shape != acc.shape:
            raise ConfigError(
                f"groups must label every row of accuracy ({acc.size}), but got {labels.size}."
            )
    keep = np.isfinite(acc)
    if not keep.all():
        logger.info("random search: %d rows without a finite accuracy left out", (~keep).sum())
        acc = acc[keep]
        labels = None if labels is None else labels[keep]
    if acc.size == 0:
        raise ConfigError("random search needs a table with at least one finite accuracy.")
    if labels is not None:
        labels = np.unique(labels, return_inverse=True)[1]
        distinct = int(labels.max()) + 1
    else:
        distinct = int(acc.size)
    if n_draws > distinct:
        logger.debug("random search: %d draws capped at %d distinct cells", n_draws, distinct)
        n_draws = distinct
    best = np.empty((n_seeds, n_draws))
    for row, stream in enumerate(np.random.SeedSequence(seed).spawn(n_seeds)):
        perm = np.random.default_rng(stream).permutation(acc.size)
        if labels is not None:
            first = np.unique(labels[perm], return_index=True)[1]
            perm = perm[np.sort(first)]
        best[row] = np.maximum.accumulate(acc[perm[:n_draws]])
    return RandomSearchCurves(best=best, seed=int(seed))


@dataclass(frozen=True)
class AnytimeRegret:
    """A search's anytime curve beside random search at the same budget.

    ``draws_same_cost[i]`` is how many random draws of ``draw_cost`` seconds
    fit into the search's cumulative cost after its ``i+1``-th cell.
    """

    curve: AnytimeCurve
    random: RandomSearchCurves
    draw_cost: float
    space_best: float
    draws_same_cost: NDArray[np.int64]

    def rows(self) -> list[dict[str, Any]]:
        """One row per cell: the search's best and regret, random search's at the same cells
        and at the same seconds (mean and sd over seeds)."""
        c = self.curve
        cells_mean, cells_sd = self.random.at(c.cells)
        cost_mean, cost_sd = self.random.at(self.draws_same_cost)
        out = []
        for i in range(len(c)):
            out.append(
                {
                    "cell": int(c.cells[i]),
                    "cost_s": float(c.cost[i]),
                    "accuracy": float(c.accuracy[i]),
                    "best": float(c.best[i]),
                    "regret": self.space_best - float(c.best[i]),
                    "random_cells_mean": float(cells_mean[i]),
                    "random_cells_sd": float(cells_sd[i]),
                    "random_cells_regret": self.space_best - float(cells_mean[i]),
                    "random_draws": int(self.draws_same_cost[i]),
                    "random_cost_mean": float(cost_mean[i]),
                    "random_cost_sd": float(cost_sd[i]),
                    "random_cost_regret": self.space_best - float(cost_mean[i]),
                }
            )
        return out

    def final(self) -> dict[str, Any]:
        """The last row (the whole budget), or an empty mapping for an empty search."""
        rows = self.rows()
        return rows[-1] if rows else {}


def anytime_regret(
    costs: ArrayLike,
    accuracies: ArrayLike,
    truth: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    start_cost: float = 0.0,
    draw_cost: float | None = None,
    space_best: float | None = None,
    n_seeds: int = 20,
    seed: int = 0,
) -> AnytimeRegret:
    """The search's anytime curve and random search at the same cells and seconds.

    Parameters
    ----------
    costs, accuracies, start_cost
        The search, as for :func:`anytime_curve`.
    truth, groups
        The ground-truth table random search draws from (:func:`random_search`).
    draw_cost : float, optional
        Seconds per random draw; default the median of ``costs`` (the
        search's cost per trained cell, pruned ones included). ``nasnc
        report`` passes the median cost of the completed cells, since random
        search prunes nothing. Random search gets the start cost too.
    space_best : float, optional
        The best accuracy of the space (default the table's maximum).
    n_seeds, seed
        Random-search runs and seed.
    """
    curve = anytime_curve(costs, accuracies, start_cost=start_cost)
    if draw_cost is None:
        if not len(curve):
            raise ConfigError("an empty search has no cost per cell: pass draw_cost.")
        draw_cost = float(np.median(np.asarray(costs, dtype=np.float64)))
    per_draw = _check_seconds("draw_cost", draw_cost, positive=True)
    table = _accuracy_table("truth", truth)  # an inf was blamed on space_best=None before
    found = {  # the best of each; None where none is finite (a search pruned so far)
        where: float(np.nanmax(values)) if np.isfinite(values).any() else None
        for where, values in (("the table", table), ("the search", curve.best))
    }
    best = found["the table"] if space_best is None else space_best
    if not is_real(best) or not math.isfinite(best):
        raise ConfigError(f"space_best must be a finite number, but got {space_best=}.")
    for where, value in found.items():  # a regret below zero is a space_best of another table
        if value is not None and value > best + 1e-9 * max(1.0, abs(best)):
            raise ConfigError(
                f"space_best={best} is below the best accuracy {where} holds ({value}); "
                "it must be the best of the space the search and the table draw from."
            )
    # a tolerance so that 3 draws of 10/3 s fit into 10 s
    same_cost = np.floor(curve.cost / per_draw * (1 + 1e-9)).astype(np.int64)
    n_draws = max(1, len(curve), int(same_cost.max()) if same_cost.size else 0)
    baseline = random_search(table, n_draws, groups=groups, n_seeds=n_seeds, seed=seed)
    return AnytimeRegret(
        curve=curve,
        random=baseline,
        draw_cost=per_draw,
        space_best=float(best),
        draws_same_cost=same_cost,
    )


def plot_anytime(
    result: AnytimeRegret,
    path: str | Path,
    *,
    title: str = "",
    ylabel: str = "accuracy (%)",
) -> Path:
    """Draw ``result`` into a PNG: best found against seconds (left) and cells (right),
    random search's mean ± sd as a line and band, the space's best dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    out = Path(path)
    fig = Figure(figsize=(10.0, 4.0), dpi=110)
    FigureCanvasAgg(fig)
    c, rs = result.curve, result.random
    k = np.arange(1, rs.n_draws + 1, dtype=np.float64)
    band = f"random search, mean ± sd ({rs.n_seeds} seeds)"

    # left: seconds, steps held to the end of the budget; the screen's cost marked
    ax = fig.add_subplot(1, 2, 1)
    end = float(c.cost[-1]) if len(c) else float(k[0] * result.draw_cost)
    x_r = np.append(k * result.draw_cost, np.inf)
    keep = x_r[:-1] <= end * (1 + 1e-9)
    if keep.any():
        x = np.append(x_r[:-1][keep], end)
        mean, sd = np.append(rs.mean[keep], rs.mean[keep][-1]), np.append(rs.sd[keep], 0.0)
        sd[-1] = sd[-2]
        ax.step(x, mean, where="post", color="tab:gray", label=band)
        ax.fill_between(x, mean - sd, mean + sd, step="post", color="tab:gray", alpha=0.25)
    if len(c):
        x = np.append(c.cost, end)
        ax.step(
            x,
            np.append(c.best, c.best[-1]),
            where="post",
            color="tab:blue",
            label="search, best so far",
        )
        ax.plot(c.cost, c.accuracy, ".", color="tab:blue", alpha=0.4, markersize=5)
    if c.start_cost > 0:
        ax.axvline(c.start_cost, color="tab:green", lw=1, ls=":", label="screen")
    ax.set_xlabel("cumulative seconds")

    # right: trained cells (discrete)
    ax2 = fig.add_subplot(1, 2, 2)
    n = max(len(c), 1)
    ax2.plot(k[:n], rs.mean[:n], color="tab:gray", marker=".", label=band)
    ax2.fill_between(
        k[:n], rs.mean[:n] - rs.sd[:n], rs.mean[:n] + rs.sd[:n], color="tab:gray", alpha=0.25
    )
    if len(c):
        ax2.step(c.cells, c.best, where="post", color="tab:blue", label="search, best so far")
        ax2.plot(c.cells, c.accuracy, ".", color="tab:blue", alpha=0.4, markersize=5)
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_xlabel("trained cells")
    for axis in (ax, ax2):
        axis.axhline(result.space_best, color="tab:red", ls="--", lw=1, label="best in the space")
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    return out
