"""Whole-network βeff: closed form vs explicit line graph, tracing, invariances, NaN rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nasnc._errors import ConfigError
from nasnc.capacitance import (
    VARIANTS,
    CouplingGraph,
    beta_eff_variants,
    coupling_graph,
    network_beta_eff,
    network_line_graph,
)
from nasnc.models import build_network

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "|skip_connect~0|+|avg_pool_3x3~0|none~1|+|none~0|nor_conv_1x1~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",  # conv 1<-0 is dead
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
]
NO_PATH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|"


def _brute(graph: CouplingGraph, weights: list[torch.Tensor]) -> np.ndarray:
    out = []
    for interaction, normalize in VARIANTS:
        p = network_line_graph(graph, weights, interaction, normalize=normalize)
        ones = np.ones(p.shape[0])
        den = float(p.sum())
        out.append(float((p.T @ ones) @ (p @ ones)) / den if den > 0 else 0.0)
    return np.array(out)


def _random_graph(rng: np.random.Generator) -> tuple[CouplingGraph, list[torch.Tensor]]:
    """Layers between random junctions (tensors of random width); m feeds t via a junction."""
    n_junctions = int(rng.integers(2, 6))
    widths = rng.integers(1, 5, size=n_junctions)
    n_layers = int(rng.integers(2, 8))
    ends = [tuple(sorted(rng.choice(n_junctions, 2, replace=False))) for _ in range(n_layers)]
    shapes = tuple((int(widths[b]), int(widths[a])) for a, b in ends)
    edges = tuple(
        sorted(
            (m, t)
            for m in range(n_layers)
            for t in range(n_layers)
            if m != t and ends[m][1] == ends[t][0]
        )
    )
    graph = CouplingGraph(names=tuple(f"t{k}" for k in range(n_layers)), shapes=shapes, edges=edges)
    weights = [
        torch.from_numpy(rng.standard_normal((o, i, *([3, 3] if rng.random() < 0.5 else []))))
        for o, i in shapes
    ]
    return graph, weights


@pytest.mark.parametrize("seed", range(25))
def test_closed_form_matches_line_graph_on_random_graphs(seed: int) -> None:
    graph, weights = _random_graph(np.random.default_rng(seed))
    got = network_beta_eff(graph, weights, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, _brute(graph, weights), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("arch", ARCHS)
def test_closed_form_matches_line_graph_on_nb201(arch: str) -> None:
    torch.manual_seed(1)
    net = build_network(arch, channels=3, cells_per_stage=2, probe=(5, 4)).eval()
    graph = coupling_graph(net, torch.randn(2, 3, 8, 8))
    weights = graph.weights(net)
    got = network_beta_eff(graph, weights, dtype=torch.float64).numpy()
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, _brute(graph, weights), rtol=1e-9)


def test_dense_chain_equals_probe_beta_eff() -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 4), nn.Tanh(), nn.Linear(4, 3))
    graph = coupling_graph(mlp, torch.randn(2, 5))
    assert graph.edges == ((0, 1), (1, 2))
    ws = graph.weights(mlp)
    np.testing.assert_allclose(
        network_beta_eff(graph, ws, dtype=torch.float64).numpy(),
        beta_eff_variants(ws, dtype=torch.float64).detach().numpy(),
        rtol=1e-12,
    )


def _names(graph: CouplingGraph, layer: str) -> set[str]:
    k = graph.names.index(layer)
    return {graph.names[m] for m, t in graph.edges if t == k}


def test_trace_follows_cell_dag_and_residual_blocks() -> None:
    net = build_network(ARCHS[0], channels=2, cells_per_stage=1, probe=(4,)).eval()
    graph = coupling_graph(net, torch.randn(1, 3, 8, 8))
    cell = "cells.0.edges."
    assert _names(graph, "stem.0") == set()
    assert _names(graph, cell + "1<-0.1") == {"stem.0"}
    assert _names(graph, cell + "2<-0.1") == {"stem.0"}
    # node 2 = conv1x1(node 0) + skip(node 1): both convs feed 3<-2
    assert _names(graph, cell + "3<-2.1") == {cell + "1<-0.1", cell + "2<-0.1"}
    # cell output = pool(node 0) + conv(node 2): the stem reaches the reduction through the pool
    assert _names(graph, "cells.1.downsample.1") == {"stem.0", cell + "3<-2.1"}
    assert _names(graph, "cells.1.conv_b.1") == {"cells.1.conv_a.1"}
    # the residual sum joins both branches of the reduction into the next cell
    assert _names(graph, "cells.2.edges.1<-0.1") == {"cells.1.downsample.1", "cells.1.conv_b.1"}
    assert _names(graph, "classifier.layers.1") == {"classifier.layers.0"}


def test_dead_layers_are_left_out() -> None:
    net = build_network(ARCHS[2], channels=2, cells_per_stage=1, probe=(4,)).eval()
    graph = coupling_graph(net, torch.randn(1, 3, 8, 8))
    assert not any("edges" in n for n in graph.names)  # the conv never reaches the output
    assert _names(graph, "cells.1.conv_a.1") == {"stem.0"}  # the skip carries the stem


def test_no_path_gives_nan() -> None:
    net = build_network(NO_PATH, channels=2, cells_per_stage=1).eval()
    graph = coupling_graph(net, torch.randn(1, 3, 8, 8))
    assert len(graph) == 0
    assert torch.isnan(network_beta_eff(graph, [])).all()


def test_all_zero_weights_give_zero() -> None:
    net = build_network(ARCHS[0], channels=2, cells_per_stage=1).eval()
    graph = coupling_graph(net, torch.randn(1, 3, 8, 8))
    zeros = [torch.zeros_like(w) for w in graph.weights(net)]
    assert network_beta_eff(graph, zeros).tolist() == [0.0] * len(VARIANTS)


@pytest.mark.parametrize("seed", range(5))
def test_scaling_every_weight(seed: int) -> None:
    graph, weights = _random_graph(np.random.default_rng(100 + seed))
    base = network_beta_eff(graph, weights, dtype=torch.float64).numpy()
    scaled = network_beta_eff(graph, [3.0 * w for w in weights], dtype=torch.float64).numpy()
    # chain is homogeneous of degree 1, product of degree 2, scale-free of degree 0
    np.testing.assert_allclose(scaled, base * np.array([3.0, 9.0, 1.0, 1.0]), rtol=1e-12)
    # scale-free: even a different factor per layer changes nothing
    factors = np.random.default_rng(seed).uniform(0.1, 10, len(weights))
    per_layer = [float(f) * w for f, w in zip(factors, weights)]
    np.testing.assert_allclose(
        network_beta_eff(graph, per_layer, dtype=torch.float64).numpy()[2:], base[2:], rtol=1e-12
    )


@pytest.mark.parametrize("seed", range(5))
def test_permuting_a_junctions_channels(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    graph, weights = _random_graph(rng)
    base = network_beta_eff(graph, weights, dtype=torch.float64).numpy()
    # permute the output channels of layer 0 and the inputs of every layer it feeds,
    # and of every layer feeding those (they share the junction)
    readers = {t for m, t in graph.edges if m == 0}
    writers = {m for m, t in graph.edges if t in readers} | {0}
    perm = torch.from_numpy(rng.permutation(graph.shapes[0][0]))
    new = list(weights)
    for k in writers:
        new[k] = new[k][perm]
    for k in readers:
        new[k] = new[k][:, perm]
    got = network_beta_eff(graph, new, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, base, rtol=1e-12)


def test_trace_is_independent_of_resolution_and_batch() -> None:
    net = build_network(ARCHS[1], channels=2, cells_per_stage=2).eval()
    small = coupling_graph(net, torch.randn(1, 3, 8, 8))
    large = coupling_graph(net, torch.randn(3, 3, 16, 16))
    assert small == large


def test_validation() -> None:
    graph, weights = _random_graph(np.random.default_rng(0))
    with pytest.raises(ValueError, match="one weight per layer"):
        network_beta_eff(graph, weights[:-1])
    with pytest.raises(ValueError, match=r"weight 0 \(t0\) has shape \(\d+, \d+\), expected"):
        network_beta_eff(
            graph, [w.transpose(0, 1) if w.shape[0] != w.shape[1] else w[:1] for w in weights]
        )
    with pytest.raises(ConfigError, match="interaction"):
        network_beta_eff(graph, weights, [("nope", False)])
    with pytest.raises(ValueError, match="feeds"):
        CouplingGraph(names=("a", "b"), shapes=((2, 3), (4, 5)), edges=((0, 1),))
    with pytest.raises(ConfigError, match="grouped"):
        coupling_graph(nn.Conv2d(4, 4, 3, groups=2), torch.randn(1, 4, 5, 5))
    shared = nn.Linear(3, 3)
    with pytest.raises(ConfigError, match="twice"):
        coupling_graph(nn.Sequential(shared, shared), torch.randn(2, 3))


def test_gradients_do_not_leak_and_result_is_on_device() -> None:
    net = build_network(ARCHS[0], channels=2, cells_per_stage=1).eval()
    graph = coupling_graph(net, torch.randn(1, 3, 8, 8))
    out = network_beta_eff(graph, graph.weights(net))
    assert out.shape == (len(VARIANTS),) and not out.requires_grad
    assert all(p.grad is None for p in net.parameters())
    assert math.isfinite(float(out[0]))


class _KeepsItsOutput(nn.Module):
    """A model that holds on to its last output, and so to the autograd graph of the trace."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
        self.last: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last = self.body(x) + x[:, :3]  # a skip: the input reaches the output twice
        return self.last


def _nodes(start: object) -> list[object]:
    stack, out = [start], []
    while stack:
        node = stack.pop()
        if node is not None and len(out) < 1000:
            out.append(node)
            stack.extend(nxt for nxt, _ in getattr(node, "next_functions", ()))
    return out


def test_the_trace_leaves_no_mark_on_the_autograd_graph() -> None:
    model = _KeepsItsOutput()
    graph = coupling_graph(model, torch.randn(2, 4))
    assert graph.names == ("body.0", "body.2") and graph.edges == ((0, 1),)
    assert model.last is not None
    nodes = _nodes(model.last.grad_fn)
    assert len(nodes) > 4  # the graph is still alive and was walked
    for node in nodes:
        assert not [k for k in node.metadata if str(k).startswith("nasnc.")]
