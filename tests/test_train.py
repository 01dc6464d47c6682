"""nasnc.train on a synthetic CIFAR-10 (tiny subsets and tiny networks, CPU)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nasnc import ConfigError, DataError
from nasnc.capacitance import CapacitanceObserver
from nasnc.data import ProxyData, load_dataset
from nasnc.models import build_network
from nasnc.train import (
    BASE_COLUMNS,
    Budget,
    Observer,
    Report,
    TrainRecipe,
    resolve_device,
    train_proxy,
)
from nasnc.train._loop import _cosine_lr

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
RECIPE = TrainRecipe(batch_size=64, eval_batch_size=128)


@pytest.fixture(scope="module")
def data(synthetic_root: Path) -> ProxyData:
    """256 training and 128 validation images at 8 px: 4 steps per epoch at batch 64."""
    return load_dataset("cifar10", synthetic_root, train_subset=256, valid_size=128, resolution=8)


def tiny_model(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_network(ARCH, channels=4, cells_per_stage=1, probe=(16, 8), probe_seed=seed)


class Recorder:
    """A minimal observer: records the calls it gets and reports a weight norm."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.steps: list[int] = []
        self.reports: list[int] = []
        self.ended = 0
        self._norm = torch.zeros(())

    def on_train_start(self, model: nn.Module, total_steps: int) -> None:
        self.started.append(total_steps)

    def on_step(self, step: int, model: nn.Module) -> None:
        self.steps.append(step)
        self._norm = next(model.parameters()).detach().norm()  # stays on the device

    def on_report(self, step: int) -> Mapping[str, float]:
        self.reports.append(step)
        return {"probe_norm": float(self._norm), "reports_so_far": float(len(self.reports))}

    def on_train_end(self) -> None:
        self.ended += 1


def test_train_records_trajectory_and_calls_observers(data: ProxyData) -> None:
    rec = Recorder()
    assert isinstance(rec, Observer)
    result = train_proxy(tiny_model(), data, 2, device="cpu", observers=[rec], recipe=RECIPE)
    assert not result.diverged and not result.stopped and result.reason is None
    assert result.steps == 8 and result.reports == 2
    assert rec.started == [8] and rec.steps == list(range(1, 9)) and rec.ended == 1
    assert rec.reports == [4, 8]  # once per epoch by default
    traj = result.trajectory
    assert list(traj) == [*BASE_COLUMNS, "probe_norm", "reports_so_far"]
    assert all(v.shape == (2,) and v.dtype == np.float64 for v in traj.values())
    np.testing.assert_array_equal(traj["step"], [4, 8])
    np.testing.assert_allclose(traj["epoch"], [1.0, 2.0])
    assert ((traj["valid_acc"] >= 0) & (traj["valid_acc"] <= 1)).all()
    assert ((traj["train_acc"] >= 0) & (traj["train_acc"] <= 1)).all()
    assert np.isfinite(traj["train_loss"]).all() and (traj["probe_norm"] > 0).all()
    assert (np.diff(traj["wall_s"]) > 0).all() and result.seconds >= traj["wall_s"][-1]
    assert result.final_valid_acc == traj["valid_acc"][-1]


def test_report_every_and_budgets(data: ProxyData, synthetic_root: Path) -> None:
    rec = Recorder()
    res = train_proxy(
        tiny_model(),
        data,
        Budget(steps=7),
        device="cpu",
        observers=[rec],
        report_every=3,
        recipe=RECIPE,
    )
    assert res.steps == 7 and rec.reports == [3, 6, 7]  # the last step always reports
    np.testing.assert_allclose(res.trajectory["epoch"], [0.75, 1.5, 1.75])
    half = train_proxy(tiny_model(), data, Budget(epochs=0.5), device="cpu", recipe=RECIPE)
    assert half.steps == 2 and half.reports == 1
    # a last incomplete batch counts as a step unless drop_last
    odd = load_dataset("cifar10", synthetic_root, train_subset=100, valid_size=10, resolution=8)
    assert train_proxy(tiny_model(), odd, 1, device="cpu", recipe=RECIPE).steps == 2
    dropped = TrainRecipe(batch_size=64, drop_last=True)
    assert train_proxy(tiny_model(), odd, 1, device="cpu", recipe=dropped).steps == 1


def test_same_seed_same_run_other_seed_other_run(data: ProxyData) -> None:
    def run(model_seed: int, seed: int) -> dict[str, np.ndarray]:
        res = train_proxy(
            tiny_model(model_seed),
            data,
            Budget(steps=6),
            device="cpu",
            seed=seed,
            report_every=2,
            recipe=RECIPE,
        )
        return {k: v for k, v in res.trajectory.items() if k != "wall_s"}

    a, b = run(0, 0), run(0, 0)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    c = run(0, 1)  # same start, other batches and augmentation
    assert not np.array_equal(a["train_loss"], c["train_loss"])


def test_library_leaves_global_rng_alone(data: ProxyData) -> None:
    model = tiny_model()
    state = torch.random.get_rng_state()
    train_proxy(model, data, Budget(steps=2), device="cpu", recipe=RECIPE)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_stop_callback_ends_cleanly(data: ProxyData) -> None:
    seen: list[Report] = []
    rec = Recorder()

    def stop_at_second(report: Report) -> str | None:
        seen.append(report)
        return "stop" if len(seen) == 2 else None

    res = train_proxy(
        tiny_model(),
        data,
        5,
        device="cpu",
        observers=[rec],
        report_every=2,
        on_report=stop_at_second,
        recipe=RECIPE,
    )
    assert res.stopped and not res.diverged and res.steps == 4
    assert "stopped" in (res.reason or "") and rec.ended == 1
    assert [r.step for r in seen] == [2, 4] and seen[0].total_steps == 20
    assert set(seen[1].extras) == {"probe_norm", "reports_so_far"}
    assert seen[1].extras["reports_so_far"] == 2.0 and math.isclose(seen[1].epoch, 1.0)
    assert res.reports == 2 and res.final_valid_acc == seen[1].valid_acc


class NaNAfter(nn.Module):
    """A real (tiny) model whose output turns NaN from its ``k``-th training forward on."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k, self.calls = k, 0
        self.linear = nn.Linear(3 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
        out = self.linear(x.flatten(1))
        return out * float("nan") if self.training and self.calls >= self.k else out


def test_non_finite_loss_is_a_diverged_result(data: ProxyData) -> None:
    called: list[Report] = []
    rec = Recorder()
    res = train_proxy(
        NaNAfter(3), data, 3, device="cpu", observers=[rec], on_report=called.append, recipe=RECIPE
    )
    assert res.diverged and not res.stopped and res.steps == 3
    assert "non-finite" in (res.reason or "") and "step 3" in (res.reason or "")
    assert res.reports == 1 and math.isnan(res.trajectory["train_loss"][-1])
    assert math.isnan(res.final_valid_acc) and called == [] and rec.ended == 1


def test_huge_learning_rate_diverges(data: ProxyData) -> None:
    res = train_proxy(
        tiny_model(), data, 3, device="cpu", recipe=TrainRecipe(lr=1e6, batch_size=64)
    )
    assert res.diverged and res.steps < 12 and "non-finite" in (res.reason or "")


def test_real_capacitance_observer_streams_beta_eff(data: ProxyData) -> None:
    obs = CapacitanceObserver(every_n_steps=2)
    res = train_proxy(tiny_model(), data, 2, device="cpu", observers=[obs], recipe=RECIPE)
    traj = res.trajectory
    for key in (
        "beta_eff",
        "beta_eff_chain",
        "beta_eff_product",
        "beta_eff_chain_sf",
        "beta_eff_product_sf",
    ):
        assert key in traj and np.isfinite(traj[key]).all()
    per_step = obs.trajectory()
    np.testing.assert_array_equal(per_step["step"], [2, 4, 6, 8])
    # the report row carries the observer's latest value at that step
    np.testing.assert_allclose(traj["beta_eff"], per_step["beta_eff"][[1, 3]])


def test_cosine_schedule() -> None:
    r = TrainRecipe(lr=0.1)
    assert _cosine_lr(r, 0, 100) == pytest.approx(0.1)
    assert _cosine_lr(r, 50, 100) == pytest.approx(0.05)
    assert _cosine_lr(r, 99, 100) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.99)))
    w = TrainRecipe(lr=0.1, warmup_steps=10, lr_min=0.01)
    assert _cosine_lr(w, 0, 110) == pytest.approx(0.01)
    assert _cosine_lr(w, 10, 110) == pytest.approx(0.1)
    assert _cosine_lr(w, 110, 110) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"lr": -1.0}, "lr=-1.0"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"amp": "fp8"}, "amp='fp8'"),
        ({"channels_last": "yes"}, "channels_last='yes'"),
        ({"grad_clip": 0.0}, "grad_clip=0.0"),
        ({"label_smoothing": 1.0}, "label_smoothing=1.0"),
        ({"lr": 0.1, "lr_min": 0.2}, "lr_min=0.2"),
        ({"momentum": 0.0}, "momentum=0"),
        ({"augment": "no"}, "augment='no'"),
    ],
)
def test_recipe_validation(kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        TrainRecipe(**kwargs)
    assert needle in str(err.value)


def test_recipe_from_mapping_names_unknown_keys() -> None:
    assert TrainRecipe.from_mapping({"lr": 0.05}).lr == 0.05
    assert TrainRecipe().to_dict()["weight_decay"] == 5e-4
    with pytest.raises(ConfigError, match="'learning_rate'"):
        TrainRecipe.from_mapping({"learning_rate": 0.05})


def test_argument_validation(data: ProxyData) -> None:
    model = tiny_model()
    with pytest.raises(ConfigError, match="report_every=0"):
        train_proxy(model, data, 1, device="cpu", report_every=0)
    with pytest.raises(ConfigError, match="epochs=-1"):
        train_proxy(model, data, -1, device="cpu")
    with pytest.raises(ConfigError, match="exactly one"):
        Budget(epochs=1, steps=3)
    with pytest.raises(ConfigError, match="steps=0"):
        Budget(steps=0)
    with pytest.raises(ConfigError, match="budget="):
        train_proxy(model, data, "3", device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="object lacks on_train_start"):
        train_proxy(model, data, 1, device="cpu", observers=[object()])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="verdict='halt'"):
        train_proxy(model, data, 1, device="cpu", recipe=RECIPE, on_report=lambda r: "halt")
    with pytest.raises(ConfigError, match="amp='bf16' needs a CUDA device"):
        train_proxy(model, data, 1, device="cpu", recipe=TrainRecipe(amp="bf16"))
    empty = ProxyData(
        "toy",
        10,
        8,
        data.train_x[:0],
        data.train_y[:0],
        data.valid_x,
        data.valid_y,
        data.mean,
        data.std,
    )
    with pytest.raises(DataError, match="no training images"):
        train_proxy(model, empty, 1, device="cpu")


def test_empty_validation_set_gives_nan_accuracy(data: ProxyData) -> None:
    no_valid = ProxyData(
        "toy",
        10,
        8,
        data.train_x,
        data.train_y,
        data.valid_x[:0],
        data.valid_y[:0],
        data.mean,
        data.std,
    )
    res = train_proxy(tiny_model(), no_valid, Budget(steps=1), device="cpu", recipe=RECIPE)
    assert math.isnan(res.final_valid_acc) and not res.diverged


def test_resolve_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else None
    auto = resolve_device("auto")
    if expected:
        assert auto.type == expected
    elif not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        assert auto == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="device='tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_amp_channels_last(data: ProxyData) -> None:
    from nasnc.train._loop import native_bf16

    def convs_seen(model: nn.Module) -> list[tuple[torch.dtype, bool]]:
        """(output dtype, input channels-last) of every conv call while training."""
        seen: list[tuple[torch.dtype, bool]] = []

        def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if torch.is_grad_enabled():  # training steps, not the evaluation
                seen.append((out.dtype, inp[0].is_contiguous(memory_format=torch.channels_last)))

        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.register_forward_hook(hook)
        return seen

    model = tiny_model()
    seen = convs_seen(model)
    obs = CapacitanceObserver()
    res = train_proxy(model, data, 2, device="cuda", observers=[obs], recipe=RECIPE)
    assert not res.diverged and np.isfinite(res.trajectory["beta_eff"]).all()
    assert 0 <= res.final_valid_acc <= 1
    auto = torch.bfloat16 if native_bf16(torch.device("cuda")) else torch.float16
    assert seen and all(dtype == auto for dtype, _ in seen)  # amp: auto was on
    # channels_last: auto was on, for the batches (the stem's input) and the weights
    assert seen[0][1]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    model = tiny_model()
    seen = convs_seen(model)
    before = [p.detach().clone() for p in model.parameters()]
    fp16 = train_proxy(
        model,
        data,
        1,
        device="cuda",
        recipe=TrainRecipe(batch_size=64, amp="fp16", grad_clip=5.0),
    )
    assert np.isfinite(fp16.trajectory["train_loss"]).all()
    assert seen and all(dtype == torch.float16 for dtype, _ in seen)
    # the GradScaler skips a step on an overflow: at least one step must have been taken
    assert any(not torch.equal(b, p.detach().cpu()) for b, p in zip(before, model.parameters()))


@pytest.mark.parametrize(("capability", "want"), [((7, 0), "float16"), ((8, 0), "bfloat16")])
def test_amp_auto_takes_bf16_only_where_the_gpu_computes_it(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], want: str
) -> None:
    # torch.cuda.is_bf16_supported() says True on a V100 (it counts emulation), and asks
    # about the current device: auto picked slow emulated bf16 there, never fp16
    from nasnc.train import autocast_dtype

    asked: list[torch.device] = []

    def capability_of(device: torch.device) -> tuple[int, int]:
        asked.append(device)
        return capability

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability_of)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    dev = torch.device("cuda", 1)
    assert autocast_dtype(TrainRecipe(amp="auto"), dev) == getattr(torch, want)
    assert asked == [dev]  # the training device, not the current one
    assert autocast_dtype(TrainRecipe(amp="bf16"), dev) == torch.bfloat16
    assert autocast_dtype(TrainRecipe(amp="fp16"), dev) == torch.float16
