"""βeff closed form vs the explicit line graph, its invariances, the probe and the observer."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasnc import ConfigError
from nasnc.capacitance import (
    VARIANTS,
    CapacitanceObserver,
    CapacitanceProbe,
    beta_eff,
    beta_eff_variants,
    dense_chain,
    line_graph,
    variant_name,
)
from nasnc.models import build_network

PROPERTY = settings(max_examples=40, deadline=None)
ALL_KEYS = {"beta_eff", *(variant_name(*v) for v in VARIANTS)}


@st.composite
def chains(draw: st.DrawFn, *, min_layers: int = 2, max_layers: int = 5) -> list[torch.Tensor]:
    """Random float64 chains of 2–5 layers, widths 1–32, sometimes with exact zeros."""
    n_layers = draw(st.integers(min_layers, max_layers))
    widths = draw(st.lists(st.integers(1, 32), min_size=n_layers + 1, max_size=n_layers + 1))
    seed = draw(st.integers(0, 2**31 - 1))
    zero_frac = draw(st.sampled_from([0.0, 0.0, 0.3, 0.9]))
    gen = torch.Generator().manual_seed(seed)
    ws = []
    for n_in, n_out in itertools.pairwise(widths):
        w = torch.randn(n_out, n_in, generator=gen, dtype=torch.float64)
        if zero_frac:
            w = w * (torch.rand(n_out, n_in, generator=gen, dtype=torch.float64) >= zero_frac)
        ws.append(w)
    return ws


def reference(ws: list[torch.Tensor], interaction: str, normalize: bool) -> float:
    """``1ᵀPP1 / 1ᵀP1`` from the explicit line graph (two sparse mat-vecs)."""
    P = line_graph(ws, interaction, normalize=normalize)
    ones = np.ones(P.shape[0])
    den = float(P.sum())
    return 0.0 if den == 0 else float((P.T @ ones) @ (P @ ones)) / den


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


# ------------------------------------------------------------------ closed form


@settings(max_examples=100, deadline=None)
@given(ws=chains())
def test_closed_form_equals_line_graph(ws: list[torch.Tensor]) -> None:
    together = beta_eff_variants(ws, dtype=torch.float64)
    for k, (interaction, normalize) in enumerate(VARIANTS):
        ref = reference(ws, interaction, normalize)
        got = beta_eff(ws, interaction, normalize, dtype=torch.float64)
        assert got.dim() == 0
        assert close(float(got), ref), (interaction, normalize, float(got), ref)
        assert close(float(together[k]), ref)


@PROPERTY
@given(ws=chains(min_layers=3), data=st.data())
def test_invariant_to_permuting_hidden_neurons(ws: list[torch.Tensor], data: st.DataObject) -> None:
    seed = data.draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    permuted = [w.clone() for w in ws]
    for layer in range(len(ws) - 1):  # hidden neuron layer between W_layer and W_layer+1
        perm = torch.randperm(ws[layer].shape[0], generator=gen)
        permuted[layer] = permuted[layer][perm, :]
        permuted[layer + 1] = permuted[layer + 1][:, perm]
    before = beta_eff_variants(ws, dtype=torch.float64)
    after = beta_eff_variants(permuted, dtype=torch.float64)
    for b, a in zip(before.tolist(), after.tolist()):
        assert close(a, b)


@PROPERTY
@given(ws=chains(), c=st.floats(1e-3, 1e3))
def test_scaling(ws: list[torch.Tensor], c: float) -> None:
    scaled = [c * w for w in ws]
    for normalize in (False, True):
        chain, chain_c = (
            beta_eff(x, "chain", normalize, dtype=torch.float64) for x in (ws, scaled)
        )
        prod, prod_c = (
            beta_eff(x, "product", normalize, dtype=torch.float64) for x in (ws, scaled)
        )
        if normalize:  # scale-free: unchanged
            assert close(float(chain_c), float(chain))
            assert close(float(prod_c), float(prod))
        else:
            assert close(float(chain_c), c * float(chain))
            assert close(float(prod_c), c * c * float(prod))


def test_all_zero_weights_give_zero_never_nan() -> None:
    ws = [torch.zeros(5, 3), torch.zeros(4, 5), torch.zeros(2, 4)]
    for interaction, normalize in VARIANTS:
        value = beta_eff(ws, interaction, normalize)
        assert not torch.isnan(value)
        assert float(value) == 0.0
    assert beta_eff_variants(ws).tolist() == [0.0, 0.0, 0.0, 0.0]


def test_a_non_finite_weight_gives_nan_not_zero() -> None:
    # a run that diverged between report points must not record βeff 0.0: the
    # estimate's finiteness filter cannot drop a zero (the whole-network form gave NaN)
    gen = torch.Generator().manual_seed(0)
    for bad in (math.nan, math.inf):
        ws = [torch.randn(5, 3, generator=gen), torch.randn(4, 5, generator=gen)]
        ws[1][2, 1] = bad
        values = beta_eff_variants(ws)
        assert torch.isnan(values[2:]).all(), (bad, values)  # the scale-free variants
        assert not torch.isfinite(values).any(), (bad, values)
        for interaction, normalize in VARIANTS:
            assert not math.isfinite(float(beta_eff(ws, interaction, normalize)))


@pytest.mark.parametrize("scale", [1e-18, 1e-14, 1e-12, 1e8, 1e18])
def test_scale_free_variants_are_scale_free_in_float32(scale: float) -> None:
    # probe-like widths; product sums |w|^4: rescaling after summing overflowed (1e8: inf)
    # or underflowed (1e-14: 0) in float32
    gen = torch.Generator().manual_seed(1)
    ws = [torch.randn(o, i, generator=gen) for i, o in ((64, 256), (256, 128), (128, 10))]
    want = [float(beta_eff([w.double() for w in ws], i, True)) for i in ("chain", "product")]
    got = [float(beta_eff([w * scale for w in ws], i, True)) for i in ("chain", "product")]
    assert got == pytest.approx(want, rel=1e-4)


def test_one_zero_layer_matches_line_graph_and_is_finite() -> None:
    gen = torch.Generator().manual_seed(1)
    ws = [
        torch.randn(6, 4, generator=gen, dtype=torch.float64),
        torch.zeros(5, 6, dtype=torch.float64),
    ]
    ws.append(torch.randn(3, 5, generator=gen, dtype=torch.float64))
    for interaction, normalize in VARIANTS:
        got = float(beta_eff(ws, interaction, normalize))
        assert math.isfinite(got)
        assert close(got, reference(ws, interaction, normalize))


def test_hand_computed_value() -> None:
    # layer 0: 6 weights, each adjacent to the 4 downstream weights leaving its neuron;
    # layer 1: 12 weights, each adjacent to the 2 upstream weights entering its neuron.
    # chain: (6·4·4 + 12·2·2) / (6·4 + 12·2) = 144 / 48 = 3
    ws = [torch.ones(3, 2), torch.ones(4, 3)]
    assert float(beta_eff(ws, "chain")) == pytest.approx(3.0)
    assert float(beta_eff(ws, "product")) == pytest.approx(3.0)
    assert float(beta_eff([2 * w for w in ws], "product")) == pytest.approx(12.0)


def test_line_graph_structure() -> None:
    gen = torch.Generator().manual_seed(0)
    widths = [3, 4, 2, 5]
    ws = [torch.randn(b, a, generator=gen) for a, b in itertools.pairwise(widths)]
    chain = line_graph(ws, "chain")
    prod = line_graph(ws, "product")
    assert isinstance(chain, scipy.sparse.csr_matrix)
    n = sum(a * b for a, b in itertools.pairwise(widths))
    assert chain.shape == (n, n)
    assert chain.nnz == 2 * sum(widths[i] * widths[i + 1] * widths[i + 2] for i in range(2))
    assert (abs(prod - prod.T)).max() == 0  # product couplings are symmetric
    # weight e = W_0[j=1, i=2] (index 1*3+2) and f = W_1[k=1, j=1] (index 12 + 1*4 + 1)
    e, f = 1 * 3 + 2, 12 + 1 * 4 + 1
    assert chain[e, f] == pytest.approx(abs(float(ws[1][1, 1])))
    assert chain[f, e] == pytest.approx(abs(float(ws[0][1, 2])))
    assert prod[e, f] == pytest.approx(abs(float(ws[0][1, 2] * ws[1][1, 1])))
    assert chain[e, 12 + 1 * 4 + 0] == 0  # W_1[1, 0] leaves another neuron
    # weights of the same layer, or two layers apart, are never adjacent
    assert chain[0, 1] == 0
    assert chain[0, 12 + 8 + 1] == 0


def test_dtype_device_and_gradients() -> None:
    ws32 = [torch.randn(4, 3), torch.randn(2, 4)]
    assert beta_eff(ws32).dtype == torch.float32
    assert beta_eff(ws32, dtype=torch.float64).dtype == torch.float64
    assert beta_eff([w.half() for w in ws32]).dtype == torch.float32
    params = [w.clone().requires_grad_(True) for w in ws32]
    beta_eff(params, "product", normalize=True).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)


def test_validation() -> None:
    # ConfigError (a NasncError and a ValueError): plain ValueErrors escaped `except NasncError`
    with pytest.raises(ConfigError, match="at least 2 dense layers"):
        beta_eff([torch.ones(3, 2)])
    with pytest.raises(ConfigError, match="at least 2"):
        line_graph([torch.ones(3, 2)])
    with pytest.raises(ConfigError, match="layer 2 takes 5 inputs but layer 1 has 4"):
        beta_eff([torch.ones(3, 2), torch.ones(4, 3), torch.ones(1, 5)])
    with pytest.raises(ConfigError, match="layer 1 must be a 2-D"):
        beta_eff([torch.ones(3, 2), torch.ones(4, 3, 1)])
    with pytest.raises(ConfigError, match="single tensor"):
        beta_eff(torch.ones(3, 2))
    with pytest.raises(ConfigError, match="interaction='star'"):
        beta_eff([torch.ones(3, 2), torch.ones(4, 3)], "star")
    with pytest.raises(ConfigError, match="floating point"):
        beta_eff([torch.ones(3, 2), torch.ones(4, 3)], dtype=torch.int64)
    with pytest.raises(ConfigError, match="floating point"):
        beta_eff([torch.ones(3, 2), torch.ones(4, 3)], dtype="float64")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="layer 0 must hold real numbers"):
        beta_eff([torch.ones(3, 2, dtype=torch.bool), torch.ones(4, 3)])
    with pytest.raises(ConfigError, match=r"layer 1 is empty \(shape \(0, 3\)\)"):
        beta_eff([torch.ones(3, 2), torch.ones(0, 3)])  # was NaN


# ------------------------------------------------------------------ the probe


def test_probe_is_independent_of_the_global_rng() -> None:
    torch.manual_seed(0)
    a = dense_chain(
        build_network(
            "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
            channels=4,
            cells_per_stage=1,
            probe=(16, 8),
            probe_seed=3,
        )
    )
    torch.manual_seed(123)
    b = dense_chain(
        build_network(
            "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|",
            channels=4,
            cells_per_stage=1,
            probe=(16, 8),
            probe_seed=3,
        )
    )
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    c = dense_chain(CapacitanceProbe(16, 10, hidden=(16, 8), seed=4))
    assert not torch.equal(a[0], c[0])


def test_dense_chain_returns_the_parameters_themselves() -> None:
    net = build_network(
        "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        channels=4,
        cells_per_stage=1,
        probe=(16, 8),
    )
    ws = dense_chain(net)
    assert [tuple(w.shape) for w in ws] == [(16, 16), (8, 16), (10, 8)]
    params = {id(p) for p in net.parameters()}
    assert all(id(w) in params for w in ws)
    with pytest.raises(ValueError, match="holds no CapacitanceProbe"):
        dense_chain(
            build_network(
                "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                channels=4,
                cells_per_stage=1,
            )
        )


# ------------------------------------------------------------------ the observer


def _tiny_training(
    seed: int = 0,
) -> tuple[torch.nn.Module, torch.optim.Optimizer, Callable[[], None]]:
    torch.manual_seed(seed)
    model = build_network(
        "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|",
        channels=4,
        cells_per_stage=1,
        probe=(16, 8),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, 8, 8, generator=gen)
    y = torch.randint(0, 10, (8,), generator=gen)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return model, opt, step


def test_observer_records_every_k_steps_via_the_optimizer_hook() -> None:
    model, opt, step = _tiny_training()
    observer = CapacitanceObserver(every_n_steps=3, interaction="product", normalize=True)
    with observer.attach(model, opt) as obs:
        assert obs is observer and obs.attached
        assert len(opt._optimizer_step_post_hooks) == 1
        for i in range(1, 10):
            step()
            assert obs.n_observed == i // 3
    traj = observer.trajectory()
    assert set(traj) == {"step"} | ALL_KEYS
    assert traj["step"].tolist() == [3, 6, 9]
    assert all(
        v.shape == (3,) and v.dtype == np.float64 for v in traj.values() if v is not traj["step"]
    )
    np.testing.assert_array_equal(traj["beta_eff"], traj["beta_eff_product_sf"])
    # the last row is βeff of the weights as they are now (step 9 was the last step)
    expected = beta_eff_variants(dense_chain(model), dtype=torch.float64).tolist()
    got = [traj[variant_name(*v)][-1] for v in VARIANTS]
    assert got == pytest.approx(expected, rel=1e-12)
    assert len(set(traj["beta_eff_chain"].tolist())) == 3  # it moved while training
    # hook removed: more steps record nothing
    assert not observer.attached
    assert len(opt._optimizer_step_post_hooks) == 0
    step()
    assert observer.n_observed == 3


def test_observer_hook_removed_on_exception() -> None:
    model, opt, step = _tiny_training()
    observer = CapacitanceObserver()

    def interrupted_loop() -> None:
        with observer.attach(model, opt):
            step()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        interrupted_loop()
    assert len(opt._optimizer_step_post_hooks) == 0
    assert observer.trajectory()["step"].tolist() == [1]


def test_observer_protocol_and_buffer_growth() -> None:
    probe = CapacitanceProbe(6, 3, hidden=(5,), seed=0)
    observer = CapacitanceObserver(every_n_steps=2, variants=False)
    assert observer.on_report(0) == {"beta_eff": pytest.approx(math.nan, nan_ok=True)}
    observer.on_train_start(probe, total_steps=0)
    with torch.no_grad():
        for step in range(1, 301):  # 150 rows: beyond the initial capacity
            probe.layers[0].weight.mul_(1.01)
            observer.on_step(step, probe)
    report = observer.on_report(300)
    assert set(report) == {"beta_eff"}
    assert report["beta_eff"] == pytest.approx(
        float(beta_eff(dense_chain(probe), dtype=torch.float64).detach())
    )
    observer.on_train_end()
    traj = observer.trajectory()
    assert set(traj) == {"step", "beta_eff"}
    assert traj["step"].tolist() == list(range(2, 301, 2))
    assert np.all(np.diff(traj["beta_eff"]) != 0)
    observer.on_train_start(probe, total_steps=10)  # a new run starts empty
    assert observer.trajectory()["step"].size == 0


def test_observer_validation() -> None:
    with pytest.raises(ConfigError, match="every_n_steps=0"):
        CapacitanceObserver(every_n_steps=0)
    with pytest.raises(ConfigError, match="every_n_steps"):
        CapacitanceObserver(every_n_steps=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="interaction='sum'"):
        CapacitanceObserver(interaction="sum")
    model, opt, _ = _tiny_training()
    observer = CapacitanceObserver().attach(model, opt)
    with pytest.raises(RuntimeError, match="already attached"):
        observer.attach(model, opt)
    observer.detach()
    plain = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="holds no CapacitanceProbe"):
        CapacitanceObserver().attach(plain, torch.optim.SGD(plain.parameters(), lr=0.1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_observer_does_not_sync_the_host_on_cuda() -> None:
    probe = CapacitanceProbe(64, 10, hidden=(256, 128)).cuda()
    observer = CapacitanceObserver(every_n_steps=1)
    observer.on_train_start(probe, total_steps=4)
    observer.on_step(1, probe)  # first call builds the cached constants
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(2, 200):  # includes a buffer growth
            observer.on_step(step, probe)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert observer.trajectory()["step"].size == 199
    assert observer.trajectory()["beta_eff"][-1] == pytest.approx(
        float(beta_eff(dense_chain(probe), dtype=torch.float64).detach())
    )


def test_observer_streams_through_train_proxy(synthetic_root: Path) -> None:
    from nasnc.data import load_dataset
    from nasnc.train import Budget, TrainRecipe, train_proxy

    data = load_dataset("cifar10", synthetic_root, train_subset=128, valid_size=64, resolution=8)
    torch.manual_seed(0)
    model = build_network(
        "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|",
        channels=4,
        cells_per_stage=1,
        probe=(16, 8),
    )
    observer = CapacitanceObserver(every_n_steps=2)
    result = train_proxy(
        model,
        data,
        Budget(steps=8),
        device="cpu",
        observers=[observer],
        report_every=4,
        recipe=TrainRecipe(batch_size=32),
    )
    traj = observer.trajectory()
    assert traj["step"].tolist() == [2, 4, 6, 8]
    assert result.trajectory["step"].tolist() == [4, 8]
    for key in ALL_KEYS:  # each report row holds the observer's latest value
        np.testing.assert_allclose(result.trajectory[key], traj[key][[1, 3]])
    assert np.all(np.isfinite(traj["beta_eff"]))
