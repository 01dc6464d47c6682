"""Helpers of benchmarks/capacitance_study.py (issue 11, lines 1 and 6): the probe on
cached features, the early-fraction predictions, partial τ."""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
import pytest
import torch
from conftest import load_benchmark

from nasnc.data import DeviceTransform
from nasnc.models import build_network
from nasnc.pipeline import ProxyConfig


@pytest.fixture(scope="module")
def study() -> ModuleType:
    return load_benchmark("capacitance_study")


# ------------------------------------------------------------------ line 6 helpers
def test_early_mask_includes_the_boundary(study: ModuleType) -> None:
    steps = np.arange(1, 101)
    assert study.early(steps, 0.1, 100).sum() == 10
    assert study.early(steps, 0.25, 100).sum() == 25
    assert study.early(steps, 1.0, 100).all()


@pytest.mark.parametrize(("a", "b", "c"), [(0.6, 0.1, 0.5), (0.45, 0.05, 1.0), (0.8, 0.3, 0.3)])
def test_pow3_recovers_the_end_of_a_power_law_from_its_first_quarter(
    study: ModuleType, a: float, b: float, c: float
) -> None:
    total = 400
    steps = np.arange(5, total + 1, 5, dtype=float)
    acc = a - b * (steps / total) ** -c
    m = study.early(steps, 0.25, total)
    pred = study.extrapolate_pow3(steps[m], acc[m], total)
    assert pred == pytest.approx(a - b, abs=2e-3)
    # the last early reading is a worse forecast of a rising curve
    assert abs(pred - (a - b)) < abs(acc[m][-1] - (a - b))


def test_pow3_is_clipped_and_falls_back_to_the_last_reading(study: ModuleType) -> None:
    assert study.extrapolate_pow3(np.array([10.0, 20.0]), np.array([0.2, 0.3]), 100) == 0.3
    assert math.isnan(study.extrapolate_pow3(np.array([]), np.array([]), 100))
    noisy = np.random.default_rng(0).uniform(0, 1, 30)
    pred = study.extrapolate_pow3(np.arange(1.0, 31.0), noisy, 300)
    assert 0.0 <= pred <= 1.0


def test_brr_estimate_finds_the_converged_value(study: ModuleType) -> None:
    steps = np.arange(1, 401, dtype=float)
    betas = 5.0 - 2.0 * np.exp(-steps / 60.0)
    m = study.early(steps, 0.25, 400)
    assert study.brr_estimate(steps[m], betas[m], 400) == pytest.approx(betas[-1], rel=0.05)
    assert math.isnan(study.brr_estimate(steps[:1], betas[:1], 400))
    with_nan = betas.copy()
    with_nan[::7] = np.nan
    assert math.isfinite(study.brr_estimate(steps, with_nan, 400))


# ------------------------------------------------------------------ line 1 helpers
def test_standardise_uses_the_training_statistics_and_zeroes_dead_columns(
    study: ModuleType,
) -> None:
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(200, 4, generator=gen) * 3 + 1
    train[:, 2] = 7.0  # a dead feature
    valid = torch.randn(50, 4, generator=gen)
    z_train, z_valid = study.standardise(train, valid)
    assert torch.allclose(z_train.mean(0)[[0, 1, 3]], torch.zeros(3), atol=1e-5)
    assert torch.allclose(z_train.std(0)[[0, 1, 3]], torch.ones(3), atol=1e-5)
    assert torch.all(z_train[:, 2] == 0)
    assert torch.isfinite(z_valid).all()
    mean, std = train.mean(0), train.std(0)
    assert torch.allclose(z_valid[:, 0], (valid[:, 0] - mean[0]) / std[0], atol=1e-5)


def test_pooled_features_are_the_networks_own_and_restore_the_mode(study: ModuleType) -> None:
    torch.manual_seed(0)
    model = build_network(
        "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
        channels=4,
        cells_per_stage=1,
        probe=(8,),
    ).train()
    x = torch.randint(0, 256, (7, 3, 8, 8), dtype=torch.uint8)
    transform = DeviceTransform((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), device="cpu")
    feats = study.pooled_features(model, x, transform, batch=3)
    assert model.training
    assert feats.shape == (7, model.feature_dim)
    assert not feats.requires_grad
    with torch.no_grad():
        expected = model.eval().features(transform.eval(x))
    assert torch.allclose(feats, expected, atol=1e-6)


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=gen)
    centres = torch.randn(10, 6, generator=torch.Generator().manual_seed(99)) * 2
    return centres[y] + torch.randn(n, 6, generator=gen), y


def test_train_probe_streams_every_step_and_learns(study: ModuleType) -> None:
    train_x, train_y = _blobs(600, 0)
    valid_x, valid_y = _blobs(200, 1)
    config = ProxyConfig(probe=(16, 8), batch_size=100)
    run = study.train_probe(
        train_x, train_y, valid_x, valid_y, config, epochs=4, eval_every=5, seed=0
    )
    assert run["total_steps"] == 24 and not run["diverged"]
    assert run["step"].tolist() == list(range(1, 25))
    for v in study.PROBE_VARIANTS:
        assert run[v].shape == (24,) and np.isfinite(run[v]).all()
    assert run["acc_step"].tolist() == [5, 10, 15, 20, 24]
    assert run["acc"][-1] > 0.5  # separable blobs; chance is 0.1
    # the same seed gives the same run
    again = study.train_probe(
        train_x, train_y, valid_x, valid_y, config, epochs=4, eval_every=5, seed=0
    )
    assert np.array_equal(run["chain_sf"], again["chain_sf"])

    scores = study.probe_scores(run, "probe_k0", "lc_k0")
    assert scores["probe_k0_acc"] == run["acc"][-1]
    assert scores["probe_k0_chain_sf_last"] == run["chain_sf"][-1]
    for f in (10, 25):
        for v in study.PROBE_VARIANTS:
            assert math.isfinite(scores[f"lc_k0_f{f}_{v}_brr"])
    # 10 % of 24 steps holds no accuracy reading (the first is at step 5): NaN, not a guess
    assert math.isnan(scores["lc_k0_f10_acc_last"])
    assert math.isnan(scores["lc_k0_f10_acc_pow3"])
    # 25 % holds one reading: too few for the power law, which falls back to it
    assert scores["lc_k0_f25_acc_last"] == run["acc"][0]
    assert scores["lc_k0_f25_acc_pow3"] == run["acc"][0]


def test_probe_scores_of_a_diverged_run_are_empty(study: ModuleType) -> None:
    run = {"total_steps": 10, "diverged": True, "acc": np.array([0.1])}
    assert study.probe_scores(run, "p", "l") == {}


# ------------------------------------------------------------------ line 5 helper
def test_partial_tau_shrinks_a_shared_cause_and_keeps_an_independent_one(
    study: ModuleType,
) -> None:
    from scipy.stats import kendalltau

    rng = np.random.default_rng(0)
    z = rng.normal(size=400)
    x = z + 0.3 * rng.normal(size=400)
    y = z + 0.3 * rng.normal(size=400)
    raw = kendalltau(x, y).statistic
    # Kendall's partial τ is not a conditional correlation: it shrinks, not zeroes, a shared cause
    assert study.partial_tau(x, y, z) < 0.4 * raw
    txz, tyz = kendalltau(x, z).statistic, kendalltau(y, z).statistic
    expected = (raw - txz * tyz) / math.sqrt((1 - txz**2) * (1 - tyz**2))
    assert study.partial_tau(x, y, z) == pytest.approx(expected)
    unrelated = rng.normal(size=400)
    assert study.partial_tau(x, y, unrelated) == pytest.approx(raw, abs=0.05)
    assert math.isnan(study.partial_tau(z, y, z))


# ------------------------------------------------------------------ line 3: gradients
def test_gradient_betas_are_the_variants_of_the_loss_gradient(study: ModuleType) -> None:
    from types import SimpleNamespace

    from nasnc.capacitance import coupling_graph, network_beta_eff

    torch.manual_seed(0)
    data = SimpleNamespace(
        train_x=torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8),
        train_y=torch.arange(8) % 10,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )
    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    model = build_network(arch, channels=4, cells_per_stage=1)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    got = study._gradient_betas(model, data)
    assert sorted(got) == sorted(
        "grad_init" + s for s in ("_chain", "_product", "_chain_sf", "_product_sf")
    )
    assert all(math.isfinite(v) and v > 0 for v in got.values())
    for k, v in model.named_parameters():  # a backward pass, no step
        assert torch.equal(v, before[k])
    # by hand: the same graph, the gradients of the batch's mean cross-entropy
    graph = coupling_graph(model.eval(), torch.zeros(1, 3, 8, 8))
    model.train().zero_grad()
    x, y = study._batch(data)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    want = network_beta_eff(graph, [w.grad for w in graph.weights(model)]).tolist()
    names = ["grad_init_chain", "grad_init_product", "grad_init_chain_sf", "grad_init_product_sf"]
    assert [got[n] for n in names] == pytest.approx(want, rel=1e-6)
    # the free score of nasnc.proxies is this study's grad_init_product_sf
    from nasnc.proxies import beta_eff_grad

    free = beta_eff_grad(model, *study._batch(data))
    assert free == pytest.approx(got["grad_init_product_sf"], rel=1e-5)


def test_rates_are_the_change_over_the_first_epoch_where_both_ends_exist(
    study: ModuleType,
) -> None:
    cols = {
        "net_init_chain_sf": np.array([1.0, 2.0, math.nan]),
        "net_ep1_chain_sf": np.array([1.5, 1.0, 3.0]),
        "grad_init_product_sf": np.array([4.0, 5.0, 6.0]),
        "grad_ep1_product_sf": np.array([2.0, 7.0, 6.0]),
        "net_ep1_product": np.array([1.0, 1.0, 1.0]),  # no reading at init: no rate
    }
    got = study.add_rates(cols)
    assert set(got) - set(cols) == {"rate_ep1_chain_sf", "grad_rate_ep1_product_sf"}
    np.testing.assert_array_equal(got["rate_ep1_chain_sf"], [0.5, -1.0, math.nan])
    np.testing.assert_array_equal(got["grad_rate_ep1_product_sf"], [-2.0, 2.0, 0.0])
    assert "rate_ep1_chain_sf" not in cols  # the caller's columns are left alone
    cost = {"cost_train": np.array([5.0, 6.0, 7.0]), "cost_grad": np.array([0.1] * 3)}
    np.testing.assert_array_equal(study.score_cost("grad_rate_ep1_product_sf", cost), [5, 6, 7])
    np.testing.assert_array_equal(study.score_cost("grad_ep1_chain", cost), [5, 6, 7])
    np.testing.assert_array_equal(study.score_cost("grad_init_chain", cost), [0.1] * 3)


def test_the_train_pass_records_the_gradient_of_the_trained_network(study: ModuleType) -> None:
    from nasnc.data import ProxyData

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (96, 3, 8, 8), dtype=torch.uint8, generator=gen)
    y = torch.arange(96) % 10
    data = ProxyData("toy", 10, 8, x[:64], y[:64], x[64:], y[64:], (0.5,) * 3, (0.25,) * 3)
    config = ProxyConfig(resolution=8, channels=4, batch_size=16, epochs=2, probe=(8,))
    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    row = study.measure(arch, config, data, ["init", "grad", "train"])
    names = ("_chain", "_product", "_chain_sf", "_product_sf")
    for s in names:
        assert math.isfinite(row["grad_ep1" + s]) and row["grad_ep1" + s] > 0
    # four steps of training moved the gradient's couplings away from initialisation
    assert all(row["grad_ep1" + s] != row["grad_init" + s] for s in names)
    cols = {k: np.array([v]) for k, v in row.items() if isinstance(v, float)}
    rates = study.add_rates(cols)
    for s in names:
        assert rates["rate_ep1" + s][0] == row["net_ep1" + s] - row["net_init" + s]
        assert rates["grad_rate_ep1" + s][0] == row["grad_ep1" + s] - row["grad_init" + s]


def test_the_train_pass_records_the_probes_own_weight_change(study: ModuleType) -> None:
    from nasnc.capacitance import (
        VARIANTS,
        CapacitanceProbe,
        ProbeWeightChangeObserver,
        beta_eff_variants,
    )

    torch.manual_seed(0)
    probe = CapacitanceProbe(6, 3, (5,))
    p0 = [layer.weight.detach().clone() for layer in probe.linears]
    observer = ProbeWeightChangeObserver(VARIANTS)
    observer.on_train_start(probe, total_steps=0)
    with torch.no_grad():
        for layer in probe.linears:
            layer.weight.add_(torch.randn_like(layer.weight) * 0.1)
    got = study._probe_weight_change(observer, "pdw_ep1")
    delta = [layer.weight.double() - w.double() for layer, w in zip(probe.linears, p0)]
    want = beta_eff_variants(delta, dtype=torch.float64).tolist()
    names = ["pdw_ep1_chain", "pdw_ep1_product", "pdw_ep1_chain_sf", "pdw_ep1_product_sf"]
    assert [got[n] for n in names] == pytest.approx(want, rel=1e-12)
    # it reads the change, not the weights: the trained weights themselves give other values
    weights = [layer.weight.detach().double() for layer in probe.linears]
    assert beta_eff_variants(weights).tolist() != pytest.approx(want, rel=1e-3)


def test_sample_tags_name_the_files_of_a_sample(study: ModuleType, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    assert study.sample_tag(1) == "seed1"
    assert study.sample_tag(None, "E") == "sampleE"
    (tmp_path / "seed1-n150-train-shard0of1.jsonl").write_text(json.dumps({"arch": "a", "x": 1}))
    (tmp_path / "sampleE-n150-train-shard0of1.jsonl").write_text(json.dumps({"arch": "b", "x": 2}))
    assert list(study.load_rows(tmp_path, "seed1", 150)) == ["a"]
    assert list(study.load_rows(tmp_path, "sampleE", 150)) == ["b"]


def _toy_data():  # type: ignore[no-untyped-def]
    from nasnc.data import ProxyData

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (96, 3, 8, 8), dtype=torch.uint8, generator=gen)
    y = torch.arange(96) % 10
    return ProxyData("toy", 10, 8, x[:64], y[:64], x[64:], y[64:], (0.5,) * 3, (0.25,) * 3)


def test_probe0_seed_pair_zero_is_the_probe_runs_k0_and_other_seeds_differ(
    study: ModuleType,
) -> None:
    data = _toy_data()
    config = ProxyConfig(resolution=8, channels=4, batch_size=16, epochs=2, probe=(8,))
    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    kw = {"probe_epochs": 2, "probe_eval_every": 2}
    full = study.measure(arch, config, data, ["probe"], **kw)
    alone = study.measure(arch, config, data, ["probe0"], **kw)
    k0 = [k for k in alone if k.startswith("probe_k0_") and not k.startswith("probe_k0_b")]
    assert "probe_k0_product_brr" in k0 and "probe_k0_acc" in k0
    # the (0, 0) pair is line 1's k = 0 run, reading for reading, without the training
    assert {k: alone[k] for k in k0} == {k: full[k] for k in k0}
    assert "acc_ep1" not in alone and alone["cost_probe0"] > 0
    for tag in ("b1p0", "b0p1"):
        other = alone[f"probe_k0_{tag}_product_last"]
        assert math.isfinite(other) and other > 0
        # another backbone or probe seed is another draw, not a copy of seed 0's
        assert other != alone["probe_k0_product_last"]


def test_top_table_reads_each_seed_against_the_whole_space_aggregate(study: ModuleType) -> None:
    from nasnc.bench import open_benchmark
    from nasnc.space import Arch, sample_archs

    for sibling in ("search_regret", "proxy_budget"):  # top_table's imports, as the script has
        load_benchmark(sibling)
    truth = open_benchmark("builtin")
    archs = sample_archs(30, seed=3, unique=True, exclude_zero=True)
    gt = np.array([truth.get(str(a), "cifar10-valid", "valid_acc") for a in archs])
    noise = np.random.default_rng(0).normal(size=len(archs))
    rows = {
        str(a): {
            "arch": str(a),
            "probe_k0_product_brr": float(gt[i]),  # orders the cells exactly
            "probe_k0_b1p0_product_brr": float(gt[i]),
            "probe_k0_b0p1_product_brr": float(-gt[i]),  # exactly backwards
            "cost_probe0": 6.0,
        }
        for i, a in enumerate(archs)
    }
    pool = [(Arch.parse(str(a)), float(noise[i])) for i, a in enumerate(archs)]
    text = study.top_table(rows, pool, "toy")
    line = {row.split(" | ")[0].lstrip("| "): row for row in text.splitlines()}
    assert (
        line["probe_k0_product_brr (backbone seed 0, probe seed 0)"]
        .split(" | ")[1]
        .startswith("+1.000")
    )
    assert line["probe_k0_b0p1_product_brr"].split(" | ")[1].startswith("-1.000")
    assert line["b1p0"].endswith("+1.000 |") and line["b0p1"].endswith("-1.000 |")
    # the exact score's top-1 is the sample's best cell
    best = truth.best("cifar10-valid", "valid_acc")[1]
    regret = line["probe_k0_b1p0_product_brr"].split(" | ")[2]
    assert float(regret) == pytest.approx(best - gt.max(), abs=0.006)
