"""Helpers of benchmarks/proxy_budget.py (issue 11, lines 4 and 6 on the proxy's runs):
``--set`` parsing and the per-report-point columns read from cache entries."""

from __future__ import annotations

import argparse
import math
from types import ModuleType

import numpy as np
import pytest
from conftest import load_benchmark

from nasnc.proxies import rank_aggregate, tse
from nasnc.space import sample_archs
from nasnc.store import Entry


@pytest.fixture(scope="module")
def budget() -> ModuleType:
    return load_benchmark("proxy_budget")


def test_overrides_take_each_fields_type(budget: ModuleType) -> None:
    got = budget.parse_overrides(
        ["resolution=32", "epochs=4", "augment=true", "probe=64,32", "train_subset=none"]
    )
    assert got == {
        "resolution": 32,
        "epochs": 4.0,
        "augment": True,
        "probe": (64, 32),
        "train_subset": None,
    }
    assert isinstance(got["epochs"], float)


@pytest.mark.parametrize(
    ("pair", "culprit"),
    [("resolutions=32", "'resolutions=32'"), ("epochs", "'epochs'"), ("channels=wide", "'wide'")],
)
def test_bad_override_names_the_culprit(budget: ModuleType, pair: str, culprit: str) -> None:
    with pytest.raises(SystemExit, match=culprit):
        budget.parse_overrides([pair])


def _entry(
    arch: str,
    rng: np.random.Generator,
    n_points: int = 4,
    *,
    seed: int = 0,
    config: dict | None = None,
) -> Entry:
    trajectory = {
        key: rng.uniform(0.1, 1.0, n_points) for key in ("train_loss", "wall_s", *budget_columns())
    }
    return Entry.from_arch(
        arch,
        dataset="cifar10",
        seed=seed,
        config=config or {},
        trajectory=trajectory,
        summary={
            "beta_eff": 1.0,
            "beta_eff_std": 0.0,
            "beta_eff_last": 1.0,
            "proxy_valid_acc": 0.5,
            "cost_s": 1.0,
            "steps": 4,
            "diverged": False,
        },
        scores={k: float(rng.normal()) for k in ("naswot", "synflow", "jacob_cov", "flops")},
    )


def budget_columns() -> tuple[str, ...]:
    return (
        "valid_acc",
        "beta_eff_est",
        "beta_eff_chain",
        "beta_eff_product",
        "beta_eff_chain_sf",
        "beta_eff_product_sf",
        "beta_eff_dw_product_sf",
    )


def test_columns_read_every_point_and_tse_sums_the_losses_so_far(budget: ModuleType) -> None:
    assert set(budget.READINGS.values()) == set(budget_columns())
    rng = np.random.default_rng(0)
    entries = [_entry(str(a), rng) for a in sample_archs(6, seed=3, unique=True)]
    cols, wall, n_points = budget.columns(entries)
    assert n_points == 4
    assert wall.shape == (6, 4)
    for i, e in enumerate(entries):
        for p in range(1, 5):
            assert cols[f"acc@{p}"][i] == e.trajectory["valid_acc"][p - 1]
            assert cols[f"beta_eff@{p}"][i] == e.trajectory["beta_eff_est"][p - 1]
            assert cols[f"tse@{p}"][i] == pytest.approx(tse(e.trajectory["train_loss"][:p]))
    # the aggregate is over these cells only
    free = {k: cols[k] for k in ("naswot", "synflow", "jacob_cov", "flops")}
    np.testing.assert_array_equal(cols["aggregate"], rank_aggregate(free))
    assert cols["tse@4"][0] < cols["tse@1"][0]  # losses are positive: the sum only falls


def test_points_shown_are_powers_of_two_and_the_last(budget: ModuleType) -> None:
    assert budget._points(8) == [1, 2, 4, 8]
    assert budget._points(6) == [1, 2, 4, 6]
    assert budget._points(1) == [1]


def test_shortlist_picks_follow_their_rules(budget: ModuleType) -> None:
    rng = np.random.default_rng(1)
    n = 60
    gt = rng.uniform(80, 92, n)
    free = {k: rng.normal(size=n) for k in ("naswot", "synflow", "jacob_cov", "flops")}
    cols = {**free, "aggregate": -rank_aggregate(free)}  # a decoy: the pool's own is used
    cols["acc@8"] = gt.copy()  # a perfect trained reading
    cols["beta_eff@8"] = -gt  # a perfectly wrong one
    for name in ("dw_product_sf@8", "dw_product_sf@1"):
        cols[name] = rng.normal(size=n)
    got = budget.shortlist(cols, gt, pool=40, top_k=8, draws=30)
    assert set(got) == {*budget.PICKS, "best in pool", "best in shortlist"}
    assert all(v.shape == (30,) for v in got.values())
    np.testing.assert_array_equal(got["acc@8"], got["best in shortlist"])
    assert np.all(got["beta_eff@8"] <= got["best in shortlist"])
    assert np.all(got["best in shortlist"] <= got["best in pool"])
    # the default picks the top of the pool's own aggregate: recomputed here, same draws
    pools = np.random.default_rng(0)
    for r in range(30):
        idx = pools.choice(n, size=40, replace=False)
        agg = rank_aggregate({k: free[k][idx] for k in free})
        assert got["aggregate (default)"][r] == gt[idx[int(np.argmax(agg))]]
    # the worst of the shortlist is what the wrong reading picks, below the default on average
    assert got["beta_eff@8"].mean() < got["aggregate (default)"].mean() < got["acc@8"].mean()


def test_complete_runs_drop_missing_diverged_and_stopped_ones(budget: ModuleType) -> None:
    rng = np.random.default_rng(2)
    a, b, c, d = (str(x) for x in sample_archs(4, seed=5, unique=True))
    full, short = _entry(a, rng), _entry(b, rng, n_points=2)  # b: a pruned (partial) run
    diverged = _entry(c, rng)
    diverged.summary["diverged"] = True
    found = [(a, full), (b, short), (c, diverged), (d, None)]
    assert budget.complete_runs(found) == [(a, full)]
    assert budget.complete_runs([(d, None)]) == []


def test_axis_summary_reads_the_last_point_and_its_cost(budget: ModuleType) -> None:
    from nasnc.metrics import correlation_summary

    rng = np.random.default_rng(1)
    entries = [_entry(str(a), rng) for a in sample_archs(12, seed=4, unique=True)]
    cols, wall, n_points = budget.columns(entries)
    gt = rng.normal(size=12)
    got = budget.axis_summary(cols, wall, n_points, gt)
    assert got["n"] == 12
    assert got["s_per_cell"] == pytest.approx(np.median(wall[:, -1]))

    def tau(x: np.ndarray) -> float:
        return correlation_summary(x, gt, n_boot=1000, seed=0)["kendall_tau"]

    assert got["aggregate"]["kendall_tau"] == tau(cols["aggregate"])
    streamed = [n for n in budget.AXES_READINGS if f"{n}@4" in cols]
    assert streamed == ["acc", "beta_eff", "chain_sf"]  # no snapshots, no probe_dw
    for name in streamed:
        assert got[name]["kendall_tau"] == tau(cols[f"{name}@4"])
        assert got[name]["kendall_tau"] != tau(cols[f"{name}@1"])  # the last point, not the first


def test_columns_recompute_the_probes_weight_change_from_snapshots(budget: ModuleType) -> None:
    import dataclasses

    from nasnc.capacitance import snapshot_beta_eff
    from nasnc.store import Snapshots

    rng = np.random.default_rng(2)
    entries = []
    for a in sample_archs(5, seed=5, unique=True):
        layers = [rng.normal(size=(5, 8, 4)), rng.normal(size=(5, 3, 8))]  # W0 + 4 points
        snaps = Snapshots("probe", ["probe.layers.0", "probe.layers.1"], range(5), layers)
        entries.append(dataclasses.replace(_entry(str(a), rng), snapshots=snaps))
    cols, _, n_points = budget.columns(entries)
    assert n_points == 4
    for i, e in enumerate(entries):
        raw = [np.asarray(e.snapshots.layer(j), dtype=np.float64) for j in range(2)]
        want = snapshot_beta_eff([w - w[0] for w in raw], "beta_eff_chain_sf")
        got = [cols[f"probe_dw_chain_sf@{p}"][i] for p in range(1, 5)]
        np.testing.assert_allclose(got, want[1:], rtol=1e-12)  # point p is snapshot p
    # a run that streamed the column is read as streamed, not recomputed
    streamed = dataclasses.replace(
        entries[0],
        trajectory={**entries[0].trajectory, "beta_eff_probe_dw_chain_sf": np.arange(1.0, 5.0)},
    )
    cols, _, _ = budget.columns([streamed, *entries[1:]])
    assert [cols[f"probe_dw_chain_sf@{p}"][0] for p in range(1, 5)] == [1.0, 2.0, 3.0, 4.0]
    # runs without snapshots have no such column, and the --axes summary says NaN
    plain, wall, _ = budget.columns([_entry(str(a), rng) for a in sample_archs(5, seed=5)])
    assert not any(k.startswith("probe_dw") for k in plain)
    summary = budget.axis_summary(plain, wall, 4, rng.normal(size=5))
    assert math.isnan(summary["probe_dw_chain_sf"]["kendall_tau"])


def test_final_stage_retrains_the_pick_scores_top_and_picks_by_the_longer_run(
    budget: ModuleType,
) -> None:
    rng = np.random.default_rng(3)
    n = 30
    gt = rng.uniform(85.0, 92.0, n)
    aggregate = rng.normal(size=n)
    beta = rng.normal(size=n)
    # a longer run that knows the truth: the final stage picks the best of the pick
    # score's top m, so it is never below the study's pick, and over every cell it is
    # the oracle
    got = budget.final_stage(aggregate, beta, gt, gt, completed=12, draws=200)
    names = list(got)
    pick, top3, top6, every, oracle = (got[k] for k in names)
    assert np.all(top3 >= pick) and np.all(top6 >= top3)
    assert np.array_equal(every, oracle)
    assert np.mean(top6) > np.mean(pick)
    # a longer run that inverts the truth picks the worst of the top m instead
    inverted = budget.final_stage(aggregate, beta, -gt, gt, completed=12, draws=200)
    assert np.all(inverted[names[2]] <= inverted[names[0]])
    # the draws are the same for both: the study's pick does not depend on the long run
    assert np.array_equal(inverted[names[0]], pick)
    # one draw by hand: the pick is the top of the rank aggregate of aggregate and βeff
    one = budget.final_stage(aggregate, beta, gt, gt, completed=n, draws=1)
    combined = rank_aggregate({"aggregate": aggregate, "beta_eff": beta})
    assert one[names[0]][0] == gt[int(np.argmax(combined))]
    top = np.argsort(-combined, kind="stable")[:3]
    assert one[names[1]][0] == gt[top].max()


def test_halves_of_a_ranked_sample_are_disjoint_and_span_it(budget: ModuleType) -> None:
    cells = sample_archs(9, seed=4, unique=True)
    odd, even = budget.half_of(cells, "odd"), budget.half_of(cells, "even")
    assert odd == [cells[i] for i in (0, 2, 4, 6, 8)] and even == [cells[i] for i in (1, 3, 5, 7)]
    assert not set(map(str, odd)) & set(map(str, even))
    assert budget.half_of(cells, None) == cells


def test_skip_takes_the_ranks_after_the_best_and_halves_them(
    budget: ModuleType, monkeypatch
) -> None:
    ranked = sample_archs(12, seed=6, unique=True)
    asked: list[int] = []

    def top_of_space(n: int, cache: str, data_root: str) -> tuple:
        asked.append(n)
        return tuple((a, float(-i)) for i, a in enumerate(ranked[:n]))

    monkeypatch.setattr(budget, "top_of_space", top_of_space)
    args = argparse.Namespace(
        top=True, n=6, skip=4, half=None, cache="c", data_root="d", sample=None
    )  # fmt: skip
    assert budget.budget_sample(args) == ranked[4:10] and asked == [10]
    assert list(budget.pool_aggregate(args, [str(ranked[5])])) == [-5.0]
    odd = budget.budget_sample(argparse.Namespace(**{**vars(args), "half": "odd"}))
    even = budget.budget_sample(argparse.Namespace(**{**vars(args), "half": "even"}))
    assert odd == [ranked[i] for i in (4, 6, 8)] and even == [ranked[i] for i in (5, 7, 9)]
    assert budget.sample_label(args) == "ranks 5-10 of the space by the free aggregate"
    first = argparse.Namespace(**{**vars(args), "skip": 0})
    assert budget.budget_sample(first) == ranked[:6]
    assert budget.sample_label(first) == "the top 6 of the space by the free aggregate"


def test_seed_agreement_reads_each_train_seeds_own_runs(
    budget: ModuleType, tmp_path, synthetic_root, builtin, monkeypatch
) -> None:
    from conftest import SYNTHETIC_TRAIN

    from nasnc.pipeline import ProxyConfig, load_proxy_data, proxy_key, resolved_config
    from nasnc.store import Store

    archs = [str(a) for a in sample_archs(8, seed=5, unique=True, exclude_zero=True)]
    config = ProxyConfig(snapshots="probe", train_subset=SYNTHETIC_TRAIN, valid_size=500)
    store = Store(tmp_path / "cache")
    rng = np.random.default_rng(0)
    for seed, order in ((0, 1.0), (1, -1.0)):  # seed 1 reverses βeff's order, keeps accuracy's
        data = load_proxy_data(config, synthetic_root, device="cpu", seed=seed)
        for i, arch in enumerate(archs):
            entry = _entry(arch, rng, seed=seed, config=resolved_config(config, data, device="cpu"))
            entry.trajectory["beta_eff_est"][-1] = order * i
            entry.trajectory["valid_acc"][-1] = 0.1 * i
            assert store.put(entry) == proxy_key(arch, config, seed, data, device="cpu")
    monkeypatch.setattr(budget, "budget_sample", lambda args: archs)
    monkeypatch.setattr(
        budget, "pool_aggregate", lambda args, cells: np.arange(len(cells), 0, -1.0)
    )
    args = argparse.Namespace(
        top=True, n=8, skip=0, half=None, cache=str(tmp_path / "cache"), data_root=str(synthetic_root),
        truth="cifar10-valid", train_seed=0,
    )  # fmt: skip
    assert len(budget.sample_entries(args, config)[1]) == 8
    table = budget.seed_agreement(args, config, 1)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()}
    assert "| -1.000 |" in rows["βeff@4"]  # the seeds' βeff disagree entirely
    assert "| +1.000 |" in rows["accuracy@4"]
    assert "(both)" in rows["βeff@4, the mean of its two seeds' ranks"]
    missing = argparse.Namespace(**{**vars(args), "train_seed": 7})
    assert budget.sample_entries(missing, config)[1] == []
    assert "too few" in budget.seed_agreement(missing, config, 1)


def test_axis_gaps_pair_two_configs_over_the_cells_both_ran(budget: ModuleType) -> None:
    load_benchmark("search_regret")  # axis_gaps reads its paired bootstrap
    rng = np.random.default_rng(4)
    archs = [str(a) for a in sample_archs(60, seed=4, unique=True)]
    truth = {a: float(v) for a, v in zip(archs, rng.normal(size=60))}
    acc = np.array([truth[a] for a in archs])
    noise = rng.normal(size=60)
    base = (archs, {"acc@8": noise, "beta_eff@8": acc + rng.normal(size=60)}, 8)
    # the other config ran 50 of the cells, in another order; its acc knows the truth
    order = archs[10:][::-1]
    pick = [archs.index(a) for a in order]
    other = (order, {"acc@4": acc[pick], "beta_eff@4": noise[pick]}, 4)
    gaps = budget.axis_gaps(base, other, truth)
    gap, low, high, n = gaps["acc"]
    assert n == 50 and gap > 0.8 and low > 0.5
    gap, low, high, n = gaps["beta_eff"]
    assert gap < -0.2 and high < 0
    assert math.isnan(gaps["aggregate"][0]) and gaps["aggregate"][3] == 0  # no column
