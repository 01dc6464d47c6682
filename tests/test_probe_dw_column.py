"""The ``beta_eff_probe_dw_*`` columns: the probe's βeff of its own W - W0 in every run."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nasnc.analysis import BETA_VARIANTS, entry_scores
from nasnc.capacitance import (
    SNAPSHOT_VARIANTS,
    CapacitanceProbe,
    ProbeWeightChangeObserver,
    beta_eff_variants,
    probe_weight_change_name,
)
from nasnc.data import load_dataset
from nasnc.pipeline import ProxyConfig, beta_eff_from_snapshots, evaluate_arch
from nasnc.store import Store
from tests.test_pipeline import CONV, TINY

KEYS = ("beta_eff_probe_dw_chain_sf", "beta_eff_probe_dw_product_sf")


@pytest.fixture(scope="module")
def data(synthetic_root: Path):  # type: ignore[no-untyped-def]
    return load_dataset("cifar10", synthetic_root, train_subset=256, valid_size=128, resolution=8)


def test_the_names_are_built_in_one_place() -> None:
    assert probe_weight_change_name("chain", True) == KEYS[0]
    assert probe_weight_change_name("product", False) == "beta_eff_probe_dw_product"
    assert ProbeWeightChangeObserver().keys == KEYS
    assert set(KEYS) <= set(BETA_VARIANTS)  # nasnc.analysis spells them out to stay torch-free
    assert set(KEYS) <= set(SNAPSHOT_VARIANTS)  # and snapshots recompute them


def test_reads_the_change_of_the_probes_weights() -> None:
    torch.manual_seed(0)
    probe = CapacitanceProbe(6, 3, (5,))
    observer = ProbeWeightChangeObserver()
    observer.on_train_start(probe, total_steps=1)
    w0 = [layer.weight.detach().clone().double() for layer in probe.linears]
    with torch.no_grad():
        for layer in probe.linears:
            layer.weight.mul_(1.5).add_(torch.randn_like(layer.weight) * 0.1)
    got = observer.on_report(1)
    delta = [layer.weight.detach().double() - w for layer, w in zip(probe.linears, w0)]
    want = beta_eff_variants(delta, [("chain", True), ("product", True)], dtype=torch.float64)
    assert [got[k] for k in KEYS] == pytest.approx(want.tolist(), rel=1e-12)


def test_a_model_without_a_probe_gives_nan_and_a_warning(caplog) -> None:  # type: ignore[no-untyped-def]
    observer = ProbeWeightChangeObserver()
    with caplog.at_level(logging.WARNING):
        observer.on_train_start(nn.Sequential(nn.Linear(3, 2)), total_steps=1)
    assert "disabled" in caplog.text
    assert all(math.isnan(v) for v in observer.on_report(1).values())


def test_every_run_records_it_and_snapshots_recompute_it(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    config = ProxyConfig.from_mapping({**TINY.to_dict(), "snapshots": "probe"})
    store = Store(tmp_path / "cache")
    entry = evaluate_arch(CONV, config, data, device="cpu", store=store).entry
    stored = store.get(entry.key)
    assert stored is not None
    for key in KEYS:
        column = stored.trajectory[key]
        assert column.shape == stored.trajectory["step"].shape == (4,)
        assert np.isfinite(column).all() and (column > 0).all()
        assert key not in stored.summary  # recorded, never the objective
        assert entry_scores(stored)[key] == column[-1]
        # the streamed float32 change agrees with the one recomputed from float16 snapshots
        recomputed = beta_eff_from_snapshots(stored, key)[key][1:]
        np.testing.assert_allclose(recomputed, column, rtol=5e-2)
