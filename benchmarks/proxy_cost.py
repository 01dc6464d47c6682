"""Cost of one proxy evaluation (seconds per architecture) at the CPU default proxy.

The CPU default (``nasnc train`` without options; DESIGN "What we know so
far", second row): CIFAR-10, 10k training images at 16 px, 2,000 validation
images, channels 8, 1 cell per stage, probe 128-64, 8 epochs, lr 0.1 cosine,
batch 256, βeff observed after every step, one report (validation pass) per
epoch. Times ``train_proxy`` end to end (wall clock, and the process's CPU
time, which a shared machine disturbs less) for three cells: all
nor_conv_3x3, all skip_connect and a mixed one, each built from seed 0.
``--overhead`` also runs each cell without the observer and prints the
βeff overhead in CPU time.

    python benchmarks/proxy_cost.py                      # 1 thread, about 1-2 min
    python benchmarks/proxy_cost.py --threads 2 --overhead
    python benchmarks/proxy_cost.py --no-augment        # the same budget without crop/flip
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import torch

from nasnc.capacitance import CapacitanceObserver
from nasnc.data import ProxyData, load_dataset
from nasnc.models import build_network, count_params
from nasnc.space import Arch
from nasnc.train import TrainRecipe, TrainResult, resolve_device, train_proxy

ARCHS = {
    "all nor_conv_3x3": str(Arch(("nor_conv_3x3",) * 6)),
    "all skip_connect": str(Arch(("skip_connect",) * 6)),
    "mixed": str(
        Arch(
            ("nor_conv_3x3", "nor_conv_1x1", "skip_connect", "avg_pool_3x3", "nor_conv_3x3", "none")
        )
    ),
}


def run(
    arch: str,
    data: ProxyData,
    epochs: float,
    device: torch.device,
    observe: bool,
    recipe: TrainRecipe,
) -> tuple[TrainResult, int, float]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_network(arch, channels=8, cells_per_stage=1, probe=(128, 64), probe_seed=0)
    observers = [CapacitanceObserver(every_n_steps=1)] if observe else []
    cpu = time.process_time()
    result = train_proxy(
        model, data, epochs, device=device, seed=0, observers=observers, recipe=recipe
    )
    return result, count_params(model), time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)"
    )
    parser.add_argument(
        "--epochs", type=float, default=8.0, help="proxy budget (default 8, the CPU default)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--overhead", action="store_true", help="also time each cell without the βeff observer"
    )
    parser.add_argument(
        "--no-augment", action="store_true", help="train without random crop + flip"
    )
    parser.add_argument("--crop-padding", type=int, default=4, help="random-crop padding (4)")
    args = parser.parse_args()
    recipe = TrainRecipe(augment=not args.no_augment, crop_padding=args.crop_padding)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    data = load_dataset(
        "cifar10",
        args.data_root,
        train_subset=10_000,
        valid_size=2000,
        resolution=16,
        device=device,
    )
    load_s = time.perf_counter() - t0
    print(
        f"torch {torch.__version__}, {platform.machine()}, device {device}, "
        f"threads {torch.get_num_threads()}; CPU default proxy: {data.num_train} images at "
        f"{data.resolution} px, {args.epochs:g} epochs, channels 8, 1 cell/stage, probe 128-64 "
        f"(data load {load_s:.1f} s, once); augmentation "
        f"{'off' if args.no_augment else f'crop pad {args.crop_padding} + flip'}"
    )
    cols = (
        f"{'cell':<18} {'params':>8} {'steps':>6} {'wall s':>7} {'CPU s':>6} {'valid acc':>10} "
        f"{'beta_eff':>9}"
    )
    if args.overhead:
        cols += f" {'CPU s w/o obs.':>14} {'overhead':>9}"
    print(cols)
    print("-" * len(cols))
    for arch in ARCHS.values():  # warm-up: one-time kernel initialisation is not the proxy's cost
        run(arch, data, 0.05, device, True, recipe)
    total = total_cpu = 0.0
    for name, arch in ARCHS.items():
        result, params, cpu = run(arch, data, args.epochs, device, True, recipe)
        total += result.seconds
        total_cpu += cpu
        beta = float(result.trajectory["beta_eff"][-1]) if result.reports else math.nan
        line = (
            f"{name:<18} {params:>8d} {result.steps:>6d} {result.seconds:>7.1f} {cpu:>6.1f} "
            f"{result.final_valid_acc:>10.3f} {beta:>9.4f}"
        )
        if args.overhead:
            _, _, plain = run(arch, data, args.epochs, device, False, recipe)
            line += f" {plain:>14.1f} {cpu / plain - 1:>+8.1%}"
        print(line + ("  DIVERGED" if result.diverged else ""))
    n = len(ARCHS)
    print(f"mean {total / n:.1f} s wall, {total_cpu / n:.1f} s CPU per architecture")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
