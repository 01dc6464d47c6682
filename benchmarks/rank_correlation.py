"""Rank-correlation benchmark: βeff and its rivals on the same architectures.

Evaluates a seeded sample of NAS-Bench-201 cells at the CPU proxy (the
defaults of ``nasnc.pipeline.ProxyConfig``) with every baseline proxy, caches
the results (the run is resumable: rerun the same command to continue), then
prints the ``nasnc compare`` table against the builtin ground truth
(cifar10-valid, 200-epoch validation accuracy): each score's signed Kendall τ
and Spearman ρ with bootstrap 95 % intervals, and the cost per architecture.

    python benchmarks/rank_correlation.py                 # 100 cells (about 30-40 min on 2 cores)
    python benchmarks/rank_correlation.py --quick         # 20 cells
    python benchmarks/rank_correlation.py --n 60 --seed 1 --cache runs/rankcorr
    python benchmarks/rank_correlation.py --shard 1/2 &   # a second process on a second core
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nasnc.analysis import compare_scores
from nasnc.bench import open_benchmark
from nasnc.pipeline import ProxyConfig, evaluate_arch, load_proxy_data
from nasnc.proxies import PROXIES
from nasnc.space import sample_archs
from nasnc.store import Store
from nasnc.train import resolve_device


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100, help="architectures (default 100)")
    parser.add_argument("--quick", action="store_true", help="20 architectures")
    parser.add_argument("--seed", type=int, default=0, help="sample seed (training seed is 0)")
    parser.add_argument(
        "--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--cache", default="runs/rank-correlation")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: all cores)"
    )
    parser.add_argument("--epochs", type=float, default=None, help="override the proxy budget")
    parser.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="only train cells I, I+N, I+2N, ... (parallel processes sharing --cache); "
        "a final run without --shard reads them all from the cache and prints the table",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    n = 20 if args.quick else args.n

    config = ProxyConfig() if args.epochs is None else ProxyConfig(epochs=args.epochs)
    device = resolve_device(args.device)
    data = load_proxy_data(config, args.data_root, device=device, seed=0)
    store = Store(args.cache)
    archs = sample_archs(n, seed=args.seed, unique=True, exclude_zero=True)
    if args.shard:
        i, k = (int(v) for v in args.shard.split("/"))
        archs = archs[i::k]
        n = len(archs)
    entries = []
    trained = 0
    start = time.perf_counter()
    for i, arch in enumerate(archs, start=1):
        result = evaluate_arch(
            arch, config, data, seed=0, device=device, store=store, proxies=tuple(PROXIES)
        )
        entries.append(result.entry)
        trained += not result.cache_hit
        print(
            f"[{i:3d}/{n}] {'cached ' if result.cache_hit else 'trained'} "
            f"βeff={result.entry.summary['beta_eff']:.4g} "
            f"acc={result.entry.summary['proxy_valid_acc']:.3f} "
            f"{result.entry.summary['cost_s']:.1f}s  {arch}",
            file=sys.stderr,
            flush=True,
        )
    wall = time.perf_counter() - start
    if args.shard:
        print(f"shard {args.shard}: {n} cells done in {wall:.0f} s", file=sys.stderr)
        return 0

    truth = open_benchmark("builtin")
    report = compare_scores(entries, truth, "cifar10-valid", "valid")
    costs = np.array([float(e.summary["cost_s"]) for e in entries])
    print(f"\nproxy: {config.to_dict()}")
    print(
        f"n = {report['n']} architectures (seeded sample, seed {args.seed}); "
        f"missing from the benchmark: {len(report.get('missing', []))}; "
        f"trained now: {trained}, wall {wall:.0f} s"
    )
    print(
        f"proxy cost per architecture: median {np.median(costs):.1f} s, "
        f"mean {costs.mean():.1f} s (device {device}, {torch.get_num_threads()} threads)\n"
    )
    rows = sorted(report["scores"].items(), key=lambda kv: -abs(kv[1]["kendall_tau"] or 0))
    print(
        f"{'score':24s} {'Kendall τ':>10s} {'95% CI':>17s} "
        f"{'Spearman ρ':>11s} {'95% CI':>17s} {'top10 prec':>10s}"
    )
    for name, s in rows:
        kci = s.get("kendall_ci") or (math.nan, math.nan)
        sci = s.get("spearman_ci") or (math.nan, math.nan)
        print(
            f"{name:24s} {s['kendall_tau']:+10.3f} [{kci[0]:+.3f}, {kci[1]:+.3f}] "
            f"{s['spearman']:+11.3f} [{sci[0]:+.3f}, {sci[1]:+.3f}] {s['top10_precision']:10.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
