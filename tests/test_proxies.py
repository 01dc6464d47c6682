from __future__ import annotations

import logging
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nasnc import ConfigError
from nasnc.models import Network, arch_params, build_network, count_macs
from nasnc.proxies import (
    BETA_EFF_GRAD,
    PROXIES,
    beta_eff_grad,
    compute_proxies,
    fisher,
    grad_norm,
    jacob_cov,
    meco,
    naswot,
    snip,
    synflow,
    tse,
    zico,
)

CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
MIXED = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def _first_images(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 16 training images of a CIFAR-10 folder (normalised) and labels."""
    with (root / "cifar-10-batches-py" / "data_batch_1").open("rb") as f:
        raw = pickle.load(f, encoding="latin1")
    x = torch.from_numpy(np.asarray(raw["data"][:16], dtype=np.float32).reshape(16, 3, 32, 32))
    return (x / 255.0 - MEAN) / STD, torch.tensor(raw["labels"][:16])


@pytest.fixture(scope="module")
def batch(synthetic_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """16 synthetic CIFAR-10 training images (normalised) and labels."""
    return _first_images(synthetic_root)


def tiny(arch: str, seed: int = 0) -> Network:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_network(arch, channels=4, cells_per_stage=1)


class DropoutNet(nn.Module):
    """A small conv net with dropout, so that the seed matters."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.5)
        )
        self.head = nn.Linear(6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean((2, 3)))


def hooks_of(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


# ------------------------------------------------------------------ contract
@pytest.mark.parametrize("name", list(PROXIES))
def test_each_proxy_finite_on_a_synthetic_batch(
    name: str, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = batch
    value = PROXIES[name](tiny(MIXED), x, y)
    assert isinstance(value, float)
    assert math.isfinite(value)


def test_every_proxy_finite_on_real_cifar10_images(real_cifar_root: Path) -> None:
    x, y = _first_images(real_cifar_root)
    for name, proxy in PROXIES.items():
        value = proxy(tiny(MIXED), x, y)
        assert isinstance(value, float) and math.isfinite(value), name


def test_compute_all_returns_every_proxy_in_table_order(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    x, y = batch
    timings: dict[str, float] = {}
    out = compute_proxies(tiny(MIXED), x, y, timings=timings)
    assert list(out) == list(PROXIES)
    assert set(timings) == set(PROXIES)
    assert all(t >= 0 for t in timings.values())


def test_seed_not_the_global_rng_fixes_the_scores(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    torch.manual_seed(0)
    net = DropoutNet()  # dropout draws random numbers: the global RNG would show
    names = ["snip", "grad_norm", "naswot"]
    torch.manual_seed(123)
    a = compute_proxies(net, x, y, names=names, seed=3)
    torch.manual_seed(456)
    assert compute_proxies(net, x, y, names=names, seed=3) == a


def test_seed_drives_stochastic_layers(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    torch.manual_seed(0)
    net = DropoutNet()
    names = ["snip", "grad_norm", "naswot"]
    a = compute_proxies(net, x, y, names=names, seed=1)
    assert a == compute_proxies(net, x, y, names=names, seed=1)
    b = compute_proxies(net, x, y, names=names, seed=2)
    assert a["snip"] != b["snip"]


def test_callers_model_and_rng_untouched(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    net = tiny(MIXED)
    net.eval()  # the proxies switch their copy to training mode, never the caller's model
    stem_conv = net.stem[0]
    assert isinstance(stem_conv, nn.Conv2d)
    stem_conv.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    compute_proxies(net, x, y)
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats too
    assert not any(m.training for m in net.modules())
    assert hooks_of(net) == 0
    assert all(p.grad is None for p in net.parameters())
    assert stem_conv.weight.requires_grad is False
    assert torch.equal(torch.get_rng_state(), rng)


def test_callers_hooks_are_kept_and_ours_removed(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    net = tiny(MIXED)
    calls: list[int] = []
    handle = net.classifier.register_forward_hook(lambda *_: calls.append(1))
    compute_proxies(net, x, y, names=["naswot", "fisher"])
    assert hooks_of(net) == 1
    handle.remove()
    assert calls == []  # the copies ran the forward passes, not the caller's model


# -------------------------------------------------------------- definitions
def test_synflow_of_linear_chain_is_layers_times_path_sum() -> None:
    # R = 1^T |W2| |W1| 1; for a bias-free linear chain each layer's sum |θ ⊙ ∂R/∂θ| equals R.
    torch.manual_seed(0)
    first, last = nn.Linear(5, 7, bias=False), nn.Linear(7, 3, bias=False)
    net = nn.Sequential(first, nn.BatchNorm1d(7), last)  # BN is removed by synflow
    w1, w2 = first.weight.detach().double().abs(), last.weight.detach().double().abs()
    path_sum = float(
        torch.ones(3, dtype=torch.float64) @ w2 @ w1 @ torch.ones(5, dtype=torch.float64)
    )
    x, y = torch.randn(4, 5), torch.zeros(4, dtype=torch.long)
    assert synflow(net, x, y) == pytest.approx(2 * path_sum, rel=1e-12)


def test_snip_and_grad_norm_match_autograd(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    net = tiny(MIXED)
    ref = tiny(MIXED)
    ref.train()
    loss = nn.functional.cross_entropy(ref(x), y)
    layers = [m for m in ref.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    grads = torch.autograd.grad(loss, [m.weight for m in layers])
    want_snip = sum(float((m.weight.detach() * g).abs().sum()) for m, g in zip(layers, grads))
    want_norm = sum(float(g.norm()) for g in grads)
    assert snip(net, x, y) == pytest.approx(want_snip, rel=1e-5)
    assert grad_norm(net, x, y) == pytest.approx(want_norm, rel=1e-5)


def test_shared_gradient_pass_equals_separate_calls(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    x, y = batch
    net = tiny(MIXED)
    together = compute_proxies(net, x, y, names=["snip", "grad_norm", "fisher"])
    assert together["snip"] == snip(net, x, y)
    assert together["grad_norm"] == grad_norm(net, x, y)
    assert together["fisher"] == fisher(net, x, y)


class ConvLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.fc = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.a1 = self.conv(x)
        self.a1.retain_grad()
        self.a2 = self.fc(torch.relu(self.a1).mean((2, 3)))
        self.a2.retain_grad()
        return self.a2


def test_fisher_matches_channel_formula_with_fan_in() -> None:
    torch.manual_seed(0)
    net = ConvLinear()
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    ref = ConvLinear()
    ref.load_state_dict(net.state_dict())
    nn.functional.cross_entropy(ref(x), y).backward()
    assert ref.a1.grad is not None and ref.a2.grad is not None
    f1 = 0.5 * (ref.a1 * ref.a1.grad).sum((2, 3)).pow(2).mean(0)  # per channel
    f2 = 0.5 * (ref.a2 * ref.a2.grad).pow(2).mean(0)
    want = (
        float(f1.detach().sum()) * 3 * 3 * 3 + float(f2.detach().sum()) * 5
    )  # fan-in C_in*kh*kw, in_features
    assert fisher(net, x, y) == pytest.approx(want, rel=1e-5)


def test_naswot_matches_explicit_codes() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 7), nn.ReLU(inplace=True), nn.Linear(7, 2)
    )
    x = torch.randn(5, 6)
    with torch.no_grad():
        h1 = net[0](x)
        h2 = net[2](torch.relu(h1))
    codes = torch.cat([h1 > 0, h2 > 0], 1).double()
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    want = float(torch.linalg.slogdet(kernel)[1])
    assert naswot(net, x, torch.zeros(5, dtype=torch.long)) == pytest.approx(want, rel=1e-12)


def test_jacob_cov_closed_form_and_ordering() -> None:
    # A linear model has the same input Jacobian for every sample: the correlation matrix
    # is all ones, eigenvalues n and 0 (n-1 times), the worst score.
    n, k = 4, 1e-5
    net = nn.Sequential(nn.Linear(8, 3))
    score = jacob_cov(net, torch.randn(n, 8), torch.zeros(n, dtype=torch.long))
    want = -(math.log(n + k) + 1 / (n + k)) - (n - 1) * (math.log(k) + 1 / k)
    assert score == pytest.approx(want, rel=1e-6)
    torch.manual_seed(0)
    relu_net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3))
    better = jacob_cov(relu_net, torch.randn(n, 8), torch.zeros(n, dtype=torch.long))
    # Jacobians now differ per sample; the score is bounded by identity correlation.
    assert want < better <= -n * (math.log(1 + k) + 1 / (1 + k)) + 1e-9


def test_zico_matches_the_per_minibatch_formula() -> None:
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 4))
    x, y = torch.randn(8, 6), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    grads: list[list[np.ndarray]] = [[], []]
    for half in (slice(0, 4), slice(4, 8)):  # the gradients of each half, zeroed between
        net.zero_grad()
        nn.functional.cross_entropy(net(x[half]), y[half]).backward()
        for i, layer in enumerate((net[0], net[2])):
            grads[i].append(layer.weight.grad.detach().double().numpy().ravel())

    def score(per_layer: list[list[np.ndarray]]) -> float:
        out = 0.0
        for per_batch in per_layer:
            g = np.stack(per_batch)
            std = g.std(0)
            out += math.log(float((np.abs(g).mean(0)[std > 0] / std[std > 0]).sum()))
        return out

    net.zero_grad()
    got = zico(net, x, y)
    assert got == pytest.approx(score(grads), rel=1e-9)
    assert all(p.grad is None for p in net.parameters())  # computed on a copy
    # not the accumulated gradients g1, g1 + g2 of the authors' script
    accumulated = [[g1, g1 + g2] for g1, g2 in grads]
    assert got != pytest.approx(score(accumulated), rel=1e-3)
    with pytest.raises(ConfigError, match="zico needs a batch of at least 4 images"):
        zico(net, x[:3], y[:3])


def test_meco_sums_the_least_eigenvalue_of_every_modules_channel_correlation() -> None:
    torch.manual_seed(3)
    conv = nn.Conv2d(3, 5, 3, padding=1)
    with torch.no_grad():  # channel 4 is dead: constant, its correlations undefined
        conv.weight[4].zero_()
        conv.bias[4] = 0.5
    net = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 2))
    x = torch.randn(4, 3, 6, 6)

    def least(t: torch.Tensor) -> float:
        fea = t[0].reshape(t.shape[1], -1).double().numpy()
        with np.errstate(all="ignore"):
            corr = np.nan_to_num(np.corrcoef(fea))
        return float(np.linalg.eigvalsh(corr)[0])

    with torch.no_grad():
        h = conv(x)
        r = torch.relu(h)
    # conv, ReLU and the Sequential itself (whose output is the logits: no channel axis);
    # the pooled output has one position (its correlations are all undefined: 0)
    want = least(h) + least(r)
    assert least(h) == pytest.approx(0.0, abs=1e-12)  # the dead channel zeroes λ_min
    got = meco(net, x, torch.zeros(4, dtype=torch.long))
    assert got == pytest.approx(want, abs=1e-12)
    # only the first image counts (no BatchNorm here): the others can change freely
    other = torch.cat([x[:1], torch.randn(3, 3, 6, 6)])
    assert meco(net, other, torch.zeros(4, dtype=torch.long)) == pytest.approx(got, abs=1e-12)
    live = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU())
    assert meco(live, x, torch.zeros(4, dtype=torch.long)) > 0  # independent channels
    # one channel: P = [1], for the conv and the Sequential around it
    single = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1))
    assert meco(single, x, torch.zeros(4, dtype=torch.long)) == pytest.approx(2.0)


class Blowup(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * math.inf


def test_meco_of_non_finite_features_is_nan(caplog: pytest.LogCaptureFixture) -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Blowup())
    with caplog.at_level(logging.WARNING, logger="nasnc.proxies"):
        got = meco(net, torch.randn(4, 3, 6, 6), torch.zeros(4, dtype=torch.long))
    assert math.isnan(got) and "'meco'" in caplog.text


def test_beta_eff_grad_of_a_network_outside_the_graph_is_nan(
    caplog: pytest.LogCaptureFixture,
) -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Conv2d(4, 4, 3, padding=1, groups=2),  # grouped: not modelled
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    with caplog.at_level(logging.WARNING, logger="nasnc.proxies"):
        got = beta_eff_grad(net, torch.randn(4, 3, 6, 6), torch.tensor([0, 1, 2, 0]))
    assert math.isnan(got) and "beta_eff_grad_product_sf" in caplog.text


def test_beta_eff_grad_is_the_scale_free_product_of_the_loss_gradient(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    from nasnc.capacitance import coupling_graph, network_beta_eff

    x, y = batch
    net = tiny(MIXED)
    got = beta_eff_grad(net, x, y)
    assert all(p.grad is None for p in net.parameters())  # computed on a copy
    ref = tiny(MIXED)
    graph = coupling_graph(ref.eval(), torch.zeros(1, 3, 8, 8))
    ref.train()
    nn.functional.cross_entropy(ref(x), y).backward()
    grads = [w.grad for w in graph.weights(ref)]
    want = network_beta_eff(graph, grads, [("product", True)], dtype=torch.float64)
    assert BETA_EFF_GRAD == "beta_eff_grad_product_sf"
    assert got == pytest.approx(float(want[0]), rel=1e-9)
    assert math.isnan(beta_eff_grad(tiny(NONE), x, y))  # no layer on a path


def test_params_and_flops_use_the_model_counts(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    net = tiny(MIXED)
    out = compute_proxies(net, x, y, names=["params", "flops"])
    assert out["params"] == arch_params(MIXED, channels=4, cells_per_stage=1)
    assert out["flops"] == count_macs(net, resolution=32)


# ---------------------------------------------------------------- direction
def test_sign_sanity_between_extreme_cells(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    names = ["params", "flops", "synflow", "snip", "grad_norm"]
    conv = compute_proxies(tiny(CONV3), x, y, names=names)
    skip = compute_proxies(tiny(SKIP), x, y, names=names)
    none = compute_proxies(tiny(NONE), x, y, names=names)
    assert conv["params"] > skip["params"]
    assert conv["flops"] > skip["flops"]
    assert none["synflow"] < conv["synflow"]
    assert none["snip"] < conv["snip"]
    assert none["grad_norm"] < conv["grad_norm"]


# --------------------------------------------------------------- nan path
def test_disconnected_cell_reports_nan_with_warning(
    batch: tuple[torch.Tensor, torch.Tensor], caplog: pytest.LogCaptureFixture
) -> None:
    x, y = batch
    with caplog.at_level(logging.WARNING, logger="nasnc.proxies"):
        out = compute_proxies(tiny(NONE), x, y, names=["jacob_cov", "naswot"])
    assert math.isnan(out["jacob_cov"])
    assert math.isnan(out["naswot"])
    text = caplog.text
    assert "jacob_cov" in text
    assert "naswot" in text


class InfNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)) * math.inf


def test_non_finite_scores_are_nan_not_replaced(
    batch: tuple[torch.Tensor, torch.Tensor], caplog: pytest.LogCaptureFixture
) -> None:
    x, y = batch
    with caplog.at_level(logging.WARNING, logger="nasnc.proxies"):
        out = compute_proxies(InfNet(), x, y, names=["synflow", "snip", "grad_norm", "zico"])
    assert all(math.isnan(v) for v in out.values())
    assert all(f"'{name}'" in caplog.text for name in out)


# ---------------------------------------------------------------- validation
def test_names_validation(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    net = tiny(SKIP)
    with pytest.raises(ConfigError, match="'zen'"):
        compute_proxies(net, x, y, names=["snip", "zen"])
    with pytest.raises(ConfigError, match="at least one"):
        compute_proxies(net, x, y, names=[])
    assert list(compute_proxies(net, x, y, names="params")) == ["params"]
    assert list(compute_proxies(net, x, y, names=["snip", "params", "snip"])) == ["snip", "params"]


def test_batch_validation(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    net = tiny(SKIP)
    with pytest.raises(ConfigError, match="floating-point"):
        compute_proxies(net, (x * 50).to(torch.uint8), y)
    with pytest.raises(ConfigError, match="at least 2"):
        compute_proxies(net, x[:1], y[:1])
    with pytest.raises(ConfigError, match="same number"):
        compute_proxies(net, x, y[:-1])
    with pytest.raises(ConfigError, match="1-D integer"):
        compute_proxies(net, x, y.float())
    with pytest.raises(ConfigError, match=r"nn\.Module"):
        compute_proxies("net", x, y)  # type: ignore[arg-type]
    wide = torch.cat([x, x], dim=-1)  # H x 2H: flops was counted at 2H x 2H
    with pytest.raises(ConfigError, match="flops needs square images"):
        compute_proxies(net, wide, y, names=["flops"])
    assert compute_proxies(net, wide, y, names=["params"])  # the others take any shape
    for seed in (1.7, 2**70, -1):  # 1.7 was read as 1; 2**70 overflowed inside torch
        with pytest.raises(ConfigError, match="seed must be an integer"):
            compute_proxies(net, x, y, names=["params"], seed=seed)  # type: ignore[arg-type]


# -------------------------------------------------------------------- tse
def test_tse_is_minus_the_sum(caplog: pytest.LogCaptureFixture) -> None:
    assert tse([2.0, 1.5, 0.5]) == -4.0
    assert tse(np.array([1.0, 1.0])) > tse(np.array([2.0, 1.5]))  # faster drop scores higher
    with caplog.at_level(logging.WARNING, logger="nasnc.proxies"):
        assert math.isnan(tse([1.0, math.nan]))
    assert "non-finite" in caplog.text
    with pytest.raises(ConfigError, match="non-empty"):
        tse([])
    with pytest.raises(ConfigError, match="1-D"):
        tse(np.ones((2, 2)))
    for bad in (3.0, {1: 2.0}, "1.0"):  # a dict summed its keys
        with pytest.raises(ConfigError, match="sequence of losses"):
            tse(bad)  # type: ignore[arg-type]
