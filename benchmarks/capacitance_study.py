"""Capacitance study (issue 11): whole-network βeff against the free scores, per sample.

For a seeded sample of distinct NAS-Bench-201 cells (optionally disjoint from
another seeded sample) this computes, per cell:

``free``   NASWOT, synflow, jacob_cov, FLOPs, params of the CPU proxy network
           (``ProxyConfig()`` defaults) at initialisation, on its first 64
           training images (as ``evaluate_arch`` and ``screen_archs`` do);
``init``   whole-network βeff (:func:`nasnc.capacitance.network_beta_eff`, four
           variants) of the same proxy network at initialisation;
``bench``  the same on the benchmark-size network (16 channels, 5 cells per
           stage, linear head) at initialisation;
``train``  the proxy network after its first epoch of the default 8-epoch
           recipe (stopped at the first report point): whole-network βeff of
           W (line 2, trained) and of W - W0 (line 3, the weight change), and
           the proxy validation accuracy at that point, as a trained baseline.

Results go to JSON lines under ``--out`` (resumable; ``--shard I/K`` splits
the cells over processes). ``--table`` prints, against the builtin
cifar10-valid 200-epoch validation accuracy: signed Kendall τ and Spearman ρ
with bootstrap 95 % intervals, top-10 precision, the cost per cell, and line
5 of the issue -- τ of the free aggregate (NASWOT, synflow, jacob_cov, FLOPs)
with each variant added (in its defined orientation, higher = better) and
the partial Kendall τ of each score with the ground truth given the aggregate.

    # sample A (seed 1) and sample B (seed 2, disjoint from A), 150 cells each
    nice -n 19 python benchmarks/capacitance_study.py --seed 1 --n 150 --compute free init bench
    nice -n 19 python benchmarks/capacitance_study.py --seed 2 --n 150 --disjoint-from 1 \\
        --compute free init bench
    nice -n 19 python benchmarks/capacitance_study.py --seed 1 --n 150 --compute train --shard 0/2
    python benchmarks/capacitance_study.py --seed 1 --n 150 --table
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from nasnc.bench import open_benchmark
from nasnc.capacitance import VARIANTS, coupling_graph, network_beta_eff, variant_name
from nasnc.data import ProxyData
from nasnc.metrics import correlation_summary
from nasnc.models import build_network
from nasnc.pipeline import ProxyConfig, load_proxy_data
from nasnc.pipeline._evaluate import _build as build_proxy_network
from nasnc.proxies import AGGREGATES, compute_proxies, rank_aggregate
from nasnc.space import Arch, sample_archs
from nasnc.train import Budget, train_proxy

FREE = ("naswot", "synflow", "jacob_cov", "flops", "params")
COMPUTE = ("free", "init", "bench", "train")
TRACE_INPUT = (1, 3, 8, 8)  # the graph does not depend on resolution


def study_sample(n: int, seed: int, disjoint_from: int | None) -> list[Arch]:
    """``n`` distinct non-zero cells drawn with ``seed``, none isomorphic to sample
    ``disjoint_from`` (the first ``n`` such cells of a ``2n`` draw)."""
    if disjoint_from is None:
        return sample_archs(n, seed=seed, unique=True, exclude_zero=True)
    taken = {
        a.canonical() for a in sample_archs(n, seed=disjoint_from, unique=True, exclude_zero=True)
    }
    pool = sample_archs(2 * n, seed=seed, unique=True, exclude_zero=True)
    out = [a for a in pool if a.canonical() not in taken][:n]
    if len(out) < n:
        raise SystemExit(f"could not draw {n} cells disjoint from sample {disjoint_from}")
    return out


def _build(arch: Arch, config: ProxyConfig, *, bench: bool = False) -> torch.nn.Module:
    if not bench:  # the network evaluate_arch builds, backbone seed 0
        return build_proxy_network(arch, config, 0, torch.device("cpu"))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_network(arch, channels=16, cells_per_stage=5, num_classes=10)


def _betas(
    model: torch.nn.Module, prefix: str, weights: Sequence[torch.Tensor] | None = None
) -> dict[str, float]:
    graph = coupling_graph(model.eval(), torch.zeros(TRACE_INPUT))
    ws = graph.weights(model) if weights is None else weights
    values = network_beta_eff(graph, ws).tolist()
    return {
        prefix + variant_name(i, n).removeprefix("beta_eff"): float(v)
        for (i, n), v in zip(VARIANTS, values)
    }


def _batch(data: ProxyData) -> tuple[torch.Tensor, torch.Tensor]:
    images = data.train_x[:64].float() / 255.0
    mean = torch.tensor(data.mean).view(1, 3, 1, 1)
    std = torch.tensor(data.std).view(1, 3, 1, 1)
    return (images - mean) / std, data.train_y[:64]


def measure(
    arch: Arch, config: ProxyConfig, data: ProxyData, what: Sequence[str]
) -> dict[str, Any]:
    """Every requested score of one cell, with the seconds each part took (``cost_<part>``)."""
    row: dict[str, Any] = {"arch": str(arch)}
    if "free" in what:
        t0 = time.perf_counter()
        x, y = _batch(data)
        row.update(compute_proxies(_build(arch, config), x, y, names=list(FREE), seed=0))
        row["cost_free"] = time.perf_counter() - t0
    if "init" in what:
        t0 = time.perf_counter()
        row.update(_betas(_build(arch, config), "net_init"))
        row["cost_init"] = time.perf_counter() - t0
    if "bench" in what:
        t0 = time.perf_counter()
        row.update(_betas(_build(arch, config, bench=True), "bench_init"))
        row["cost_bench"] = time.perf_counter() - t0
    if "train" in what:
        t0 = time.perf_counter()
        model = _build(arch, config)
        graph = coupling_graph(model.eval(), torch.zeros(TRACE_INPUT))
        w0 = [w.detach().clone() for w in graph.weights(model)]
        recipe = config.to_recipe()
        steps_per_epoch = max(1, math.ceil(int(data.train_y.shape[0]) / config.batch_size))
        result = train_proxy(
            model.train(),
            data,
            Budget(epochs=config.epochs),
            device="cpu",
            seed=0,
            report_every=steps_per_epoch,
            on_report=lambda _report: "stop",
            recipe=recipe,
        )
        row["acc_ep1"] = float(result.final_valid_acc)
        row.update(_betas(model, "net_ep1"))
        delta = [w.detach() - w_0 for w, w_0 in zip(graph.weights(model), w0)]
        row.update(_betas(model, "dW_ep1", delta))
        row["cost_train"] = time.perf_counter() - t0
    return row


def _files(out: Path, seed: int, n: int) -> list[Path]:
    return sorted(out.glob(f"seed{seed}-n{n}*.jsonl"))


def load_rows(out: Path, seed: int, n: int) -> dict[str, dict[str, Any]]:
    """Every recorded value per arch string, merged over shards and compute passes."""
    rows: dict[str, dict[str, Any]] = {}
    for path in _files(out, seed, n):
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                rows.setdefault(rec["arch"], {}).update(rec)
    return rows


def partial_tau(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Kendall's partial τ of ``x`` and ``y`` given ``z``."""
    txy = stats.kendalltau(x, y).statistic
    txz = stats.kendalltau(x, z).statistic
    tyz = stats.kendalltau(y, z).statistic
    den = math.sqrt(max((1 - txz**2) * (1 - tyz**2), 0.0))
    return float((txy - txz * tyz) / den) if den > 0 else math.nan


def partial_tau_ci(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, n_boot: int = 1000
) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of :func:`partial_tau` (pairs resampled, seed 0)."""
    rng = np.random.default_rng(0)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, x.size, x.size)
        v = partial_tau(x[idx], y[idx], z[idx])
        if math.isfinite(v):
            vals.append(v)
    if not vals:
        return math.nan, math.nan
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def _fmt_ci(ci: Sequence[float]) -> str:
    return f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _row(name: str, s: dict[str, Any]) -> str:
    return (
        f"| {name} | {s['kendall_tau']:+.3f} {_fmt_ci(s['kendall_ci'])} | "
        f"{s['spearman']:+.3f} {_fmt_ci(s['spearman_ci'])} | "
        f"{s['top10_precision']:.1f} | {s['n']} |"
    )


def table(rows: dict[str, dict[str, Any]], seed: int) -> str:
    """The markdown tables of one sample (each score on the cells where it was recorded)."""
    truth = open_benchmark("builtin")
    archs = list(rows)
    gt = np.array([truth.get(a, "cifar10-valid", "valid_acc") for a in archs], dtype=float)
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    cols = {
        k: np.array([rows[a].get(k, math.nan) for a in archs], dtype=float)
        for k in keys
        if k != "arch" and not k.startswith("cost_")
    }
    costs = {
        k.removeprefix("cost_"): np.array([rows[a].get(k, math.nan) for a in archs], dtype=float)
        for k in keys
        if k.startswith("cost_")
    }
    agg_names = AGGREGATES["aggregate"]
    have_free = all(k in cols for k in agg_names)
    if have_free:
        cols["aggregate"] = rank_aggregate({k: cols[k] for k in agg_names}, names=agg_names)
    lines = [
        f"sample seed {seed}: {len(archs)} distinct cells, ground truth builtin cifar10-valid "
        "200-epoch validation accuracy",
        "",
        "| score | Kendall τ [95 % CI] | Spearman ρ [95 % CI] | top-10 prec. | n |",
        "|---|---|---|---|---|",
    ]
    order = [k for k in (*FREE, "aggregate") if k in cols]
    order += [k for k in cols if k not in order]
    for k in order:
        lines.append(_row(k, correlation_summary(cols[k], gt, n_boot=1000, seed=0)))
    lines += [
        "",
        "cost per cell, seconds (1 torch thread, nice 19, 2 cores shared with other jobs): "
        + ", ".join(
            f"{k} median {np.nanmedian(v):.2f} / mean {np.nanmean(v):.2f} "
            f"(n {np.isfinite(v).sum()})"
            for k, v in costs.items()
        ),
    ]
    if not have_free:
        return "\n".join(lines)
    lines += [
        "",
        f"line 5 (aggregate = rank aggregate of {', '.join(agg_names)}, recomputed on the "
        "cells where the score exists; the score enters in its defined orientation):",
        "",
        "| score | n | aggregate τ | aggregate + score τ [95 % CI] | Δτ | "
        "partial τ given aggregate [95 % CI] |",
        "|---|---|---|---|---|---|",
    ]
    for k in order:
        if k in (*agg_names, "aggregate"):
            continue
        good = np.isfinite(gt) & np.isfinite(cols[k])
        if good.sum() < 10:
            continue
        sub = {n: cols[n][good] for n in (*agg_names, k)}
        agg = rank_aggregate(sub, names=agg_names)
        with_k = rank_aggregate(sub, names=(*agg_names, k))
        y = gt[good]
        base = correlation_summary(agg, y, n_boot=1000, seed=0)
        s = correlation_summary(with_k, y, n_boot=1000, seed=0)
        pt = partial_tau(sub[k], y, agg)
        lines.append(
            f"| {k} | {int(good.sum())} | {base['kendall_tau']:+.3f} | "
            f"{s['kendall_tau']:+.3f} {_fmt_ci(s['kendall_ci'])} | "
            f"{s['kendall_tau'] - base['kendall_tau']:+.3f} | "
            f"{pt:+.3f} {_fmt_ci(partial_tau_ci(sub[k], y, agg))} |"
        )
    return "\n".join(lines)


def _part(score: str) -> str:
    """Which measured part (``cost_<part>``) a score comes from."""
    for prefix, part in (("net_init", "init"), ("bench_init", "bench"), ("net_ep1", "train")):
        if score.startswith(prefix):
            return part
    return "train" if score.startswith(("dW_ep1", "acc_ep1")) else "free"


def plot(out: Path, seeds: Sequence[int], n: int, path: Path) -> None:
    """τ against the median cost per cell of every score, one marker per sample."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = open_benchmark("builtin")
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for seed, marker in zip(seeds, "os^v"):
        rows = load_rows(out, seed, n)
        archs = list(rows)
        gt = np.array([truth.get(a, "cifar10-valid", "valid_acc") for a in archs], dtype=float)
        keys = list(dict.fromkeys(k for r in rows.values() for k in r))
        col = {
            k: np.array([rows[a].get(k, math.nan) for a in archs], dtype=float)
            for k in keys
            if k != "arch"
        }
        agg_names = AGGREGATES["aggregate"]
        col["aggregate"] = rank_aggregate({k: col[k] for k in agg_names}, names=agg_names)
        for k, v in col.items():
            if k.startswith("cost_") or not np.isfinite(v).any():
                continue
            cost = float(np.nanmedian(col[f"cost_{_part(k)}"]))
            tau = correlation_summary(v, gt, n_boot=1, seed=0)["kendall_tau"]
            ax.scatter(cost, tau, marker=marker, color=f"C{list(col).index(k) % 10}")
            if seed == seeds[0]:
                ax.annotate(k, (cost, tau), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("median cost per cell (s, one CPU thread, shared cores)")
    ax.set_ylabel("Kendall τ vs cifar10-valid (200 ep.)")
    ax.set_title(f"whole-network βeff vs free scores; samples {', '.join(map(str, seeds))}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seed", type=int, required=True, help="sample seed")
    parser.add_argument("--n", type=int, default=150, help="distinct cells (default 150)")
    parser.add_argument(
        "--disjoint-from",
        type=int,
        default=None,
        metavar="SEED",
        help="leave out every cell of the n-cell sample drawn with SEED",
    )
    parser.add_argument("--compute", nargs="+", choices=COMPUTE, default=["free", "init"])
    parser.add_argument("--shard", default="0/1", metavar="I/K", help="only cells I, I+K, ...")
    parser.add_argument("--out", default="runs/capacitance-study")
    parser.add_argument(
        "--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--table", action="store_true", help="print the tables of what is recorded")
    parser.add_argument(
        "--plot",
        default=None,
        metavar="PNG",
        help="write τ against cost per cell for the samples of --plot-seeds",
    )
    parser.add_argument("--plot-seeds", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    out = Path(args.out)
    if args.plot:
        plot(out, args.plot_seeds, args.n, Path(args.plot))
        return 0
    if args.table:
        rows = load_rows(out, args.seed, args.n)
        if not rows:
            print(f"nothing recorded under {out} for seed {args.seed}, n {args.n}", file=sys.stderr)
            return 1
        print(table(rows, args.seed))
        return 0
    archs = study_sample(args.n, args.seed, args.disjoint_from)
    i, k = (int(v) for v in args.shard.split("/"))
    config = ProxyConfig()
    data = load_proxy_data(config, args.data_root, device="cpu", seed=0)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"seed{args.seed}-n{args.n}-{'-'.join(args.compute)}-shard{i}of{k}.jsonl"
    done = {
        a
        for a, r in load_rows(out, args.seed, args.n).items()
        if all(f"cost_{c}" in r for c in args.compute)
    }
    start = time.perf_counter()
    mine = archs[i::k]
    with path.open("a") as fh:
        for j, arch in enumerate(mine, start=1):
            if str(arch) in done:
                continue
            row = measure(arch, config, data, args.compute)
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            costs = " ".join(f"{c}={row[f'cost_{c}']:.2f}s" for c in args.compute)
            print(f"[{j:3d}/{len(mine)}] {costs} {arch}", file=sys.stderr, flush=True)
    print(f"done: {len(mine)} cells in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
