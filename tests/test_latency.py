"""The measured ``latency`` score: protocol, caller untouched, screen/cache, study wiring."""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import optuna
import pytest
import torch
from optuna.study import StudyDirection
from optuna.trial import TrialState
from torch import nn

from nasnc import ConfigError
from nasnc.models import build_network
from nasnc.pipeline import ProxyConfig, load_proxy_data, screen_archs, screen_config
from nasnc.proxies import (
    LATENCY_REPEATS,
    LATENCY_WARMUP,
    PROXIES,
    compute_proxies,
    latency,
)
from nasnc.store import Store, config_hash
from nasnc_search._config import COST_OBJECTIVES, PickConfig, ScreenConfig
from nasnc_search._stages import directions
from nasnc_search._study import run_search
from nasnc_search._summary import summarize
from tests.test_search import TINY_PROXY, tiny_config

CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


class Counting(nn.Module):
    """Counts forward passes (class-level: the timed copy shares the counter)."""

    calls: ClassVar[list[bool]] = []

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Counting.calls.append(self.training)
        return self.head(self.bn(self.conv(x)).mean((2, 3)))


def _batch(n: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, size, size, generator=g), torch.zeros(n, dtype=torch.long)


def test_latency_is_registered_as_a_proxy_and_a_cost() -> None:
    assert PROXIES["latency"] is latency
    assert "latency" in COST_OBJECTIVES
    assert directions(["aggregate", "latency"]) == [
        StudyDirection.MAXIMIZE,
        StudyDirection.MINIMIZE,
    ]


def test_warmup_then_timed_passes_in_eval_mode_and_the_caller_untouched() -> None:
    net = Counting()
    net.train()
    seen: list[int] = []
    handle = net.register_forward_hook(lambda *_: seen.append(1))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = _batch(8)
    Counting.calls.clear()
    value = latency(net, x, y, warmup=3, repeats=4)
    assert isinstance(value, float) and math.isfinite(value) and value > 0
    assert Counting.calls == [False] * 7  # 3 warm-up + 4 timed, all in eval mode
    assert not seen  # the caller's hook never runs on our passes
    assert net.training  # the caller's mode is kept
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # BN stats too
    handle.remove()
    Counting.calls.clear()
    latency(net, x, y)
    assert len(Counting.calls) == LATENCY_WARMUP + LATENCY_REPEATS


def test_latency_grows_with_the_work_per_batch() -> None:
    net = build_network(CONV, channels=8, cells_per_stage=1, num_classes=10)
    small = latency(net, *_batch(4), repeats=7)
    large = latency(net, *_batch(256), repeats=7)
    # 64x the images: far more than timer noise, less than 64x (fixed overheads)
    assert large > 4 * small


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"warmup": -1}, r"warmup must be an integer >= 0, but got warmup=-1"),
        ({"repeats": 0}, r"repeats must be an integer >= 1, but got repeats=0"),
        ({"repeats": 2.5}, r"repeats=2.5"),
        ({"warmup": True}, r"warmup=True"),
    ],
)
def test_bad_protocol_is_refused_naming_the_value(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        latency(Counting(), *_batch(2), **kwargs)  # type: ignore[arg-type]


def test_compute_proxies_times_latency_beside_the_others() -> None:
    net = build_network(CONV, channels=4, cells_per_stage=1, num_classes=10)
    timings: dict[str, float] = {}
    out = compute_proxies(net, *_batch(8), names=["flops", "latency"], timings=timings)
    assert list(out) == ["flops", "latency"]
    assert out["latency"] > 0 and timings["latency"] > 0


def test_config_accepts_latency_in_screen_pick_and_objectives(
    tmp_path: Path, synthetic_root: Path
) -> None:
    ScreenConfig(size=10, top_k=2, scores=("naswot", "latency"))
    # a negative weight: the fastest cell ranks first on latency
    PickConfig(weights={"aggregate": 1.0, "latency": -0.5})
    config = tiny_config(
        tmp_path, synthetic_root, objectives=["aggregate", "latency"], **{"screen.size": 10}
    )
    assert config.objectives == ("aggregate", "latency")


def test_screen_caches_latency_under_the_device_type(tmp_path: Path, synthetic_root: Path) -> None:
    proxy = ProxyConfig(**TINY_PROXY)
    data = load_proxy_data(proxy, synthetic_root, device="cpu")
    store = Store(tmp_path / "cache", durable=False)
    archs = [CONV, "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"]
    first = screen_archs(archs, proxy, data, names=["latency"], store=store, device="cpu")
    assert all(v > 0 for v in first.scores["latency"])
    resolved = screen_config(proxy, data, device="cpu")
    assert resolved["device_type"] == "cpu"  # CPU and GPU latencies never share a key
    entries = store.entries(config_hash=config_hash(resolved))
    assert len(entries) == 2 and all(e.config["device_type"] == "cpu" for e in entries)
    again = screen_archs(archs, proxy, data, names=["latency"], store=store, device="cpu")
    assert again.cached == 2
    assert list(again.scores["latency"]) == list(first.scores["latency"])  # reused, not remeasured


def test_multi_objective_study_on_aggregate_and_latency(
    tmp_path: Path, synthetic_root: Path
) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = tiny_config(
        tmp_path,
        synthetic_root,
        n_trials=3,
        objectives=["aggregate", "latency"],
        **{
            "screen.size": 8,
            "screen.top_k": 3,
            "pruner.name": "none",
            "proxy.epochs": 1,
            "sampler.name": "nsga2",
            "sampler.kwargs": {"population_size": 2},
        },
    )
    study = run_search(config)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["aggregate", "latency"]
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert done and all(math.isfinite(t.values[0]) and t.values[1] > 0 for t in done)
    front = summarize(study, config).to_dict()["pareto_front"]
    assert {r["trial"] for r in front} == {t.number for t in study.best_trials}
    assert all(set(r["values"]) == {"aggregate", "latency"} for r in front)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_latency_waits_for_the_kernels() -> None:
    net = build_network(CONV, channels=64, cells_per_stage=3, num_classes=10).to("cuda")
    x, y = _batch(8, size=32)
    small = latency(net, x.cuda(), y.cuda(), repeats=9)
    large = latency(net, torch.randn(1024, 3, 32, 32, device="cuda"), y.cuda(), repeats=9)
    # without synchronisation both would time only the kernel launches (about equal)
    assert large > 4 * small > 0
    out = compute_proxies(net, x, y, names=["latency"])  # the batch is moved to the model
    assert out["latency"] > 0
