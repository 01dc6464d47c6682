"""Throughput of the screen (stage 1 of ``nasnc search``), side by side in one run.

Two comparisons on the proxy network of ``configs/cpu-30min.yaml`` (CIFAR-10
at 16 px, channels 8, 1 cell per stage, probe 128-64) and its free scores
(NASWOT, synflow, jacob_cov, FLOPs), each checked to give identical scores:

1. **copy**: the proxies before the change (a ``copy.deepcopy`` per proxy,
   jacob_cov back-propagating to the weights too) against the current ones
   (:func:`nasnc.proxies._zero_cost._clone_module`, input gradient only),
   one process, ``--threads`` torch threads, no cache; the two alternate over
   ``--rounds`` slices of the pool so a shared machine's load hits both alike.
2. **processes**: :func:`nasnc.pipeline.screen_archs` into a fresh cache with
   one process against ``--workers`` processes (this one and ``--workers - 1``
   spawned, ``--threads`` each), start-up of the processes included,
   alternating over ``--rounds / 2`` slices.

    python benchmarks/screen_throughput.py                  # 240 cells, 2 workers
    python benchmarks/screen_throughput.py --cells 60 --only copy

Prints cells per second and the ratios; read the ratios on a shared machine.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

from nasnc.pipeline import ProxyConfig, load_proxy_data, screen_archs
from nasnc.pipeline import _screen as pipeline_screen
from nasnc.proxies import AGGREGATES, _zero_cost
from nasnc.space import sample_archs
from nasnc.store import Store

SCORES = AGGREGATES["aggregate"]
PROXY = {
    "dataset": "cifar10",
    "resolution": 16,
    "train_subset": 10000,
    "valid_size": 2000,
    "channels": 8,
    "cells_per_stage": 1,
    "probe": [128, 64],
}


def deepcopy_private_copy(model: nn.Module, *, share_tensors: bool = False) -> nn.Module:
    """The proxies' private copy before the fast clone (one deepcopy per proxy)."""
    del share_tensors
    work = copy.deepcopy(model)
    for m in work.modules():
        for attr in _zero_cost._MODULE_HOOKS:
            getattr(m, attr).clear()
    return work


@contextmanager
def legacy_proxies() -> Iterator[None]:
    """The proxies before the change: a deepcopy per proxy; jacob_cov with weight gradients."""
    real = nn.Parameter.requires_grad_

    def always(self: nn.Parameter, requires_grad: bool = True) -> nn.Parameter:
        return real(self, True)  # type: ignore[return-value]

    with (
        mock.patch.object(_zero_cost, "_private_copy", deepcopy_private_copy),
        mock.patch.object(nn.Parameter, "requires_grad_", always),
    ):
        yield


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def compare_copy(args: argparse.Namespace, archs: list, proxy: ProxyConfig, data) -> None:  # type: ignore[type-arg,no-untyped-def]
    seconds = {"deepcopy": 0.0, "clone": 0.0}
    identical = True
    slices = np.array_split(np.arange(len(archs)), args.rounds)
    for r, rows in enumerate(slices):
        part = [archs[i] for i in rows]
        order = ("deepcopy", "clone") if r % 2 == 0 else ("clone", "deepcopy")
        got = {}
        for name in order:
            with legacy_proxies() if name == "deepcopy" else nullcontext():
                t0 = time.perf_counter()
                res = screen_archs(part, proxy, data, names=SCORES, device="cpu")
                seconds[name] += time.perf_counter() - t0
            got[name] = res.scores
        identical &= same(got["deepcopy"], got["clone"])
    n = len(archs)
    print(f"\n1. proxies before/now, 1 process, {args.threads} thread(s), {n} cells, no cache")
    print(f"{'copy':<10} {'seconds':>8} {'cells/s':>8} {'s/cell':>7}")
    for name, s in seconds.items():
        print(f"{name:<10} {s:8.1f} {n / s:8.2f} {s / n:7.3f}")
    print(f"speed-up clone/deepcopy: {seconds['deepcopy'] / seconds['clone']:.2f}x")
    print(f"scores identical: {identical}")


def compare_processes(args: argparse.Namespace, archs: list, proxy: ProxyConfig, data) -> None:  # type: ignore[type-arg,no-untyped-def]
    pipeline_screen.MIN_PARALLEL = 1
    seconds = {1: 0.0, args.workers: 0.0}
    identical = True
    slices = np.array_split(np.arange(len(archs)), max(1, args.rounds // 2))
    for r, rows in enumerate(slices):
        part = [archs[i] for i in rows]
        order = (1, args.workers) if r % 2 == 0 else (args.workers, 1)
        got = {}
        for workers in order:
            with tempfile.TemporaryDirectory() as tmp:
                store = Store(Path(tmp) / "cache", durable=False)
                t0 = time.perf_counter()
                res = screen_archs(
                    part,
                    proxy,
                    data,
                    names=SCORES,
                    device="cpu",
                    store=store,
                    workers=workers,
                    threads=args.threads,
                )
                seconds[workers] += time.perf_counter() - t0
                got[workers] = res.scores
                assert len(store) == len({a.graph_form() for a in part})  # one per network
        identical &= same(got[1], got[args.workers])
    n = len(archs)
    print(
        f"\n2. processes, {args.threads} thread(s) each, {n} cells into fresh caches "
        f"({len(slices)} alternating slices, process start-up included)"
    )
    print(f"{'processes':<10} {'seconds':>8} {'cells/s':>8}")
    for workers, s in seconds.items():
        print(f"{workers:<10} {s:8.1f} {n / s:8.2f}")
    print(f"speed-up {args.workers} processes / 1: {seconds[1] / seconds[args.workers]:.2f}x")
    print(f"scores identical: {identical}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=240)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--rounds", type=int, default=4, help="alternating slices (copy)")
    parser.add_argument("--only", choices=("copy", "processes"), default=None)
    parser.add_argument("--seed", type=int, default=0, help="seed of the pool")
    parser.add_argument(
        "--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    proxy = ProxyConfig(**PROXY)  # type: ignore[arg-type]
    data = load_proxy_data(proxy, args.data_root, device="cpu")
    archs = sample_archs(args.cells, seed=args.seed, unique=True, exclude_zero=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load:.1f}; "
        f"scores {', '.join(SCORES)}"
    )
    if args.only in (None, "copy"):
        compare_copy(args, archs, proxy, data)
    if args.only in (None, "processes"):
        compare_processes(args, archs, proxy, data)


if __name__ == "__main__":
    main()
