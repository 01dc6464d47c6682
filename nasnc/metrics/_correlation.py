"""Rank correlations, top-k precision, regret and bootstrap intervals.

Every function takes two equal-length 1-D array-likes (a score per
architecture and its ground truth) and first drops the *pairs* in which either
value is NaN or infinite; :func:`correlation_summary` reports how many were
dropped. A correlation that is undefined (fewer than two pairs, or one side
constant) is NaN, never an exception or a warning.

Conventions
-----------
- Kendall's tau is the tau-b variant (ties corrected), as
  :func:`scipy.stats.kendalltau` computes it.
- Spearman's rho is Pearson's r of the average ranks (ties share their mean rank).
- Each value is rounded to 12 significant digits of its own magnitude, and
  values then equal are ties: noise in the last digits of equal values never
  decides a rank. (A value that is rounding noise around zero, such as
  ``0.1 + 0.2 - 0.3``, keeps its own magnitude and is not tied with 0; scores
  spanning many decades keep their order at the small end.)
- Bootstrap intervals resample the (score, truth) pairs with replacement and
  take the percentile interval of the statistic; resamples where it is
  undefined are left out. The generator is ``numpy.random.default_rng(seed)``
  and no global RNG state is touched, so the same seed gives the same interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from nasnc._config import check_int, is_real
from nasnc._errors import ConfigError

__all__ = [
    "STATISTICS",
    "bootstrap_ci",
    "correlation_summary",
    "drop_nan_pairs",
    "kendall_tau",
    "pearson",
    "regret",
    "spearman",
    "top_k_precision",
]

FloatArray = NDArray[np.float64]

# Bootstrap resamples of at most this many pairs use the vectorised pair-sign
# form of tau-b; longer ones call scipy once per resample.
_KENDALL_VECTOR_MAX_N = 200
_KENDALL_CHUNK_ELEMENTS = 4_000_000


def drop_nan_pairs(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray, int]:
    """Return ``(x, y, n_dropped)`` without the pairs where either value is not finite.

    Raises
    ------
    ConfigError
        If the inputs are not 1-D or their lengths differ.
    """
    try:
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # numpy's "could not convert string to float"
        raise ConfigError(f"scores and truth must be numbers: {exc}.") from None
    if xa.ndim != 1 or ya.ndim != 1:
        raise ConfigError(f"scores and truth must be 1-D, but got {xa.shape=} and {ya.shape=}.")
    if xa.shape != ya.shape:
        raise ConfigError(
            f"scores and truth must have the same length, but got {len(xa)=} and {len(ya)=}."
        )
    keep = np.isfinite(xa) & np.isfinite(ya)
    return xa[keep], ya[keep], int(keep.size - keep.sum())


def _ranked_pairs(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray, int]:
    """:func:`drop_nan_pairs`, each value rounded to 12 significant digits."""
    xa, ya, dropped = drop_nan_pairs(x, y)
    return _snap(xa), _snap(ya), dropped


def _snap(a: FloatArray) -> FloatArray:
    """Round each value to 12 significant digits, so rounding noise makes ties.

    ``0.9 * b / b`` over many ``b`` should rank as one tied value, not as
    noise in the 16th digit. The grid follows each value's own magnitude:
    scores spanning many decades (synflow) keep their order at the small end.
    """
    out = a.copy()
    scale = np.zeros_like(a)
    nonzero = a != 0.0
    scale[nonzero] = 10.0 ** (np.floor(np.log10(np.abs(a[nonzero]))) - 11.0)
    grid = scale > 0.0  # zeros, and subnormals whose grid underflows, stay as they are
    out[grid] = np.round(a[grid] / scale[grid]) * scale[grid]
    return out


def _is_constant(a: FloatArray) -> bool:
    return bool(a.size == 0 or np.all(a == a[0]))


def kendall_tau(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's tau-b between ``x`` and ``y`` (NaN pairs dropped).

    >>> kendall_tau([1, 2, 3, 4], [1, 3, 2, 4])
    0.6666666666666669
    """
    xa, ya, _ = _ranked_pairs(x, y)
    if xa.size < 2 or _is_constant(xa) or _is_constant(ya):
        return math.nan
    return float(stats.kendalltau(xa, ya, variant="b").statistic)


def _row_scale(a: FloatArray) -> FloatArray:
    """Each row's largest magnitude (1 where it is 0 or not finite), for broadcasting."""
    scale = np.abs(a).max(axis=-1, keepdims=True)
    return np.where((scale > 0) & np.isfinite(scale), scale, 1.0)


def _pearson_rows(x: FloatArray, y: FloatArray) -> FloatArray:
    """Pearson's r of each row of two 2-D arrays (NaN where a row is constant)."""
    # r does not change with scale: each row over its largest magnitude, so that
    # sums of squares of scores near 1e160 (or 1e-170) neither overflow nor underflow
    x, y = x / _row_scale(x), y / _row_scale(y)
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    sxx = np.einsum("...i,...i->...", xc, xc)
    syy = np.einsum("...i,...i->...", yc, yc)
    sxy = np.einsum("...i,...i->...", xc, yc)
    denom = np.sqrt(sxx * syy)
    # A row constant up to rounding has a tiny but non-zero spread: treat as undefined.
    # Each side against its own magnitude: a score near 1e20 (synflow) beside
    # accuracies near 90 is not a constant accuracy column.
    x_scale = np.abs(x).max(axis=-1) + 1e-300
    y_scale = np.abs(y).max(axis=-1) + 1e-300
    tiny = (np.sqrt(sxx) <= 1e-12 * x_scale * np.sqrt(x.shape[-1])) | (
        np.sqrt(syy) <= 1e-12 * y_scale * np.sqrt(y.shape[-1])
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(tiny, np.nan, sxy / np.where(denom == 0, 1.0, denom))
    return np.clip(r, -1.0, 1.0)


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson's correlation coefficient r (NaN pairs dropped)."""
    xa, ya, _ = _ranked_pairs(x, y)
    if xa.size < 2:
        return math.nan
    return float(_pearson_rows(xa[None, :], ya[None, :])[0])


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rank correlation rho (average ranks for ties; NaN pairs dropped)."""
    xa, ya, _ = _ranked_pairs(x, y)
    if xa.size < 2:
        return math.nan
    rx = stats.rankdata(xa)[None, :]
    ry = stats.rankdata(ya)[None, :]
    return float(_pearson_rows(rx, ry)[0])


def top_k_precision(scores: ArrayLike, truth: ArrayLike, k: int = 10) -> float:
    """Fraction of the ``k`` best-scored architectures that are among the ``k`` truly best.

    Both rankings are descending (higher is better); ties are broken by
    position, earlier first. NaN unless more than ``k`` pairs remain after
    dropping NaN pairs (with ``n <= k`` the answer would trivially be 1).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer, but got {k=}.")
    sa, ta, _ = _ranked_pairs(scores, truth)
    if sa.size <= k:
        return math.nan
    top_s = np.argsort(-sa, kind="stable")[:k]
    top_t = np.argsort(-ta, kind="stable")[:k]
    return len(set(top_s.tolist()) & set(top_t.tolist())) / k


def regret(found: ArrayLike, space_best: float) -> float:
    """Regret of a search: the space's best true accuracy minus the best one it found.

    Parameters
    ----------
    found
        True accuracies of the architectures the search returned or evaluated
        (NaN entries are ignored).
    space_best
        The best true accuracy in the whole space (e.g. ``GroundTruth.best``).

    Returns
    -------
    float
        ``space_best - max(found)``, in the unit of the inputs; 0 means the
        search found the best architecture. NaN when nothing finite was found.
    """
    try:
        fa = np.asarray(found, dtype=np.float64).ravel()
        best = float(space_best)
    except (TypeError, ValueError):
        raise ConfigError(
            f"found and space_best must be numbers, but got {space_best=} and {found!r}."
        ) from None
    fa = fa[np.isfinite(fa)]
    if fa.size == 0 or not math.isfinite(best):
        return math.nan
    if fa.max() > best + 1e-9 * max(1.0, abs(best)):  # a regret below zero: another space
        raise ConfigError(
            f"space_best={best} is below an accuracy the search found ({fa.max()}); "
            "it must be the best of the space the search drew from."
        )
    return best - float(fa.max())


# ---------------------------------------------------------------- bootstrap
def _kendall_rows(xs: FloatArray, ys: FloatArray) -> FloatArray:
    """tau-b of each row pair; the pair-sign form sum(dx*dy)/sqrt(sum dx^2 * sum dy^2)."""
    b, n = xs.shape
    out = np.empty(b)
    if n > _KENDALL_VECTOR_MAX_N:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(b):
                out[i] = stats.kendalltau(xs[i], ys[i], variant="b").statistic
        return out
    chunk = max(1, _KENDALL_CHUNK_ELEMENTS // (n * n))
    for start in range(0, b, chunk):
        xc, yc = xs[start : start + chunk], ys[start : start + chunk]
        dx = np.sign(xc[:, :, None] - xc[:, None, :]).astype(np.int8)
        dy = np.sign(yc[:, :, None] - yc[:, None, :]).astype(np.int8)
        s = np.einsum("bij,bij->b", dx, dy, dtype=np.int64)
        tx = np.einsum("bij,bij->b", dx, dx, dtype=np.int64)
        ty = np.einsum("bij,bij->b", dy, dy, dtype=np.int64)
        denom = np.sqrt(tx.astype(np.float64) * ty.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + chunk] = np.where(
                denom > 0, s / np.where(denom > 0, denom, 1), np.nan
            )
    return out


def _spearman_rows(xs: FloatArray, ys: FloatArray) -> FloatArray:
    return _pearson_rows(stats.rankdata(xs, axis=1), stats.rankdata(ys, axis=1))


#: Statistics known to :func:`bootstrap_ci`, by name: row-wise functions of two 2-D arrays.
STATISTICS: dict[str, Callable[[FloatArray, FloatArray], FloatArray]] = {
    "kendall": _kendall_rows,
    "spearman": _spearman_rows,
    "pearson": _pearson_rows,
}


def bootstrap_ci(
    x: ArrayLike,
    y: ArrayLike,
    statistic: str = "kendall",
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a correlation (pairs resampled with replacement).

    Parameters
    ----------
    x, y
        Scores and ground truth; NaN pairs are dropped first.
    statistic
        ``"kendall"``, ``"spearman"`` or ``"pearson"``.
    n_boot
        Number of resamples.
    level
        Coverage of the interval (0.95 gives the 2.5 and 97.5 percentiles).
    seed
        Seed of the resampling generator; the same seed gives the same interval.

    Returns
    -------
    tuple of float
        ``(low, high)``; ``(nan, nan)`` with fewer than 3 pairs or when every
        resample is degenerate.

    Examples
    --------
    >>> lo, hi = bootstrap_ci([1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 6, 5], "spearman", seed=0)
    >>> lo <= spearman([1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 6, 5]) <= hi
    True
    """
    if statistic not in STATISTICS:
        raise ConfigError(f"statistic must be one of {sorted(STATISTICS)}, but got {statistic=}.")
    n_boot = check_int("n_boot", n_boot, low=1)
    if not is_real(level) or not 0.0 < level < 1.0:
        raise ConfigError(f"level must lie strictly between 0 and 1, but got {level=}.")
    seed = check_int("seed", seed)
    xa, ya, _ = _ranked_pairs(x, y)
    n = xa.size
    if n < 3:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_boot), n))
    values = STATISTICS[statistic](xa[idx], ya[idx])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def correlation_summary(
    scores: ArrayLike,
    truth: ArrayLike,
    *,
    k: int = 10,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Every agreement measure between one score and the ground truth, signed.

    Returns
    -------
    dict
        ``n`` (pairs used), ``n_dropped`` (NaN pairs), ``kendall_tau``,
        ``kendall_ci``, ``spearman``, ``spearman_ci``, ``pearson``,
        ``pearson_ci`` (intervals as ``[low, high]`` lists) and
        ``top{k}_precision``. The sign is kept: a negative tau means higher
        scores go with *lower* ground truth.
    """
    sa, ta, dropped = _ranked_pairs(scores, truth)
    out: dict[str, Any] = {"n": int(sa.size), "n_dropped": dropped}
    out["kendall_tau"] = kendall_tau(sa, ta)
    out["kendall_ci"] = list(bootstrap_ci(sa, ta, "kendall", n_boot=n_boot, level=level, seed=seed))
    out["spearman"] = spearman(sa, ta)
    out["spearman_ci"] = list(
        bootstrap_ci(sa, ta, "spearman", n_boot=n_boot, level=level, seed=seed)
    )
    out["pearson"] = pearson(sa, ta)
    out["pearson_ci"] = list(bootstrap_ci(sa, ta, "pearson", n_boot=n_boot, level=level, seed=seed))
    out[f"top{k}_precision"] = top_k_precision(sa, ta, k)
    return out
