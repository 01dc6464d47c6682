"""Rank aggregates: several scores of a pool of cells combined into one (AZ-NAS style).

A rank aggregate is not a property of one network: it is computed over a
**pool** of cells scored by the same named scores. For each score, every cell
gets its rank ``r`` among the ``n`` cells of the pool (``r = n`` for the
highest score, ``1`` for the lowest, ties averaged) and adds ``log(r / n)``;
with a weight ``w``, ``|w| * log(r / n)``. So a cell's value is

    aggregate(cell | pool) = Σ_s |w_s| · log(r_s(cell) / n)   ≤ 0,

``0`` when the cell is first in every score. A **negative weight** turns the
score round: ``r_s`` is then the rank of ``-score`` (lower = better, weight
``|w_s|``), so ``{"naswot": 1, "grad_norm": -1}`` ranks the negated
grad_norm exactly as a column of ``-grad_norm`` would. It does not flip the
sign of the term: ``-log(r / n)`` would reward the cell that is *last* on
the score with ``log n`` and leave the cell first on it at zero, the
opposite of the veto a log-rank aggregate puts on a poor rank.

Values are only comparable within the pool they were ranked in: the same
cell in another pool gets another value (so they are never cached as a
cell's score). AZ-NAS (Lee & Ham, CVPR 2024) uses this sum of log
normalised ranks; on the CPU proxy network at initialisation the aggregate
of NASWOT, synflow, jacob_cov and FLOPs ranked NAS-Bench-201 cells at
Kendall τ +0.64 to +0.71 (docs/results.md).

Missing values are handled explicitly by ``nan``:

``"worst"`` (default)
    a NaN score ranks below every finite one (NaNs share the lowest ranks,
    averaged), so a cell whose synflow overflowed is penalised, not dropped;
``"propagate"``
    any NaN component makes the cell's aggregate NaN (ranks are taken
    among the finite values only).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Literal

import numpy as np
from scipy.stats import rankdata

from nasnc._config import is_real
from nasnc._errors import ConfigError

__all__ = [
    "AGGREGATES",
    "NanPolicy",
    "aggregate_against",
    "expand_proxies",
    "log_rank",
    "rank_aggregate",
]

logger = logging.getLogger(__name__)

NanPolicy = Literal["worst", "propagate"]

#: Named rank aggregates usable wherever a proxy name is (computed over a pool).
#: ``aggregate``: the free scores that ranked best on the samples of docs/results.md.
AGGREGATES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"aggregate": ("naswot", "synflow", "jacob_cov", "flops")}
)


def _check_nan(nan: str) -> None:
    if nan not in ("worst", "propagate"):
        raise ConfigError(f"nan must be 'worst' or 'propagate', but got {nan=}.")


def log_rank(values: Sequence[float] | np.ndarray, *, nan: NanPolicy = "worst") -> np.ndarray:
    """``log(r / n)`` of every value among ``values`` (higher value = higher rank).

    ``r`` runs from 1 (lowest) to ``n`` (highest), ties get their average
    rank. With ``nan="worst"`` NaNs rank below every finite value and ``n``
    counts them; with ``"propagate"`` they stay NaN and ``n`` counts the
    finite values only.

    >>> log_rank([1.0, 3.0, 2.0]).round(3).tolist()
    [-1.099, 0.0, -0.405]
    """
    _check_nan(nan)
    x = np.asarray(values, dtype=np.float64).ravel()
    out = np.full(x.shape, math.nan)
    ok = np.isfinite(x)
    if nan == "propagate":
        if ok.any():
            out[ok] = np.log(rankdata(x[ok]) / ok.sum())
        return out
    if x.size == 0:
        return out
    filled = np.where(ok, x, -np.inf)  # non-finite (nan, ±inf) ranks lowest
    return np.log(rankdata(filled) / x.size)


def rank_aggregate(
    columns: Mapping[str, Sequence[float] | np.ndarray],
    *,
    names: Iterable[str] | None = None,
    weights: Mapping[str, float] | None = None,
    nan: NanPolicy = "worst",
) -> np.ndarray:
    """Sum of (weighted) log normalised ranks of ``columns`` over one pool of cells.

    Parameters
    ----------
    columns : mapping of str to array
        One equal-length column per score (higher = better), one row per cell.
    names : iterable of str, optional
        The scores to combine (default: every column, or the keys of ``weights``).
    weights : mapping of str to float, optional
        ``w_s`` per score (default 1). A zero weight leaves the score out; a
        negative one ranks the score the other way round (lower = better)
        with weight ``|w_s|``.
    nan : {"worst", "propagate"}
        Missing values: see the module docstring.

    Returns
    -------
    ndarray
        One value per row, ``<= 0``; comparable only within this pool.

    Raises
    ------
    ConfigError
        A named score is missing from ``columns``, columns differ in length,
        no score is named, or a weight is not finite.

    Examples
    --------
    >>> rank_aggregate({"a": [1, 2, 3], "b": [3, 2, 1]}).round(3).tolist()
    [-1.099, -0.811, -1.099]
    >>> rank_aggregate({"a": [1, 2, 3]}, weights={"a": -1}).round(3).tolist()
    [0.0, -0.405, -1.099]
    """
    _check_nan(nan)
    if isinstance(names, str):
        raise ConfigError(f"names must be a list of scores, not one string, but got {names=}.")
    if names is None:
        names = list(weights) if weights else list(columns)
    wanted = [str(n) for n in names]
    if weights is not None:
        bad = {k: v for k, v in weights.items() if not is_real(v) or not math.isfinite(v)}
        if bad:
            raise ConfigError(f"aggregate weights must be finite numbers, but got {bad}.")
        stray = [k for k in weights if k not in wanted]
        if stray:  # a typo would leave the score it meant at weight +1
            raise ConfigError(
                f"aggregate weights name {stray[0]!r}, which is not among the scores {wanted}."
            )
        wanted = [n for n in wanted if float(weights.get(n, 1.0)) != 0.0]
    if not wanted:
        raise ConfigError(f"a rank aggregate needs at least one score, but got {names=}.")
    missing = [n for n in wanted if n not in columns]
    if missing:
        raise ConfigError(
            f"rank aggregate: no score {missing[0]!r} for the pool; it has: "
            f"{', '.join(columns) or 'nothing'}."
        )
    lengths = {n: len(np.asarray(columns[n]).ravel()) for n in wanted}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"rank aggregate: scores differ in length: {lengths}.")
    total = np.zeros(next(iter(lengths.values())))
    for name in wanted:
        col = np.asarray(columns[name], dtype=np.float64).ravel()
        n_bad = int((~np.isfinite(col)).sum())
        if n_bad:
            logger.info(
                "rank aggregate: %d of %d cells lack a finite %s (nan=%s)",
                n_bad,
                col.size,
                name,
                nan,
            )
        w = 1.0 if weights is None else float(weights.get(name, 1.0))
        total = total + abs(w) * log_rank(col if w > 0 else -col, nan=nan)
    return total


def aggregate_against(
    pool: Mapping[str, Sequence[float] | np.ndarray],
    cell: Mapping[str, float],
    *,
    names: Iterable[str] | None = None,
    weights: Mapping[str, float] | None = None,
    nan: NanPolicy = "worst",
) -> float:
    """The aggregate of one ``cell`` ranked in ``pool`` plus itself (``n + 1`` cells).

    For a cell outside a screened pool (sampled later by the optimiser): its
    value is what :func:`rank_aggregate` would give it had it been in the pool.
    """
    wanted = list(names) if names is not None else list(weights or pool)
    joined = {
        n: np.append(np.asarray(pool[n], dtype=np.float64), float(cell.get(n, math.nan)))
        for n in wanted
        if n in pool
    }
    return float(rank_aggregate(joined, names=wanted, weights=weights, nan=nan)[-1])


def expand_proxies(names: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split proxy names into per-network proxies to compute and pool aggregates.

    An aggregate name brings its components into the first tuple, so
    ``expand_proxies(["params", "aggregate"])`` is
    ``(("params", "naswot", "synflow", "jacob_cov", "flops"), ("aggregate",))``.
    """
    if isinstance(names, str):  # "params" would be read as p, a, r, a, m, s
        raise ConfigError(f"names must be a list of proxies, not one string, but got {names=}.")
    computed: list[str] = []
    pooled: list[str] = []
    for name in names:
        parts = AGGREGATES.get(name)
        if parts is None:
            if name not in computed:
                computed.append(name)
            continue
        if name not in pooled:
            pooled.append(name)
        computed.extend(p for p in parts if p not in computed)
    return tuple(computed), tuple(pooled)
