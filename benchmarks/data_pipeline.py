"""Throughput of the on-device data pipeline vs a per-image DataLoader, same model, same run.

The on-device pipeline (what ``nasnc.train`` uses): uint8 images already on the
device, one shuffled index gather per batch, crop (zero pad 4) + horizontal
flip as one batched gather, normalisation as one fused multiply-add.
The baseline: a ``torch.utils.data.Dataset`` that pads, crops, flips and
normalises each image in Python, collated by a ``DataLoader``
(``num_workers=0``, shuffled with a seeded generator) — the usual recipe.

For each setting it prints images/s of the data pipeline alone and of full
training steps (forward, backward, SGD) with the same model, and the ratios.

    python benchmarks/data_pipeline.py                  # both settings, 1 thread
    python benchmarks/data_pipeline.py --threads 2 --train-steps 40 8
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nasnc.data import DeviceTransform, ProxyData, load_dataset
from nasnc.models import build_network

ARCH = (  # the cell of the issue's `nasnc train` example
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
SETTINGS = {
    # name: (resolution, channels, cells per stage)
    "CPU default (16 px, ch 8, 1 cell)": (16, 8, 1),
    "benchmark (32 px, ch 16, 5 cells)": (32, 16, 5),
}
BATCH = 256


class PerImageDataset(Dataset):
    """The baseline: per-image pad/crop/flip/normalise in Python (numpy), like torchvision."""

    def __init__(self, data: ProxyData, seed: int) -> None:
        self.x = data.train_x.cpu().numpy()
        self.y = data.train_y.cpu().numpy()
        self.mean = np.asarray(data.mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(data.std, np.float32).reshape(3, 1, 1)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.x[i]
        _, h, w = img.shape
        padded = np.pad(img, ((0, 0), (4, 4), (4, 4)))
        top, left = self.rng.integers(0, 9, size=2)
        crop = padded[:, top : top + h, left : left + w]
        if self.rng.random() < 0.5:
            crop = crop[:, :, ::-1]
        out = (crop.astype(np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(out)), int(self.y[i])


def device_batches(data: ProxyData, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    transform = DeviceTransform(data.mean, data.std, device=data.device)
    gen = torch.Generator(device=data.device).manual_seed(seed)
    while True:
        perm = torch.randperm(data.num_train, generator=gen, device=data.device)
        for start in range(0, data.num_train, BATCH):
            idx = perm[start : start + BATCH]
            yield transform.train(data.train_x[idx], gen), data.train_y[idx]


def loader_batches(data: ProxyData, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    loader = DataLoader(
        PerImageDataset(data, seed),
        batch_size=BATCH,
        shuffle=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(seed),
    )
    while True:
        for xb, yb in loader:
            yield xb.to(data.device), yb.to(data.device)


def interleaved(
    pipelines: list[Iterator[tuple[torch.Tensor, torch.Tensor]]],
    rounds: int,
    steps: list[Callable[[torch.Tensor, torch.Tensor], None]] | None,
) -> list[tuple[float, float]]:
    """Per pipeline: (images/s, share of the time spent producing batches).

    The pipelines take turns batch by batch, so a change in the machine's load
    (it is shared) hits all of them alike.
    """
    k = len(pipelines)
    total, in_data, seen = [0.0] * k, [0.0] * k, [0] * k
    for i, batches in enumerate(pipelines):  # warm-up: first batch, first step
        xb, yb = next(batches)
        if steps is not None:
            steps[i](xb, yb)
    for _ in range(rounds):
        for i, batches in enumerate(pipelines):
            t0 = time.perf_counter()
            xb, yb = next(batches)
            t1 = time.perf_counter()
            if steps is not None:
                steps[i](xb, yb)
            t2 = time.perf_counter()
            total[i] += t2 - t0
            in_data[i] += t1 - t0
            seen[i] += int(yb.shape[0])
    return [(n / t, d / t) for n, t, d in zip(seen, total, in_data)]


def make_step(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], None]:
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    loss_fn = nn.CrossEntropyLoss()

    def step(xb: torch.Tensor, yb: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xb), yb).backward()
        opt.step()

    return step


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
        "--subset", type=int, default=10_000, help="training images (default 10000)"
    )
    parser.add_argument(
        "--data-batches", type=int, default=39, help="batches timed for the data-only figures"
    )
    parser.add_argument(
        "--train-steps",
        type=int,
        nargs=2,
        default=(20, 4),
        metavar=("CPU", "BENCH"),
        help="training steps timed per pipeline at each setting (default 20 4)",
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, {platform.machine()}, device {device}, "
        f"threads {torch.get_num_threads()}, batch {BATCH}, {args.subset} CIFAR-10 images"
    )
    header = (
        f"{'setting':<36} {'measure':<22} {'on-device img/s':>16} {'DataLoader img/s':>17} "
        f"{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for (name, (res, channels, cells)), n_steps in zip(SETTINGS.items(), args.train_steps):
        data = load_dataset(
            "cifar10",
            args.data_root,
            train_subset=args.subset,
            valid_size=0,
            resolution=res,
            device=device,
        )
        (fast, _), (slow, _) = interleaved(
            [device_batches(data, 0), loader_batches(data, 0)], args.data_batches, None
        )
        print(
            f"{name:<36} {'data pipeline only':<22} {fast:>16.0f} {slow:>17.0f} "
            f"{fast / slow:>6.1f}x"
        )
        steps = []
        for _ in range(2):  # the same model (same initialisation) for both pipelines
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = build_network(
                    ARCH, channels=channels, cells_per_stage=cells, probe=(128, 64)
                ).to(device)
            steps.append(make_step(model))
        (fast, fast_share), (slow, slow_share) = interleaved(
            [device_batches(data, 0), loader_batches(data, 0)], n_steps, steps
        )
        print(f"{'':<36} {'training steps':<22} {fast:>16.0f} {slow:>17.0f} {fast / slow:>6.2f}x")
        print(f"{'':<36} {'time in data pipeline':<22} {fast_share:>16.1%} {slow_share:>17.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
