"""Cost of the βeff estimate at report points, against the cost of a training step.

``evaluate_arch`` refits a new :class:`~nasnc.capacitance.CapacitanceEstimator`
(Bayesian ridge over 7 basis functions) on the whole βeff trajectory at every
report point (``nasnc.pipeline._evaluate._estimate``). This script times that
call exactly as the pipeline makes it, on a synthetic trajectory
``β∞ − a·exp(−t/τ)`` plus AR(1) noise (the fit's cost depends on the number of
points, not on their values), for

* ``cpu-default``: the CPU default proxy, 320 steps, a report every 40 (8);
* ``gpu-scale``: 12 epochs × 196 steps (50k images, batch 256), a report
  every epoch (12);
* ``long``: 10,000 points, a report every 1,000 (10);
* ``long-dense``: 10,000 points, a report every 100 (100).

Each report point is timed ``--repeats`` times (median), as the pipeline
fits (BLAS capped at one thread) and, in the column ``any BLAS``, as it did
before (the BLAS library's own thread count). It then times a
training step (forward, backward, SGD step; batch 256, seeded random images)
of the CPU-default network (16 px, 8 channels, 1 cell per stage) and, with
``--benchmark-step``, of the benchmark network (32 px, 16 channels, 5 cells;
~6 s a step on one CPU thread) on ``--device``, and prints the ratios: per
report (estimate ÷ step) and per run (all estimates ÷ all steps). For a
device without a timed step it prints the step time at which the estimates
would be 1 % of the run.

    python benchmarks/estimate_cost.py                         # CPU, 1 torch thread
    python benchmarks/estimate_cost.py --benchmark-step
    python benchmarks/estimate_cost.py --device cuda --benchmark-step
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_info  # type: ignore[import-untyped]
from torch import nn

from nasnc.capacitance import CapacitanceEstimator
from nasnc.models import build_network
from nasnc.pipeline._evaluate import _estimate

ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)

#: name -> (total steps, report every)
SCENARIOS: dict[str, tuple[int, int]] = {
    "cpu-default": (320, 40),
    "gpu-scale": (12 * 196, 196),
    "long": (10_000, 1_000),
    "long-dense": (10_000, 100),
}


def trajectory(total: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = np.arange(1, total + 1, dtype=float)
    noise = np.zeros(total)
    eps = rng.normal(0.0, 0.01, total)
    for i in range(1, total):  # AR(1), as real readings are correlated
        noise[i] = 0.9 * noise[i - 1] + eps[i]
    return steps, 4.0 - 0.6 * np.exp(-steps / total / 0.2) + noise


def _unlimited(steps: np.ndarray, betas: np.ndarray, total: int) -> None:
    """The refit as before the pipeline capped BLAS at one thread."""
    CapacitanceEstimator().partial_fit(steps, betas, total_steps=total).estimate()


def time_estimates(
    total: int, every: int, repeats: int, fit: Callable[[np.ndarray, np.ndarray, int], object]
) -> list[float]:
    steps, betas = trajectory(total)
    points = list(range(every, total + 1, every))
    if points[-1] != total:
        points.append(total)
    out = []
    for n in points:
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fit(steps[:n], betas[:n], total)
            runs.append(time.perf_counter() - t0)
        out.append(statistics.median(runs))
    return out


def time_step(
    device: torch.device, *, resolution: int, channels: int, cells: int, probe: tuple[int, ...]
) -> float:
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_network(ARCH, channels=channels, cells_per_stage=cells, probe=probe).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(256, 3, resolution, resolution, generator=gen).to(device)
    y = torch.randint(0, 10, (256,), generator=gen).to(device)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for i in range(4 if device.type == "cpu" else 30):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else out
        loss_fn(logits, y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--benchmark-step", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    blas = ", ".join(f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info())
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} torch thread(s), device {device}; BLAS threads: "
        f"{blas}"
    )

    cpu_step = time_step(device, resolution=16, channels=8, cells=1, probe=(128, 64))
    bench_step = (
        time_step(device, resolution=32, channels=16, cells=5, probe=(256, 128))
        if args.benchmark_step
        else math.nan
    )
    print(f"training step, CPU-default network: {cpu_step * 1e3:.1f} ms")
    if args.benchmark_step:
        print(f"training step, benchmark network:   {bench_step * 1e3:.1f} ms")
    print()
    header = (
        f"{'scenario':<12} {'steps':>6} {'reports':>7} {'first ms':>9} {'last ms':>8} "
        f"{'total ms':>9} {'any BLAS':>9} {'last/step':>10} {'run share':>10} {'1 % at step':>12}"
    )
    print(header)
    print("-" * len(header))
    for name, (total, every) in SCENARIOS.items():
        times = time_estimates(total, every, args.repeats, _estimate)
        unlimited = sum(time_estimates(total, every, args.repeats, _unlimited))
        step = cpu_step if name == "cpu-default" else bench_step
        share = sum(times) / (sum(times) + total * step) if math.isfinite(step) else math.nan
        break_even = sum(times) / total * 99  # step time at which estimates are 1 % of the run
        print(
            f"{name:<12} {total:>6} {len(times):>7} {times[0] * 1e3:>9.2f} "
            f"{times[-1] * 1e3:>8.2f} {sum(times) * 1e3:>9.1f} {unlimited * 1e3:>9.1f} "
            f"{times[-1] / step if math.isfinite(step) else math.nan:>10.3g} "
            f"{share:>10.2%} {break_even * 1e3:>9.3f} ms"
        )


if __name__ == "__main__":
    main()
