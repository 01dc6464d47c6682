"""The rank aggregate (sum of log normalised ranks over a pool) and its use in compare."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nasnc import ConfigError
from nasnc.proxies import (
    AGGREGATES,
    aggregate_against,
    compute_proxies,
    expand_proxies,
    log_rank,
    rank_aggregate,
)


def test_log_rank_is_log_of_rank_over_n_with_ties_averaged() -> None:
    out = log_rank([10.0, 30.0, 20.0, 20.0])
    assert out.tolist() == pytest.approx(
        [math.log(1 / 4), 0.0, math.log(2.5 / 4)] * 1 + [math.log(2.5 / 4)]
    )


def test_nan_worst_ranks_below_every_finite_value() -> None:
    out = log_rank([1.0, math.nan, 3.0, math.inf * 0])
    # two NaNs share ranks 1 and 2 (average 1.5) of n = 4
    assert out[1] == out[3] == pytest.approx(math.log(1.5 / 4))
    assert out[0] == pytest.approx(math.log(3 / 4)) and out[2] == 0.0


def test_nan_propagate_leaves_nan_and_ranks_the_finite_ones() -> None:
    out = log_rank([1.0, math.nan, 3.0], nan="propagate")
    assert math.isnan(out[1])
    assert out[0] == pytest.approx(math.log(1 / 2)) and out[2] == 0.0
    agg = rank_aggregate({"a": [1.0, 2.0, 3.0], "b": [1.0, math.nan, 3.0]}, nan="propagate")
    assert math.isnan(agg[1]) and agg[2] == 0.0


def test_aggregate_sums_weighted_log_ranks_and_is_zero_for_the_best_in_all() -> None:
    cols = {"a": [1.0, 2.0, 3.0], "b": [3.0, 2.0, 1.0], "c": [0.0, 5.0, 9.0]}
    agg = rank_aggregate(cols, names=["a", "c"])
    assert agg[2] == 0.0 and np.argmax(agg) == 2
    expected = np.log(np.array([1, 2, 3]) / 3) * 2
    assert agg == pytest.approx(expected)
    weighted = rank_aggregate(cols, weights={"a": 1.0, "b": 2.0})
    assert weighted == pytest.approx(np.log([1 / 3, 2 / 3, 1.0]) + 2 * np.log([1.0, 2 / 3, 1 / 3]))
    # a zero weight leaves a score out, even a missing one
    assert rank_aggregate(cols, weights={"a": 1.0, "zz": 0.0}) == pytest.approx(
        np.log([1 / 3, 2 / 3, 1])
    )


def test_a_negative_weight_ranks_the_negated_score_with_its_magnitude() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=40), rng.normal(size=40)
    b[[3, 7]] = math.nan  # a missing score stays the worst either way round
    turned = rank_aggregate({"a": a, "b": b}, weights={"a": 1.0, "b": -0.5})
    negated = rank_aggregate({"a": a, "nb": -b}, weights={"a": 1.0, "nb": 0.5})
    assert turned == pytest.approx(negated)
    assert (turned <= 0).all()  # never the old w * log(r / n), which went above zero
    # the cell lowest on b (and not missing) gains most from the turned score
    lone = rank_aggregate({"b": b}, weights={"b": -1.0})
    assert np.argmax(lone) == np.nanargmin(b) and lone[np.nanargmin(b)] == 0.0
    assert lone[3] == lone[7] == pytest.approx(np.log(1.5 / 40))


def test_aggregate_is_invariant_to_monotone_transforms_of_a_score() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    base = rank_aggregate({"a": a, "b": b})
    assert rank_aggregate({"a": np.exp(a), "b": 3 * b + 1}) == pytest.approx(base)


def test_a_cell_against_a_pool_is_ranked_as_if_it_were_in_it() -> None:
    pool = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([3.0, 1.0, 2.0])}
    value = aggregate_against(pool, {"a": 2.5, "b": 0.5})
    joined = rank_aggregate({"a": [1, 2, 3, 2.5], "b": [3, 1, 2, 0.5]})
    assert value == pytest.approx(joined[-1])


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="'zz'"):
        rank_aggregate({"a": [1.0]}, names=["zz"])
    with pytest.raises(ConfigError, match="differ in length"):
        rank_aggregate({"a": [1.0], "b": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="nan="):
        rank_aggregate({"a": [1.0]}, nan="omit")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least one"):
        rank_aggregate({"a": [1.0]}, weights={"a": 0.0})
    cols = {"naswot": [1.0, 2.0, 3.0], "grad_norm": [1.0, 2.0, 3.0]}
    with pytest.raises(ConfigError, match="'grad_nrom', which is not among the scores"):
        # the typo used to leave grad_norm at +1: the order of the intended -1 reversed
        rank_aggregate(cols, names=["naswot", "grad_norm"], weights={"grad_nrom": -1})
    with pytest.raises(ConfigError, match="finite numbers"):
        rank_aggregate(cols, weights={"naswot": "x"})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="not one string"):
        rank_aggregate(cols, names="naswot")
    with pytest.raises(ConfigError, match="not one string"):
        expand_proxies("params")  # was read as the proxies p, a, r, a, m, s


def test_aggregate_is_a_pool_score_not_a_network_proxy() -> None:
    assert expand_proxies(["params", "aggregate", "naswot"]) == (
        ("params", "naswot", "synflow", "jacob_cov", "flops"),
        ("aggregate",),
    )
    import torch
    from torch import nn

    with pytest.raises(ConfigError, match="pool"):
        compute_proxies(
            nn.Linear(3, 2), torch.randn(2, 3), torch.tensor([0, 1]), names=["aggregate"]
        )
    assert set(AGGREGATES["aggregate"]) == {"naswot", "synflow", "jacob_cov", "flops"}


def test_compare_reports_the_aggregate_over_the_compared_cells() -> None:
    from nasnc.analysis import compare_scores
    from nasnc.bench import open_benchmark
    from nasnc.space import sample_archs
    from nasnc.testing import make_entry

    truth = open_benchmark("builtin")
    archs = sample_archs(30, seed=3, unique=True, exclude_zero=True)
    rng = np.random.default_rng(0)
    entries = []
    for arch in archs:
        acc = truth.get(str(arch), "cifar10-valid", "valid")
        e = make_entry(str(arch))
        # components that track the truth, plus noise: their aggregate must track it too
        e.scores = {n: float(acc + rng.normal(scale=2.0)) for n in AGGREGATES["aggregate"]}
        entries.append(e)
    result = compare_scores(entries, truth, "cifar10-valid", n_boot=10, return_rows=True)
    assert "aggregate" in result["scores"]
    agg_tau = result["scores"]["aggregate"]["kendall_tau"]
    assert agg_tau > 0.5
    assert agg_tau >= min(result["scores"][n]["kendall_tau"] for n in AGGREGATES["aggregate"])
    # the aggregate of each row is its rank aggregate over the compared cells as the pool
    rows = result["rows"]
    parts = AGGREGATES["aggregate"]
    assert len(rows) == 30
    want = rank_aggregate({n: np.array([r[n] for r in rows]) for n in parts}, names=parts)
    np.testing.assert_allclose([r["aggregate"] for r in rows], want)
