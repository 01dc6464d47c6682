"""Pareto fronts of cached cells: a score maximised against a cost minimised.

:func:`pareto_mask` is the front of any two columns (O(n log n)); :func:`pareto_table`
applies it to the per-architecture columns :func:`~nasnc.analysis.compare_scores`
builds, with each front member's ground truth and how far the best of them is
from the space's best.

Dominance: cell ``q`` dominates ``p`` when ``score_q >= score_p`` and
``cost_q <= cost_p`` with at least one strict. Cells with equal score and
cost do not dominate each other: both are on the front. A cell whose score or
cost is NaN cannot be compared and is left out (counted as ``n_dropped``);
``±inf`` compare as numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from nasnc._errors import ConfigError

__all__ = ["PARETO_COSTS", "pareto_mask", "pareto_table"]

#: Cached scores a front can use as its cost (minimised): also the objectives a study
#: minimises (``nasnc_search._config.COST_OBJECTIVES`` is this tuple).
PARETO_COSTS: tuple[str, ...] = ("params", "flops", "latency")


def pareto_mask(score: ArrayLike, cost: ArrayLike) -> np.ndarray:
    """Which points are non-dominated with ``score`` maximised and ``cost`` minimised.

    Parameters
    ----------
    score, cost : array-like of float, shape (n,)
        One value per point; NaN in either leaves the point out.

    Returns
    -------
    ndarray of bool, shape (n,)
        True for the points on the front (see the module docstring for ties).

    Raises
    ------
    ConfigError
        When the two are not 1-D of one length.

    Examples
    --------
    >>> pareto_mask([3, 2, 1, 3, float("nan")], [3, 1, 1, 3, 0]).tolist()
    [True, True, False, True, False]
    """
    s = np.asarray(score, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    if s.ndim != 1 or s.shape != c.shape:
        raise ConfigError(
            f"score and cost must be 1-D of one length, but got shapes {s.shape} and {c.shape}."
        )
    mask = np.zeros(s.size, dtype=bool)
    idx = np.flatnonzero(~(np.isnan(s) | np.isnan(c)))
    if not idx.size:
        return mask
    # cost ascending, then score descending: a point survives when its score is the
    # best of its cost and beats every score at a strictly lower cost
    order = idx[np.lexsort((-s[idx], c[idx]))]
    best_below: float | None = None  # best score among strictly lower costs
    start = 0
    while start < order.size:
        stop = start
        group_cost = c[order[start]]
        while stop < order.size and c[order[stop]] == group_cost:
            stop += 1
        top = s[order[start]]
        if best_below is None or top > best_below:
            group = order[start:stop]
            mask[group[s[group] == top]] = True
            best_below = float(top)
        start = stop
    return mask


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def pareto_table(
    archs: Sequence[str],
    columns: Mapping[str, np.ndarray],
    truth: np.ndarray,
    *,
    score: str,
    cost: str,
    space_best: float | None = None,
    space_best_arch: str | None = None,
) -> dict[str, Any]:
    """The front of ``columns[score]`` (max) against ``columns[cost]`` (min) over ``archs``.

    Parameters
    ----------
    archs : sequence of str
        One architecture per row of the columns.
    columns : mapping of str to ndarray
        Per-architecture scores (``compare_scores``' main group).
    truth : ndarray
        Ground-truth accuracy per row (NaN when unknown).
    score, cost : str
        Column names; ``cost`` is minimised, ``score`` maximised.
    space_best, space_best_arch : optional
        The best accuracy the benchmark holds and its cell, for ``regret``.

    Returns
    -------
    dict
        ``score``, ``cost``, ``n`` (cells with both values), ``n_dropped``,
        ``front`` (one dict per member, cost ascending: ``arch``, ``score``,
        ``cost``, ``true_acc`` or None), ``n_front``, ``best_on_front`` and
        ``best_on_front_arch`` (highest ground truth on the front, None when
        none is known), ``best_cached`` (highest ground truth among all rows),
        ``space_best``, ``space_best_arch`` and ``regret`` (``space_best -
        best_on_front``, None unless both are known).

    Raises
    ------
    ConfigError
        When ``score`` or ``cost`` is not a column (naming those there are),
        both name the same column, or ``archs``, the two columns and ``truth``
        differ in shape.
    """
    if score == cost:
        raise ConfigError(f"a front needs a score and a cost that differ, but got {score=}.")
    for role, name in (("score", score), ("cost", cost)):
        if name not in columns:
            raise ConfigError(
                f"the entries have no {name!r} score for the front's {role}; they have: "
                f"{', '.join(columns) or 'none'}."
            )
    s = np.asarray(columns[score], dtype=np.float64)
    c = np.asarray(columns[cost], dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    shapes = {"archs": (len(archs),), score: s.shape, cost: c.shape, "truth": y.shape}
    if len(set(shapes.values())) > 1:  # a longer truth gave a best cached cell of no row
        raise ConfigError(
            "archs, the score, the cost and truth need one value per cell each, but got "
            + ", ".join(f"{k} {v}" for k, v in shapes.items())
            + "."
        )
    mask = pareto_mask(s, c)
    on = np.flatnonzero(mask)
    rows = [int(i) for i in on[np.lexsort((-s[on], c[on]))]]
    front = [
        {"arch": archs[i], "score": float(s[i]), "cost": float(c[i]), "true_acc": _num(y[i])}
        for i in rows
    ]
    known = [i for i in rows if math.isfinite(y[i])]
    best = max(known, key=lambda i: y[i]) if known else None
    best_on_front = None if best is None else float(y[best])
    n = int((~(np.isnan(s) | np.isnan(c))).sum())
    regret = None
    if best_on_front is not None and space_best is not None and math.isfinite(space_best):
        regret = float(space_best) - best_on_front
    return {
        "score": score,
        "cost": cost,
        "n": n,
        "n_dropped": len(archs) - n,
        "n_front": len(front),
        "front": front,
        "best_on_front": best_on_front,
        "best_on_front_arch": None if best is None else archs[best],
        "best_cached": _num(float(np.nanmax(y))) if np.isfinite(y).any() else None,
        "space_best": space_best,
        "space_best_arch": space_best_arch,
        "regret": regret,
    }
