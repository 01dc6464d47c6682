"""nasnc.metrics against scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from nasnc._errors import ConfigError
from nasnc.metrics import (
    bootstrap_ci,
    correlation_summary,
    drop_nan_pairs,
    kendall_tau,
    pearson,
    regret,
    spearman,
    top_k_precision,
)
from nasnc.metrics._correlation import _kendall_rows, _pearson_rows, _spearman_rows


def _data(seed: int, n: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 0.5 * x + rng.normal(size=n)
    if ties:
        x, y = np.round(x * 2) / 2, np.round(y)
    return x, y


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_correlations_match_scipy(seed: int, ties: bool) -> None:
    x, y = _data(seed, 37 + 11 * seed, ties)
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)


def test_nan_pairs_are_dropped_and_counted() -> None:
    x, y = _data(7, 50, ties=False)
    x[[3, 10]] = np.nan
    y[[10, 20, 30]] = np.inf
    keep = np.isfinite(x) & np.isfinite(y)
    xs, ys, dropped = drop_nan_pairs(x, y)
    assert ys.size == xs.size
    assert dropped == 4 and xs.size == 46
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x[keep], y[keep]).statistic)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x[keep], y[keep]).statistic)
    summary = correlation_summary(x, y, n_boot=50)
    assert summary["n"] == 46 and summary["n_dropped"] == 4


def test_hand_computed_values() -> None:
    # 6 pairs: 5 concordant, 1 discordant -> (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # ranks differ by d = (0, 1, -1, 0): rho = 1 - 6*2 / (4*15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1e-20, 2e-20, 1e-5, 1.0, 1e30], [1, 2, 3, 4, 5]),  # synflow spans decades
        ([0.1, 0.2, 0.3, 0.4, 0.5], [1e12, 2e12, 1.5e12, 3e12, 2.5e12]),
        ([1e-12, 2e-12, 3e-12, 4e-12, 5e-12], [80, 85, 83, 90, 88]),
        ([1e160, 2e160, 3e160, 5e160], [1, 2, 3, 4]),  # sums of squares overflowed: 0.0
        ([1e-170, 2e-170, 3e-170, 5e-170], [1, 2, 3, 4]),  # and underflowed: NaN
    ],
)
def test_pearson_of_columns_of_very_different_magnitude_is_defined(
    x: list[float], y: list[float]
) -> None:
    # each column's spread is judged against its own magnitude, not the other's
    want = stats.pearsonr(x, y).statistic
    assert pearson(x, y) == pytest.approx(want, rel=1e-9)
    assert pearson(y, x) == pytest.approx(want, rel=1e-9)
    assert math.isnan(pearson([1e20, 1e20, 1e20], [1, 2, 3]))  # still: constant is undefined
    low, high = bootstrap_ci(x, y, "pearson", n_boot=50)
    assert low <= want <= high and low > -1.0


def test_undefined_correlations_are_nan() -> None:
    assert math.isnan(kendall_tau([1.0], [2.0]))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(pearson([1, 2, 3], [5, 5, 5]))
    assert math.isnan(kendall_tau([np.nan, 1.0], [1.0, 2.0]))
    assert all(math.isnan(v) for v in bootstrap_ci([1, 2], [1, 2]))


def test_shape_errors_name_the_shapes() -> None:
    with pytest.raises(ConfigError, match="same length"):
        kendall_tau([1, 2, 3], [1, 2])
    with pytest.raises(ConfigError, match="1-D"):
        pearson(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ConfigError, match="must be numbers"):
        kendall_tau(["a", "b"], [1, 2])  # numpy's ValueError before
    for kwargs in ({"seed": -1}, {"seed": 1.5}, {"level": "0.9"}):
        with pytest.raises(ConfigError, match=next(iter(kwargs))):
            bootstrap_ci([1, 2, 3, 4], [1, 3, 2, 4], **kwargs)  # type: ignore[arg-type]


def test_top_k_precision() -> None:
    scores = [5, 4, 3, 2, 1]
    truth = [1, 2, 3, 5, 4]
    assert top_k_precision(scores, truth, k=2) == 0.0  # {0,1} vs {3,4}
    assert top_k_precision(scores, truth, k=3) == pytest.approx(1 / 3)  # {0,1,2} vs {3,4,2}
    assert top_k_precision(truth, truth, k=3) == 1.0
    assert math.isnan(top_k_precision(scores, truth, k=6))
    assert math.isnan(top_k_precision(scores, truth, k=5))  # n == k: trivially 1, so NaN
    assert top_k_precision(scores, truth, k=4) == 0.75
    assert math.isnan(top_k_precision([1, np.nan, 3], [1, 2, 3], k=3))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="k must be"):
            top_k_precision(scores, truth, k=bad)  # type: ignore[arg-type]


def test_rounding_noise_ties_but_small_magnitudes_keep_their_order() -> None:
    b = np.linspace(1.0, 7.0, 9)
    noisy = 0.9 * b / b  # one value, up to noise in the 16th digit
    assert len(set(noisy.tolist())) > 1
    assert math.isnan(kendall_tau(noisy, b))  # a constant score, not a ranking
    wide = [1e-20, 2e-20, 1e-5, 1.0, 1e30]  # synflow spans decades like these
    assert kendall_tau(wide, [1, 2, 3, 4, 5]) == pytest.approx(1.0)
    assert spearman(wide, [1, 2, 3, 4, 5]) == pytest.approx(1.0)
    assert kendall_tau([0.0, 1e-320, 1.0], [1, 2, 3]) == pytest.approx(1.0)  # subnormal
    xs, _, _ = drop_nan_pairs([0.1 + 0.2, np.nan], [1.0, 2.0])
    assert xs.tolist() == [0.1 + 0.2]  # the values themselves, not rounded


def test_regret() -> None:
    assert regret([90.0, 91.0, np.nan], 91.6) == pytest.approx(0.6)
    assert regret([91.6], 91.6) == 0.0
    assert math.isnan(regret([np.nan], 91.6))
    assert math.isnan(regret([], 91.6))
    with pytest.raises(ConfigError, match="below an accuracy the search found"):
        regret([95.0], 90.0)  # was -5.0
    with pytest.raises(ConfigError, match="must be numbers"):
        regret([1.0, 2.0], "abc")  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [12, 250])  # vectorised pair-sign form / scipy loop
def test_bootstrap_kendall_rows_match_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    x, y = _data(n, n, ties=True)
    idx = rng.integers(0, n, size=(20, n))
    got = _kendall_rows(x[idx], y[idx])
    want = [stats.kendalltau(x[i], y[i]).statistic for i in idx]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_bootstrap_rows_match_scalar_functions() -> None:
    x, y = _data(3, 30, ties=True)
    idx = np.random.default_rng(0).integers(0, 30, size=(10, 30))
    np.testing.assert_allclose(
        _spearman_rows(x[idx], y[idx]), [spearman(x[i], y[i]) for i in idx], atol=1e-12
    )
    np.testing.assert_allclose(
        _pearson_rows(x[idx], y[idx]), [pearson(x[i], y[i]) for i in idx], atol=1e-12
    )


def test_bootstrap_ci_is_seeded_and_covers_the_estimate() -> None:
    x, y = _data(11, 80, ties=False)
    for stat, fn in (("kendall", kendall_tau), ("spearman", spearman), ("pearson", pearson)):
        lo, hi = bootstrap_ci(x, y, stat, n_boot=300, seed=5)
        assert (lo, hi) == bootstrap_ci(x, y, stat, n_boot=300, seed=5)
        assert lo < fn(x, y) < hi
        assert lo > 0.0  # the data are positively correlated
    assert bootstrap_ci(x, y, n_boot=300, seed=5) != bootstrap_ci(x, y, n_boot=300, seed=6)
    wide = bootstrap_ci(x, y, n_boot=300, level=0.99, seed=5)
    narrow = bootstrap_ci(x, y, n_boot=300, level=0.5, seed=5)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_bootstrap_ci_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="statistic"):
        bootstrap_ci([1, 2, 3], [1, 2, 3], "tau")
    with pytest.raises(ConfigError, match="n_boot"):
        bootstrap_ci([1, 2, 3], [1, 2, 3], n_boot=0)
    with pytest.raises(ConfigError, match="level"):
        bootstrap_ci([1, 2, 3], [1, 2, 3], level=1.0)


def test_correlation_summary_keys_and_signs() -> None:
    x, y = _data(2, 40, ties=False)
    out = correlation_summary(-x, y, k=5, n_boot=100)
    assert set(out) == {
        "n",
        "n_dropped",
        "kendall_tau",
        "kendall_ci",
        "spearman",
        "spearman_ci",
        "pearson",
        "pearson_ci",
        "top5_precision",
    }
    assert out["kendall_tau"] < 0 and out["kendall_ci"][1] < 0.1  # sign kept
