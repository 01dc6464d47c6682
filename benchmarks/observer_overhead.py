"""Cost of streaming βeff: training steps with the observer at every step vs without, one run.

The benchmark network (``build_network(arch, channels=16, cells_per_stage=5,
probe=(256, 128))``, a 64 -> 256 -> 128 -> 10 probe) trains with a plain SGD
loop (momentum 0.9, weight decay 5e-4, cross-entropy) on 32 px batches of 64
random images from a seeded generator (the cost of a step does not depend on
the pixels, and the script needs no data set). Steps with and without the
observer are interleaved in pairs whose order alternates, so that drift of a
shared machine hits both alike; the observer is called exactly as
``nasnc.train`` calls it (``on_step(step, model)`` after ``optimizer.step()``)
and records all four variants. It prints the median step time of each, their
ratio (target <= 1.02) and the median time of one ``on_step`` alone.

    python benchmarks/observer_overhead.py                 # CPU, 1 torch thread
    python benchmarks/observer_overhead.py --threads 2 --pairs 30
    python benchmarks/observer_overhead.py --device cuda --pairs 200
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from nasnc.capacitance import CapacitanceObserver
from nasnc.models import build_network

ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--pairs", type=int, default=15, help="interleaved step pairs")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default=ARCH)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    torch.manual_seed(0)
    model = build_network(args.arch, channels=16, cells_per_stage=5, probe=(256, 128)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(4, args.batch, 3, args.resolution, args.resolution, generator=gen)
    labels = torch.randint(0, 10, (4, args.batch), generator=gen)
    images, labels = images.to(device), labels.to(device)
    observer = CapacitanceObserver(every_n_steps=1, variants=True)
    total = args.warmup + 2 * args.pairs
    observer.on_train_start(model, total)
    step = 0

    def train_step(observe: bool) -> float:
        nonlocal step
        sync()
        start = time.perf_counter()
        i = step % images.shape[0]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(images[i]), labels[i]).backward()
        opt.step()
        step += 1
        if observe:
            observer.on_step(step, model)
        sync()
        return time.perf_counter() - start

    for k in range(args.warmup):
        train_step(observe=k % 2 == 0)
    plain, observed = [], []
    for k in range(args.pairs):
        order = (False, True) if k % 2 == 0 else (True, False)
        for observe in order:
            (observed if observe else plain).append(train_step(observe))

    on_step_alone = []
    for _ in range(50):
        sync()
        start = time.perf_counter()
        step += 1
        observer.on_step(step, model)
        sync()
        on_step_alone.append(time.perf_counter() - start)

    t_plain, t_obs = statistics.median(plain), statistics.median(observed)
    print(
        f"network channels 16, 5 cells/stage, probe 64->256->128->10, {args.resolution} px, "
        f"batch {args.batch}, device {device}; torch {torch.__version__}, {args.threads} "
        f"thread(s), {platform.processor() or platform.machine()}"
    )
    print(f"arch {args.arch}")
    print(f"{'':<28}{'median step':>14}{'min':>12}{'max':>12}")
    for name, ts in (("without observer", plain), ("with observer (4 variants)", observed)):
        print(
            f"{name:<28}{statistics.median(ts) * 1e3:>11.1f} ms{min(ts) * 1e3:>9.1f} ms"
            f"{max(ts) * 1e3:>9.1f} ms"
        )
    paired = statistics.median(o / p for o, p in zip(observed, plain))
    alone = statistics.median(on_step_alone)
    print(f"ratio of medians with/without: {t_obs / t_plain:.4f}  ({args.pairs} interleaved pairs)")
    print(f"median of paired ratios:       {paired:.4f}")
    print(
        f"one observer.on_step alone: {alone * 1e3:.3f} ms (median of 50), i.e. a ratio of "
        f"{1 + alone / t_plain:.5f} on the median step"
    )
    traj = observer.trajectory()
    print(f"recorded {traj['step'].size} rows; last beta_eff {traj['beta_eff'][-1]:.4f}")


if __name__ == "__main__":
    main()
