"""CapacitanceEstimator and CapacitanceCalibrator on synthetic trajectories with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.utils.estimator_checks import check_estimator

from nasnc import ConfigError
from nasnc.capacitance import CapacitanceCalibrator, CapacitanceEstimator, trajectory_features

BUDGET = 1000


def synthetic(seed: int, *, upto: float, noise: float = 0.05, every: int = 5):
    """β(t) = β∞ − a·exp(−t/τ) + noise, t = step / BUDGET, observed up to ``upto`` of the budget."""
    rng = np.random.default_rng(seed)
    beta_inf = rng.uniform(1.0, 10.0)
    a = rng.uniform(0.5, 3.0)
    tau = rng.uniform(0.05, 0.3)
    steps = np.arange(every, int(upto * BUDGET) + 1, every)
    betas = beta_inf - a * np.exp(-steps / BUDGET / tau) + rng.normal(0.0, noise * a, steps.size)
    at_end = beta_inf - a * math.exp(-1.0 / tau)
    return steps, betas, beta_inf, at_end


@pytest.mark.parametrize(
    ("horizon", "upto"), [(1.0, 0.3), (1.0, 0.6), (math.inf, 0.3), (math.inf, 0.6)]
)
def test_limit_within_two_std_for_most_seeds(horizon: float, upto: float) -> None:
    hits = 0
    for seed in range(20):
        steps, betas, beta_inf, at_end = synthetic(seed, upto=upto)
        est = CapacitanceEstimator(horizon=horizon).partial_fit(steps, betas, total_steps=BUDGET)
        mean, std = est.estimate()
        truth = beta_inf if math.isinf(horizon) else at_end
        assert math.isfinite(mean) and 0 < std < math.inf
        hits += abs(mean - truth) <= 2 * std
    assert hits >= 16, f"only {hits} of 20 seeds had the truth within 2 std"


def ar1_synthetic(seed: int, *, upto: float, phi: float = 0.9, noise: float = 0.05):
    """Like :func:`synthetic` but with AR(1) noise (coefficient ``phi``), as real βeff readings."""
    rng = np.random.default_rng(seed)
    beta_inf, a, tau = rng.uniform(1.0, 10.0), rng.uniform(0.5, 3.0), rng.uniform(0.05, 0.3)
    steps = np.arange(5, int(upto * BUDGET) + 1, 5)
    innovations = rng.normal(0.0, noise * a * math.sqrt(1 - phi**2), steps.size)
    errors = np.empty(steps.size)
    errors[0] = rng.normal(0.0, noise * a)
    for i in range(1, steps.size):
        errors[i] = phi * errors[i - 1] + innovations[i]
    betas = beta_inf - a * np.exp(-steps / BUDGET / tau) + errors
    return steps, betas, beta_inf - a * math.exp(-1.0 / tau)


def test_autocorrelated_noise_inflates_the_std() -> None:
    hits = {True: 0, False: 0}
    for seed in range(20):
        steps, betas, at_end = ar1_synthetic(seed, upto=0.6)
        for correct in (True, False):
            est = CapacitanceEstimator(correct_autocorrelation=correct)
            mean, std = est.partial_fit(steps, betas, total_steps=BUDGET).estimate()
            hits[correct] += abs(mean - at_end) <= 2 * std
            if correct:
                assert 0.3 < est.rho_ <= 0.98
            else:
                assert est.rho_ == 0.0
    assert hits[True] >= 16
    assert hits[False] < hits[True]  # the iid model is overconfident here
    # iid noise: (almost) no inflation
    steps, betas, *_ = synthetic(0, upto=0.6)
    assert CapacitanceEstimator().fit(steps, betas, total_steps=BUDGET).rho_ < 0.3


@pytest.mark.parametrize("horizon", [1.0, math.inf])
def test_short_windows_give_vague_not_overconfident_estimates(horizon: float) -> None:
    # 30 readings from the first 3 % of the budget: the prior, not the data, sets the std
    hits = 0
    for seed in range(20):
        steps, betas, beta_inf, at_end = synthetic(seed, upto=0.03, noise=0.02, every=1)
        mean, std = (
            CapacitanceEstimator(horizon=horizon).fit(steps, betas, total_steps=BUDGET).estimate()
        )
        truth = beta_inf if math.isinf(horizon) else at_end
        hits += abs(mean - truth) <= 2 * std
        assert std > 0.05 * abs(truth)
    assert hits >= 12


def test_estimate_is_better_than_the_last_reading_early_on() -> None:
    errors_est, errors_last = [], []
    for seed in range(20):
        steps, betas, beta_inf, _ = synthetic(seed, upto=0.2, noise=0.02)
        est = CapacitanceEstimator(horizon=math.inf).partial_fit(steps, betas, total_steps=BUDGET)
        errors_est.append(abs(est.estimate()[0] - beta_inf))
        errors_last.append(abs(betas[-1] - beta_inf))
    assert np.median(errors_est) < np.median(errors_last)


@pytest.mark.parametrize("horizon", [1.0, math.inf])
def test_std_shrinks_as_the_trajectory_grows(horizon: float) -> None:
    shrinking = 0
    for seed in range(20):
        steps, betas, *_ = synthetic(seed, upto=1.0)
        est = CapacitanceEstimator(horizon=horizon)
        stds = []
        for chunk in np.array_split(np.arange(steps.size), 5):
            est.partial_fit(steps[chunk], betas[chunk], total_steps=BUDGET)
            stds.append(est.estimate()[1])
        assert est.n_samples_seen_ == steps.size
        shrinking += bool(np.all(np.diff(stds) < 0))
        assert stds[-1] < stds[0]
    assert shrinking >= 18


def test_partial_fit_accumulates_like_fit() -> None:
    steps, betas, *_ = synthetic(3, upto=0.5)
    whole = CapacitanceEstimator().fit(steps, betas, total_steps=BUDGET)
    parts = CapacitanceEstimator()
    for chunk in np.array_split(np.arange(steps.size), 4):
        assert parts.partial_fit(steps[chunk], betas[chunk], total_steps=BUDGET) is parts
    assert parts.estimate() == pytest.approx(whole.estimate(), rel=1e-9)
    np.testing.assert_array_equal(parts.steps_, steps)
    refit = whole.fit(steps[:10], betas[:10])  # fit() starts over
    assert refit.n_samples_seen_ == 10 and refit.total_steps_ is None
    assert refit.time_scale_ == steps[9]


def test_predict_is_the_fitted_curve_as_in_sklearn() -> None:
    steps, betas, *_ = synthetic(5, upto=1.0, noise=0.01)
    est = CapacitanceEstimator().fit(steps, betas, total_steps=BUDGET)
    curve = est.predict(steps)
    assert isinstance(curve, np.ndarray) and curve.shape == steps.shape
    mean, std = est.predict(steps, return_std=True)
    np.testing.assert_array_equal(mean, curve)
    assert mean.shape == std.shape == steps.shape
    assert np.sqrt(np.mean((mean - betas) ** 2)) < 3 * est.noise_std_
    assert mean[-1] == pytest.approx(est.estimate()[0])
    # the predictive std of a reading, as BayesianRidge's: the noise is in it (it was the
    # curve's std alone, far below the readings' own scatter)
    assert np.all(std >= est.noise_std_)
    at_end = est.predict([BUDGET], return_std=True)[1][0]
    assert at_end == pytest.approx(math.hypot(est.estimate()[1], est.noise_std_))
    one = CapacitanceEstimator().partial_fit([1], [2.0])
    assert one.predict([1], return_std=True)[1][0] == math.inf  # one reading: no noise known


def test_a_fitted_estimator_keeps_its_basis_until_the_next_fit() -> None:
    # sklearn: set_params changes nothing of a fitted model until it is refitted
    steps, betas, *_ = synthetic(5, upto=1.0, noise=0.01)
    est = CapacitanceEstimator().fit(steps, betas, total_steps=BUDGET)
    before = est.predict([BUDGET])
    for taus in ((0.9, 0.8, 0.7, 0.6, 0.5, 0.4), (0.1,)):
        est.set_params(taus=taus)
        np.testing.assert_array_equal(est.predict([BUDGET]), before)
        assert est.predict([BUDGET])[0] == pytest.approx(est.estimate()[0])
    est.fit(steps, betas, total_steps=BUDGET)  # the next fit takes the new taus
    assert est.taus_.tolist() == [0.1]
    with pytest.raises(ValueError, match="must be 1-D"):
        est.predict([[100, 200], [300, 400]])


def test_a_refused_fit_leaves_no_half_of_the_old_fit() -> None:
    steps, betas, *_ = synthetic(5, upto=1.0, noise=0.01)
    est = CapacitanceEstimator().fit(steps, betas, total_steps=BUDGET)
    with pytest.raises(ValueError, match="finite"):
        est.fit([1, 2], [1.0, math.nan])
    for call in (est.estimate, lambda: est.predict([1])):
        with pytest.raises(NotFittedError):
            call()


def test_a_failed_partial_fit_leaves_the_estimator_as_it_was(monkeypatch) -> None:
    est = CapacitanceEstimator().partial_fit([1, 2], [1.0, 2.0], total_steps=10)
    before = est.estimate()

    def broken(self, taus, horizon):  # a fit that fails inside (sklearn, numerics)
        self.mean_ = -1.0
        raise FloatingPointError("inside the fit")

    monkeypatch.setattr(CapacitanceEstimator, "_refit", broken)
    with pytest.raises(FloatingPointError):
        est.partial_fit([3, 4], [3.0, 4.0])
    monkeypatch.undo()
    assert est.steps_.tolist() == [1.0, 2.0] and est.estimate() == before
    est.partial_fit([3], [3.0])  # it goes on from where it was
    assert est.n_samples_seen_ == 3


@pytest.mark.parametrize("magnitude", [1e-160, 1.0, 1e160])
def test_the_estimate_scales_with_the_readings(magnitude: float) -> None:
    """Readings near 1e160 gave (nan, inf): their squares overflowed."""
    steps, betas = [1, 2, 3, 4], np.array([1.0, 2.0, 3.0, 3.5])
    unit = CapacitanceEstimator().partial_fit(steps, betas, total_steps=10).estimate()
    big = CapacitanceEstimator().partial_fit(steps, betas * magnitude, total_steps=10).estimate()
    assert big[0] == pytest.approx(unit[0] * magnitude, rel=1e-6)
    assert big[1] == pytest.approx(unit[1] * magnitude, rel=1e-6)


def test_degenerate_trajectories() -> None:
    one = CapacitanceEstimator().partial_fit([10], [2.5])
    assert one.estimate() == (2.5, math.inf)
    flat = CapacitanceEstimator().partial_fit(np.arange(1, 50), np.full(49, 7.0), total_steps=100)
    mean, std = flat.estimate()
    assert mean == pytest.approx(7.0)
    assert 0 <= std < 0.01 * 7.0  # flat for half the budget: stays flat, within 1 %


def test_not_fitted() -> None:
    est = CapacitanceEstimator()
    with pytest.raises(NotFittedError):
        est.estimate()
    with pytest.raises(NotFittedError):
        est.predict([1, 2])
    with pytest.raises(NotFittedError):
        CapacitanceCalibrator().predict([[1.0]])


def test_sklearn_conventions() -> None:
    est = CapacitanceEstimator(taus=(0.1, 0.5), horizon=2.0)
    assert est.get_params() == {
        "taus": (0.1, 0.5),
        "horizon": 2.0,
        "max_iter": 300,
        "tol": 1e-6,
        "prior_scale": 0.5,
        "correct_autocorrelation": True,
    }
    with pytest.raises(TypeError):
        CapacitanceEstimator((0.1,))  # type: ignore[misc]  # keyword-only
    est.partial_fit([1, 2, 3], [1.0, 2.0, 2.5])
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "mean_")
    # invalid parameters are stored as given and rejected in partial_fit
    bad = CapacitanceEstimator(taus=(0.1, -1.0))
    with pytest.raises(ValueError, match="taus must be positive"):
        bad.partial_fit([1, 2], [1.0, 2.0])


@pytest.mark.parametrize(
    ("kwargs", "steps", "betas", "fit_kwargs", "match"),
    [
        ({}, [1, 2, 3], [1.0, 2.0], {}, "same length"),
        ({}, [1, 2, 3], [1.0, math.nan, 2.0], {}, "betas must be finite, but got nan at index 1"),
        ({}, [1, 3, 2], [1.0, 2.0, 3.0], {}, "strictly increasing"),
        ({}, [[1, 2]], [[1.0, 2.0]], {}, "must be 1-D"),
        ({}, [], [], {}, "at least one"),
        ({}, [-1, 2], [1.0, 2.0], {}, "non-negative"),
        ({}, [1, 2, 300], [1.0, 2.0, 3.0], {"total_steps": 100}, "must not exceed total_steps=100"),
        ({}, [1, 2], [1.0, 2.0], {"total_steps": 0}, "total_steps must be a positive int"),
        ({}, [1, 2], [1.0, 2.0], {"total_steps": "abc"}, "total_steps must be a positive int"),
        ({}, [1, 2], [1.0, 2.0], {"total_steps": math.nan}, "total_steps must be a positive"),
        ({}, [1, 2], [1.0, 2.0], {"total_steps": math.inf}, "total_steps must be a positive"),
        ({"horizon": "abc"}, [1, 2], [1.0, 2.0], {}, "horizon must be positive"),
        ({"horizon": None}, [1, 2], [1.0, 2.0], {}, "horizon must be positive"),
        ({}, [1, 2], ["a", "b"], {}, "betas must be a 1-D sequence of numbers"),
        ({"horizon": 0.0}, [1, 2], [1.0, 2.0], {}, "horizon must be positive"),
        ({"taus": ()}, [1, 2], [1.0, 2.0], {}, "taus must be positive"),
        ({"max_iter": 0}, [1, 2], [1.0, 2.0], {}, "max_iter=0"),
        ({"tol": -1.0}, [1, 2], [1.0, 2.0], {}, "tol=-1.0"),
    ],
)
def test_estimator_rejects_bad_input(kwargs, steps, betas, fit_kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):  # named, not numpy's or Python's own
        CapacitanceEstimator(**kwargs).partial_fit(steps, betas, **fit_kwargs)


def test_partial_fit_rejects_going_back_or_changing_the_budget() -> None:
    est = CapacitanceEstimator().partial_fit([1, 2, 3], [1.0, 2.0, 3.0], total_steps=100)
    with pytest.raises(ValueError, match=r"continue after the last step seen \(3\)"):
        est.partial_fit([3, 4], [1.0, 2.0])
    with pytest.raises(ValueError, match="total_steps changed from 100 to 200"):
        est.partial_fit([4, 5], [1.0, 2.0], total_steps=200)
    est.partial_fit([4, 5], [3.5, 3.7])  # the budget is remembered
    assert est.total_steps_ == 100 and est.n_samples_seen_ == 5


# ------------------------------------------------------------------ calibrator


def test_calibrator_recovers_a_linear_relation_with_uncertainty() -> None:
    rng = np.random.default_rng(0)
    beta = rng.uniform(1.0, 5.0, 60)
    noise = rng.uniform(0, 1, 60)  # an irrelevant feature
    acc = 0.4 + 0.08 * beta + rng.normal(0, 0.01, 60)
    cal = CapacitanceCalibrator().fit(np.column_stack([beta, noise]), acc)
    assert cal.n_features_in_ == 2
    assert cal.coef_[0] == pytest.approx(0.08, abs=0.01)
    assert abs(cal.coef_[1]) < 0.01
    assert cal.intercept_ == pytest.approx(0.4, abs=0.03)
    test_beta = np.array([[1.5, 0.5], [4.5, 0.5]])
    mean, std = cal.predict(test_beta, return_std=True)
    truth = 0.4 + 0.08 * test_beta[:, 0]
    assert np.all(np.abs(mean - truth) < 3 * std)
    assert np.all((std > 0.005) & (std < 0.05))
    only_mean = cal.predict(test_beta)
    assert isinstance(only_mean, np.ndarray) and only_mean.shape == (2,)
    np.testing.assert_allclose(only_mean, mean)


def test_calibrator_measures_a_negative_sign_too() -> None:
    beta = np.linspace(0.0, 1.0, 30)
    cal = CapacitanceCalibrator().fit(beta[:, None], 0.9 - 0.3 * beta)
    assert cal.coef_[0] < 0
    assert cal.predict([[0.5]])[0] == pytest.approx(0.75, abs=1e-3)


def test_calibrator_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        CapacitanceCalibrator().fit([[1.0]], [0.5])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        CapacitanceCalibrator().fit([[1.0], [2.0], [3.0]], [0.5, 0.6])
    with pytest.raises(ValueError, match="infinity"):
        CapacitanceCalibrator().fit([[1.0], [math.inf]], [0.5, 0.6])
    with pytest.raises(ValueError, match="2D array"):
        CapacitanceCalibrator().fit([1.0, 2.0], [0.5, 0.6])
    with pytest.raises(ConfigError, match="max_iter"):
        CapacitanceCalibrator(max_iter=0).fit([[1.0], [2.0]], [0.5, 0.6])
    cal = CapacitanceCalibrator().fit([[1.0, 2.0], [2.0, 1.0], [3.0, 3.0]], [0.5, 0.6, 0.7])
    with pytest.raises(ValueError, match="3 features, but CapacitanceCalibrator is expecting 2"):
        cal.predict([[1.0, 2.0, 3.0]])


def test_calibrator_works_with_cross_val_score() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(1.0, 5.0, (40, 2))
    y = 0.4 + 0.08 * x[:, 0] + rng.normal(0, 0.01, 40)
    scores = cross_val_score(CapacitanceCalibrator(), x, y, cv=4)
    assert scores.shape == (4,) and np.all(scores > 0.9)  # R², RegressorMixin.score
    neg_mae = cross_val_score(
        CapacitanceCalibrator(), x, y, cv=4, scoring="neg_mean_absolute_error"
    )
    assert np.all(-neg_mae < 0.02)


def test_calibrator_passes_sklearn_estimator_checks() -> None:
    results = check_estimator(CapacitanceCalibrator(), on_fail=None)
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert failed == []


def test_trajectory_features() -> None:
    steps, betas, *_ = synthetic(1, upto=0.5)
    feats = trajectory_features(steps, betas, total_steps=BUDGET)
    assert set(feats) == {"last", "mean", "slope", "estimate", "estimate_std"}
    assert feats["last"] == betas[-1]
    assert feats["slope"] > 0  # the synthetic curve rises
    assert 0 < feats["estimate_std"] < math.inf
    with pytest.raises(ValueError, match="non-empty"):
        trajectory_features([], [])
