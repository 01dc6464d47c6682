"""Proxy budget study (issue 11, lines 4 and 6): each reading of the proxy run, epoch by epoch.

Runs the product's own evaluation (``nasnc.pipeline.evaluate_arch``, the code
path of ``nasnc evaluate`` and of every search trial) on a study sample of
distinct NAS-Bench-201 cells -- the samples of
``benchmarks/capacitance_study.py``: A = seed 1, B = seed 2 disjoint from A
(``--seed``, ``--disjoint-from``), or a fresh sample of
``benchmarks/free_scores.py`` (``--sample E``: seed 7, disjoint from A, B, C
and D; ``--sample F``: seed 8, disjoint from A-E), or the ``--n`` best cells of
the whole space by the free aggregate a search screens with (``--top``: what
every study's shortlist is drawn from) -- at a proxy budget
(``ProxyConfig`` defaults, changed with ``--set key=value``), with the free
scores at initialisation and the probe's weight snapshots, into an HDF5 cache
(``--cache``; resumable, ``--shard I/K`` splits the cells over processes
sharing it).

``--table`` reads the cache and prints, against the builtin cifar10-valid
200-epoch validation accuracy, for every report point (one per epoch): signed
Kendall τ with its bootstrap 95 % interval, top-10 precision, the partial τ
given the free aggregate (NASWOT, synflow, jacob_cov, FLOPs) and τ of the
aggregate with the reading added, for

    acc        the proxy's validation accuracy at that point
    tse        the sum of the training losses up to it (negated: higher = better)
    beta_eff   the default objective: the BRR estimate of the probe's scale-free
               chain βeff from the trajectory so far (a trial's value; the
               pruner sees the last reading, chain_sf)
    <variant>  the last reading of each probe βeff variant (chain, product,
               chain_sf, product_sf) and the whole-network βeff of W - W0
               (dw_product_sf)
    probe_dw_* βeff of the probe's own W - W0 (chain_sf, product_sf), as
               streamed, or recomputed from the weight snapshots of older runs

and the cost per cell up to that point. ``--plot`` draws the two study samples
of ``--plot-seeds`` (A and B), not a ``--sample``. Line 6 on the proxy's own runs: from
the first p report points, how well the last accuracy, a power-law
extrapolation of the accuracy curve (p >= 3) and the BRR estimate of βeff
rank the run's final accuracy and the benchmark's. ``--shortlist`` compares
pick rules (:data:`PICKS`) inside the free aggregate's top-k of random pools
of the sample, every shortlisted cell trained to the end (as a study with
``pruner: none`` and ``n_trials = top_k`` would).

    nice -n 19 python benchmarks/proxy_budget.py --seed 1 --n 150
    nice -n 19 python benchmarks/proxy_budget.py --seed 2 --n 150 --disjoint-from 1
    nice -n 19 python benchmarks/proxy_budget.py --sample E --n 150
    python benchmarks/proxy_budget.py --seed 1 --n 150 --table
    python benchmarks/proxy_budget.py --sample E --n 150 --shortlist
    python benchmarks/proxy_budget.py --seed 1 --n 40 --set resolution=32 --set epochs=4
    python benchmarks/proxy_budget.py --top --n 40 --final-stage --set epochs=24
    python benchmarks/proxy_budget.py --seed 1 --n 40 --axes axes.png \\
        --point default --point channels=16 --point resolution=32

``--final-stage`` (with ``--top`` and the longer config's ``--set``) compares,
inside the sample, the default runs' pick score with the longer runs'
readings (paired bootstrap of the τ gap) and simulates a final stage that
trains the pick's top 3 or 6 of ``--completed`` random cells again
(docs/benchmarks.md, "Search regret": the eleventh session's pilot).

``--train-seed S`` trains and reads the runs at seed S (data order and
initialisation, as a study's ``seed:`` seeds its trials; default 0);
``--top-table --versus-seed S`` adds the table at seed S and how the two seeds
agree: each reading's τ between the seeds and the regret of each one's top-1.

    python benchmarks/proxy_budget.py --top --n 150 --half even --train-seed 1 --shard 0/2
    python benchmarks/proxy_budget.py --top --n 150 --half even --top-table --versus-seed 1

``--skip K`` leaves out the K best cells of a ``--top`` sample: two new disjoint
samples below the ones read so far, e.g. ranks 301-600 by halves (150 cells each):

    python benchmarks/proxy_budget.py --top --skip 300 --n 300 --half odd --shard 0/2

``--axes`` puts each ``--point`` config (its cells' complete runs in the cache)
on one plot and table: τ of the free aggregate, the proxy accuracy, βeff, the
last chain_sf reading and the probe's weight change (``probe_dw_chain_sf``) at
the end of the run (or at report point ``--axes-epoch K``), against the run's cost
to that point, with each config's paired gap to the first.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata

from nasnc.bench import open_benchmark
from nasnc.capacitance import WEIGHT_CHANGE_VARIANTS, weight_change_name
from nasnc.metrics import correlation_summary, kendall_tau
from nasnc.pipeline import (
    ProxyConfig,
    beta_eff_from_snapshots,
    evaluate_arch,
    load_proxy_data,
    proxy_key,
    screen_archs,
)
from nasnc.proxies import AGGREGATES, rank_aggregate, tse
from nasnc.space import Arch, canonical_classes
from nasnc.store import Entry, Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
# a sibling script: the same samples and statistics
from capacitance_study import (
    FREE,
    _fmt_ci,
    add_sample_arguments,
    extrapolate_pow3,
    partial_tau,
    partial_tau_ci,
    study_sample,
)
from free_scores import SAMPLES, fresh_sample

#: Trajectory columns read at each report point, by the name they get in the tables.
READINGS = {
    "acc": "valid_acc",
    "beta_eff": "beta_eff_est",
    "chain": "beta_eff_chain",
    "product": "beta_eff_product",
    "chain_sf": "beta_eff_chain_sf",
    "product_sf": "beta_eff_product_sf",
    "dw_product_sf": weight_change_name(*WEIGHT_CHANGE_VARIANTS[0]),
}


#: βeff of the probe's own weight change W - W0 at each report point, by table name: the
#: run's streamed column, or, for a run cached before it was recorded, recomputed from
#: the run's probe weight snapshots (the proxy config here keeps them).
SNAPSHOT_READINGS = {
    "probe_dw_chain_sf": "beta_eff_probe_dw_chain_sf",
    "probe_dw_product_sf": "beta_eff_probe_dw_product_sf",
}


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs as ``ProxyConfig`` fields, each value parsed as its field's type."""
    fields = {f.name: f for f in dataclasses.fields(ProxyConfig)}
    defaults = ProxyConfig()
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in fields:
            known = ", ".join(sorted(fields))
            raise SystemExit(f"--set {pair!r}: expected KEY=VALUE with KEY one of {known}")
        current = getattr(defaults, key)
        try:
            if isinstance(current, bool):
                if text.lower() not in ("true", "false"):
                    raise ValueError(text)
                value: Any = text.lower() == "true"
            elif isinstance(current, tuple):
                value = tuple(int(v) for v in text.split(",") if v)
            elif current is None or isinstance(current, int):  # bool was handled above
                value = None if text.lower() == "none" else int(text)
            elif isinstance(current, float):
                value = float(text)
            else:
                value = text
        except ValueError:
            raise SystemExit(f"--set {pair!r}: {text!r} is not a valid {key}") from None
        out[key] = value
    return out


@lru_cache(maxsize=1)  # the sample and its aggregate come from one read of the screen
def top_of_space(n: int, cache: str, data_root: str) -> tuple[tuple[Arch, float], ...]:
    """The ``n`` best distinct non-zero cells of the whole space, with their free
    aggregate over the whole space (what a study's pick reads), by the free aggregate
    a search screens with (NASWOT, synflow, jacob_cov, FLOPs), best first: what a
    study's shortlist is drawn from. Every class is scored once, through its first
    member, on the default proxy network at seed 0 (score-only entries in ``cache``,
    over both cores; minutes cold: docs/benchmarks.md), whatever ``--set`` changes."""
    from nasnc_search._config import ScreenConfig
    from nasnc_search._screen import ScreenPool

    cells = [members[0] for members in canonical_classes().values()]
    cells = [a for a in cells if not a.is_zero]
    config = ProxyConfig()
    screen = ScreenConfig(size=len(cells), top_k=n)  # a search's default scores and weights
    data = load_proxy_data(config, data_root, device="cpu", seed=0)
    result = screen_archs(
        cells,
        config,
        data,
        names=screen.scores,
        seed=0,
        device="cpu",
        store=Store(cache),
        workers=2,
    )
    return tuple((Arch.parse(a), v) for a, v in ScreenPool.from_result(result, screen).shortlist(n))


def top_cells(args: argparse.Namespace) -> list[tuple[Arch, float]]:
    """The ``--top`` sample's ranks, ``--skip`` + 1 to ``--skip`` + ``--n``, with their
    free aggregate over the whole space, best first (before ``--half``)."""
    return list(top_of_space(args.skip + args.n, args.cache, args.data_root))[args.skip :]


def half_of(cells: list[Arch], half: str | None) -> list[Arch]:
    """Every other cell of a ranked list: ``odd`` ranks (1st, 3rd, ...), ``even`` ranks
    (2nd, 4th, ...), or all of them: two disjoint samples spanning the same range."""
    if half is None:
        return cells
    return cells[0::2] if half == "odd" else cells[1::2]


def pool_aggregate(args: argparse.Namespace, archs: list[str]) -> np.ndarray:
    """The free aggregate of ``archs`` (cells of a ``--top`` sample) over the whole
    space: what a study's pick reads over its pool, not a re-ranking within them."""
    pool = {str(a): v for a, v in top_cells(args)}
    return np.array([pool[a] for a in archs])


def budget_sample(args: argparse.Namespace) -> list[Arch]:
    """The cells of the sample the options name: ``--sample`` (a fresh sample of
    ``benchmarks/free_scores.py``), ``--top`` or ``--seed`` / ``--disjoint-from``."""
    if args.top:
        return half_of([a for a, _ in top_cells(args)], args.half)
    if args.sample is not None:
        return fresh_sample(args.sample, args.n)
    return study_sample(args.n, args.seed, args.disjoint_from)


def sample_label(args: argparse.Namespace) -> str:
    if args.top:
        half = f", its {args.half} ranks" if args.half else ""
        if args.skip:
            first, last = args.skip + 1, args.skip + args.n
            return f"ranks {first}-{last} of the space by the free aggregate{half}"
        return f"the top {args.n} of the space by the free aggregate{half}"
    if args.sample is not None:
        return (
            f"sample {args.sample} (seed {SAMPLES[args.sample]}, disjoint from A, B and the "
            "fresh samples before it)"
        )
    return f"sample seed {args.seed}" + (
        f" (disjoint from {args.disjoint_from})" if args.disjoint_from is not None else ""
    )


def train_seed(args: argparse.Namespace) -> int:
    """The seed of the runs (data order and initialisation), as a study's ``seed:``
    seeds its trials; 0 unless ``--train-seed`` says otherwise."""
    return int(getattr(args, "train_seed", 0) or 0)


def compute(args: argparse.Namespace, config: ProxyConfig) -> int:
    archs = budget_sample(args)
    i, k = (int(v) for v in args.shard.split("/"))
    mine = archs[i::k]
    seed = train_seed(args)
    data = load_proxy_data(config, args.data_root, device="cpu", seed=seed)
    store = Store(args.cache)
    start = time.perf_counter()
    for j, arch in enumerate(mine, start=1):
        result = evaluate_arch(
            arch, config, data, seed=seed, device="cpu", store=store, proxies=FREE
        )
        s = result.entry.summary
        print(
            f"[{j:3d}/{len(mine)}] {'cached ' if result.cache_hit else 'trained'} "
            f"acc={s['proxy_valid_acc']:.3f} βeff={s['beta_eff']:.4g} {s['cost_s']:.1f}s {arch}",
            file=sys.stderr,
            flush=True,
        )
    print(f"done: {len(mine)} cells in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def sample_entries(
    args: argparse.Namespace, config: ProxyConfig
) -> tuple[list[str], list[Entry], int]:
    """The sample's cells with a complete cached run under ``config`` (arch strings and
    entries, in sample order) and the sample's size. A diverged run or one with fewer
    report points than the others is left out (and counted by the caller)."""
    archs = budget_sample(args)
    seed = train_seed(args)
    data = load_proxy_data(config, args.data_root, device="cpu", seed=seed)
    store = Store(args.cache)
    found = [(str(a), store.get(proxy_key(a, config, seed, data, device="cpu"))) for a in archs]
    kept = complete_runs(found)
    return [a for a, _ in kept], [e for _, e in kept], len(archs)


def complete_runs(found: list[tuple[str, Entry | None]]) -> list[tuple[str, Entry]]:
    """The cells with a run that neither diverged nor stopped early (the most report points)."""
    n_points = max((e.n_points for _, e in found if e is not None), default=0)
    return [
        (a, e)
        for a, e in found
        if e is not None and not e.summary.get("diverged") and e.n_points == n_points
    ]


def columns(entries: list[Entry]) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """Per-cell readings: ``<reading>@<epoch>`` for every report point (with
    :data:`SNAPSHOT_READINGS`, streamed or recomputed from weight snapshots), the free
    scores, the aggregate over these cells; the wall-clock seconds at each report point;
    the number of report points."""
    n_points = entries[0].n_points if entries else 0
    nan = np.full(len(entries), math.nan)
    cols: dict[str, np.ndarray] = {}
    wall = np.full((len(entries), n_points), math.nan)
    for i, e in enumerate(entries):
        t = e.trajectory
        wall[i] = t["wall_s"]
        for name, key in READINGS.items():
            for p in range(n_points):
                cols.setdefault(f"{name}@{p + 1}", nan.copy())[i] = t[key][p]
        for p in range(n_points):
            cols.setdefault(f"tse@{p + 1}", nan.copy())[i] = tse(t["train_loss"][: p + 1])
        for name, variant in SNAPSHOT_READINGS.items():
            if variant in t:  # streamed by the run (ProbeWeightChangeObserver)
                values = t[variant]
            elif e.snapshots is not None:  # an older run: recomputed from its snapshots
                values = beta_eff_from_snapshots(e, variant)[variant][1:]  # [0] is W0
            else:
                continue
            for p in range(n_points):
                cols.setdefault(f"{name}@{p + 1}", nan.copy())[i] = values[p]
        for name in FREE:
            cols.setdefault(name, nan.copy())[i] = e.scores.get(name, math.nan)
    agg_names = AGGREGATES["aggregate"]
    if all(k in cols for k in agg_names):
        cols["aggregate"] = rank_aggregate({k: cols[k] for k in agg_names}, names=agg_names)
    return cols, wall, n_points


def _points(n_points: int) -> list[int]:
    """Report points shown: 1, 2, 4, ... and the last."""
    shown = [p for p in range(1, n_points + 1) if p & (p - 1) == 0]
    return shown + ([n_points] if n_points not in shown else [])


def table(args: argparse.Namespace, config: ProxyConfig) -> str:
    archs, entries, size = sample_entries(args, config)
    if len(entries) < 3:
        raise SystemExit(f"only {len(entries)} complete runs of this sample under {args.cache}")
    cols, wall, n_points = columns(entries)
    truth = open_benchmark("builtin")
    gt = np.array([truth.get(a, args.truth, "valid_acc") for a in archs], dtype=float)
    agg_names = AGGREGATES["aggregate"]
    agg = cols.get("aggregate")
    lines = [
        f"{sample_label(args)}: {len(entries)} of {size} cells with a complete run "
        f"(the others are not yet run or diverged); ground truth builtin {args.truth} 200-epoch "
        f"validation accuracy; proxy {config.to_dict()}",
        "",
        "| reading | report point | s/cell | Kendall τ [95 % CI] | top-10 | partial τ given "
        "aggregate [95 % CI] | aggregate + reading τ (Δ) |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(name: str, point: str, cost: str, x: np.ndarray) -> str:
        s = correlation_summary(x, gt, n_boot=1000, seed=0)
        extra = "– | –"
        if agg is not None and name not in (*agg_names, "aggregate"):
            ok = np.isfinite(x) & np.isfinite(gt)
            sub = {k: cols[k][ok] for k in agg_names} | {name: x[ok]}
            base = rank_aggregate(sub, names=agg_names)
            with_x = rank_aggregate(sub, names=(*agg_names, name))
            t0 = correlation_summary(base, gt[ok], n_boot=1, seed=0)["kendall_tau"]
            t1 = correlation_summary(with_x, gt[ok], n_boot=1, seed=0)["kendall_tau"]
            pt = partial_tau(x[ok], gt[ok], base)
            ci = partial_tau_ci(x[ok], gt[ok], base)
            extra = f"{pt:+.3f} {_fmt_ci(ci)} | {t1:+.3f} ({t1 - t0:+.3f})"
        return (
            f"| {name} | {point} | {cost} | {s['kendall_tau']:+.3f} {_fmt_ci(s['kendall_ci'])} "
            f"| {s['top10_precision']:.1f} | {extra} |"
        )

    for name in (*FREE, "aggregate"):
        if name in cols:
            lines.append(row(name, "init", "–", cols[name]))
    names = ("acc", "tse", *[r for r in READINGS if r != "acc"], *SNAPSHOT_READINGS)
    for name in [n for n in names if f"{n}@1" in cols]:
        for p in _points(n_points):
            cost = f"{np.nanmedian(wall[:, p - 1]):.1f}"
            epoch = p / config.reports_per_epoch
            lines.append(row(name, f"{p} (epoch {epoch:g})", cost, cols[f"{name}@{p}"]))
    lines += ["", *line6(cols, gt, n_points)]
    return "\n".join(lines)


def line6(cols: dict[str, np.ndarray], gt: np.ndarray, n_points: int) -> list[str]:
    """From the first p of n report points: the last accuracy, its power-law extrapolation
    (3 points or more) and the BRR estimate of βeff, against the run's final accuracy,
    the benchmark's accuracy and the final βeff estimate."""
    final_acc = cols[f"acc@{n_points}"]
    final_beta = cols[f"beta_eff@{n_points}"]
    acc = np.stack([cols[f"acc@{p}"] for p in range(1, n_points + 1)], axis=1)
    steps = np.arange(1, n_points + 1, dtype=float)
    out = [
        f"line 6: predictions from the first p of {n_points} report points",
        "",
        "| predictor | p | τ with final proxy acc [95 % CI] | τ with benchmark [95 % CI] | "
        "τ with final βeff estimate |",
        "|---|---|---|---|---|",
    ]
    for p in range(1, n_points):
        preds = {"acc_last": cols[f"acc@{p}"], "beta_eff_brr": cols[f"beta_eff@{p}"]}
        if p >= 3:
            preds["acc_pow3"] = np.array(
                [extrapolate_pow3(steps[:p], a[:p], n_points) for a in acc]
            )
        for name, x in preds.items():
            s1 = correlation_summary(x, final_acc, n_boot=1000, seed=0)
            s2 = correlation_summary(x, gt, n_boot=1000, seed=0)
            s3 = correlation_summary(x, final_beta, n_boot=1, seed=0)
            out.append(
                f"| {name} | {p} | {s1['kendall_tau']:+.3f} {_fmt_ci(s1['kendall_ci'])} | "
                f"{s2['kendall_tau']:+.3f} {_fmt_ci(s2['kendall_ci'])} | "
                f"{s3['kendall_tau']:+.3f} |"
            )
    return out


#: In-shortlist picks compared by ``--shortlist`` (named before the runs): the weights
#: of the product's pick (a rank aggregate over the shortlist) per rule.
PICKS: dict[str, dict[str, float]] = {
    "aggregate (default)": {"aggregate": 1.0},
    "aggregate + dw_product_sf@8": {"aggregate": 1.0, "dw_product_sf@8": 1.0},
    "aggregate + dw_product_sf@1": {"aggregate": 1.0, "dw_product_sf@1": 1.0},
    "aggregate + acc@8": {"aggregate": 1.0, "acc@8": 1.0},
    "aggregate + beta_eff@8": {"aggregate": 1.0, "beta_eff@8": 1.0},
    "acc@8": {"acc@8": 1.0},
    "beta_eff@8": {"beta_eff@8": 1.0},
}


def shortlist(
    cols: dict[str, np.ndarray],
    gt: np.ndarray,
    *,
    pool: int,
    top_k: int,
    draws: int,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The benchmark accuracy each pick rule chooses, per random pool.

    Each draw takes ``pool`` cells of the sample (without replacement), the
    ``top_k`` of them by the free aggregate over that pool (the screen), and
    picks in that shortlist by each rule of :data:`PICKS` as the search does
    (a rank aggregate of the weighted scores over the shortlist, the pool
    aggregate as one column). Also returned: ``"best in pool"``,
    ``"best in shortlist"``.
    """
    rng = np.random.default_rng(seed)
    agg_names = AGGREGATES["aggregate"]
    out: dict[str, list[float]] = {k: [] for k in (*PICKS, "best in pool", "best in shortlist")}
    for _ in range(draws):
        idx = rng.choice(gt.size, size=pool, replace=False)
        agg = rank_aggregate({k: cols[k][idx] for k in agg_names}, names=agg_names)
        order = np.argsort(-agg, kind="stable")[:top_k]
        short, short_agg = idx[order], agg[order]
        out["best in pool"].append(float(np.nanmax(gt[idx])))
        out["best in shortlist"].append(float(np.nanmax(gt[short])))
        for rule, weights in PICKS.items():
            columns = {k: short_agg if k == "aggregate" else cols[k][short] for k in weights}
            combined = rank_aggregate(columns, weights=weights)
            out[rule].append(float(gt[short[int(np.nanargmax(combined))]]))
    return {k: np.asarray(v) for k, v in out.items()}


def shortlist_table(args: argparse.Namespace, config: ProxyConfig) -> str:
    archs, entries, size = sample_entries(args, config)
    cols, _wall, n_points = columns(entries)
    truth = open_benchmark("builtin")
    gt = np.array([truth.get(a, args.truth, "valid_acc") for a in archs], dtype=float)
    needed = {k for weights in PICKS.values() for k in weights}
    if needed - set(cols):
        raise SystemExit(
            f"--shortlist: the pick rules read {sorted(needed - set(cols))}, but these runs "
            f"have {n_points} report points (the rules are written for the default 8)"
        )
    if len(entries) < args.pool:
        raise SystemExit(f"--pool {args.pool}: only {len(entries)} complete runs of this sample")
    got = shortlist(cols, gt, pool=args.pool, top_k=args.top_k, draws=args.draws)
    best = got["best in pool"]
    lines = [
        f"{sample_label(args)}: {len(entries)} of {size} cells; {args.draws} random pools of "
        f"{args.pool}, shortlist = top {args.top_k} by the free aggregate over the pool; "
        f"{args.truth} 200-epoch validation accuracy (%) of the pick",
        "",
        "| pick inside the shortlist | mean accuracy | gap to best in pool (mean ± sd) | "
        "picks the shortlist's best |",
        "|---|---|---|---|",
    ]
    for rule, acc in got.items():
        if rule == "best in pool":
            continue
        gap = best - acc
        hit = np.mean(acc == got["best in shortlist"])
        lines.append(
            f"| {rule} | {np.mean(acc):.2f} | {np.mean(gap):.2f} ± {np.std(gap):.2f} | {hit:.2f} |"
        )
    return "\n".join(lines)


def tau_rows(
    rows: dict[str, np.ndarray],
    gt: np.ndarray,
    best: float,
    gap: Callable[[str, np.ndarray], str] | None = None,
) -> list[str]:
    """One table row per score: its τ with the bootstrap interval, the regret of its
    top-1 against ``best`` and, with ``gap``, ``gap(name, column)`` as a last cell."""
    lines = []
    for name, col in rows.items():
        s = correlation_summary(col, gt, n_boot=1000, seed=0)
        top1 = best - gt[int(np.nanargmax(col))] if np.isfinite(col).any() else math.nan
        cells = [f"{s['kendall_tau']:+.3f} {_fmt_ci(s['kendall_ci'])}", f"{top1:.2f}"]
        if gap is not None:
            cells.append(gap(name, col))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def top_table(args: argparse.Namespace, config: ProxyConfig) -> str:
    """Inside a ``--top`` sample: τ of the free aggregate over the whole space (what a
    search ranks with), the study's pick score (aggregate + βeff), βeff, the proxy
    accuracy and the probe's weight change at the run's end, and the paired bootstrap
    gap of βeff's τ over each other score's."""
    from search_regret import paired_tau_gap

    archs, entries, size = sample_entries(args, config)
    cols, wall, n = columns(entries)
    truth = open_benchmark("builtin")
    gt = np.array([truth.get(a, args.truth, "valid_acc") for a in archs], dtype=float)
    best = truth.best(args.truth, "valid_acc")[1]
    agg = pool_aggregate(args, archs)
    beta = cols[f"beta_eff@{n}"]
    rows = {
        "the free aggregate (over the whole space)": agg,
        f"the study's pick score (aggregate + βeff@{n})": rank_aggregate(
            {"aggregate": agg, "beta_eff": beta}
        ),
        f"βeff@{n}": beta,
        f"accuracy@{n}": cols[f"acc@{n}"],
        f"probe_dw_chain_sf@{n}": cols.get(f"probe_dw_chain_sf@{n}", np.full(len(archs), np.nan)),
    }
    lines = [
        f"{sample_label(args)}: {len(entries)} of {size} cells with a complete run; "
        f"{args.truth} 200-epoch validation accuracy spans {np.nanmin(gt):.2f}-"
        f"{np.nanmax(gt):.2f} %; median {np.nanmedian(wall[:, -1]):.1f} s per cell",
        "",
        f"| score | Kendall τ [95 % CI] | regret of its top-1 | τ(βeff@{n}) − τ(score) [95 % CI] |",
        "|---|---|---|---|",
    ]

    def gap(name: str, col: np.ndarray) -> str:
        if name == f"βeff@{n}" or not np.isfinite(col).any():
            return "–"
        g, low, high = paired_tau_gap(beta, col, gt)
        return f"{g:+.3f} [{low:+.3f}, {high:+.3f}]"

    return "\n".join(lines + tau_rows(rows, gt, best, gap))


def seed_agreement(args: argparse.Namespace, config: ProxyConfig, other: int) -> str:
    """How a ``--top`` sample's readings agree between ``--train-seed`` and ``other``:
    the top table at ``other``, then per reading Kendall τ between the two seeds'
    values (cells with a complete run at both) and the regret of each seed's top-1."""
    mine = train_seed(args)
    theirs = argparse.Namespace(**{**vars(args), "train_seed": other})
    runs_a = dict(zip(*sample_entries(args, config)[:2]))
    runs_b = dict(zip(*sample_entries(theirs, config)[:2]))
    both = [a for a in runs_a if a in runs_b]  # in sample order
    if len(both) < 3:
        return f"seeds {mine} and {other}: {len(both)} cells with a run at both, too few"
    cols_a, _, n = columns([runs_a[a] for a in both])
    cols_b, _, _ = columns([runs_b[a] for a in both])
    truth = open_benchmark("builtin")
    gt = np.array([truth.get(a, args.truth, "valid_acc") for a in both], dtype=float)
    best = truth.best(args.truth, "valid_acc")[1]
    agg = pool_aggregate(args, both)
    lines = [
        top_table(theirs, config),
        "",
        f"seeds {mine} and {other} on the {len(both)} cells with a run at both:",
        "",
        f"| reading | τ between the seeds | τ vs {args.truth}, seed {mine} / {other} "
        f"| regret of the top-1, seed {mine} / {other} |",
        "|---|---|---|---|",
    ]
    readings = {
        f"βeff@{n}": (cols_a[f"beta_eff@{n}"], cols_b[f"beta_eff@{n}"]),
        f"accuracy@{n}": (cols_a[f"acc@{n}"], cols_b[f"acc@{n}"]),
        f"pick score (aggregate + βeff@{n})": (
            rank_aggregate({"aggregate": agg, "beta_eff": cols_a[f"beta_eff@{n}"]}),
            rank_aggregate({"aggregate": agg, "beta_eff": cols_b[f"beta_eff@{n}"]}),
        ),
    }
    beta_a, beta_b = readings[f"βeff@{n}"]
    both_seeds = (rankdata(beta_a) + rankdata(beta_b)) / 2.0
    for name, (a, b) in readings.items():
        between = kendall_tau(a, b)
        ta, tb = kendall_tau(a, gt), kendall_tau(b, gt)
        ra, rb = best - gt[int(np.nanargmax(a))], best - gt[int(np.nanargmax(b))]
        lines.append(f"| {name} | {between:+.3f} | {ta:+.3f} / {tb:+.3f} | {ra:.2f} / {rb:.2f} |")
    lines.append(
        f"| βeff@{n}, the mean of its two seeds' ranks | – | "
        f"{kendall_tau(both_seeds, gt):+.3f} (both) | "
        f"{best - gt[int(np.nanargmax(both_seeds))]:.2f} (both) |"
    )
    return "\n".join(lines)


#: Shortlist sizes of the simulated final stage (:func:`final_stage`).
FINAL_TOP = (3, 6)


def final_stage(
    aggregate: np.ndarray,
    beta_eff: np.ndarray,
    long: np.ndarray,
    gt: np.ndarray,
    *,
    completed: int,
    draws: int,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The benchmark accuracy picked per random draw of ``completed`` cells (the cells
    a study completes), with and without a final stage.

    ``aggregate`` and ``beta_eff`` are the default run's columns, ``long`` each
    cell's accuracy at the end of the longer run. Rules: the study's
    pick (a rank aggregate of the aggregate and βeff over the draw), the final stage
    (the pick score's top m of :data:`FINAL_TOP`, retrained, the best by ``long``),
    ``long`` over every cell of the draw (more training than the budget buys), and
    the best cell of the draw (an oracle)."""
    rng = np.random.default_rng(seed)
    names = ["the study's pick (aggregate + βeff)"]
    names += [f"final stage: its top {m} by the longer run's accuracy" for m in FINAL_TOP]
    names += ["the longer run's accuracy over every cell", "best in the draw (oracle)"]
    out: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(draws):
        idx = rng.choice(gt.size, size=completed, replace=False)
        combined = rank_aggregate({"aggregate": aggregate[idx], "beta_eff": beta_eff[idx]})
        order = np.argsort(-combined, kind="stable")
        picks = [idx[order[0]]]
        for m in FINAL_TOP:
            top = idx[order[:m]]
            picks.append(top[int(np.nanargmax(long[top]))])
        picks.append(idx[int(np.nanargmax(long[idx]))])
        picks.append(idx[int(np.nanargmax(gt[idx]))])
        for name, i in zip(names, picks):
            out[name].append(float(gt[i]))
    return {k: np.asarray(v) for k, v in out.items()}


def final_stage_table(args: argparse.Namespace, long_config: ProxyConfig) -> str:
    """Within the sample (``--top``): τ of the default run's pick score and of the
    longer run's readings, their paired gap, and the simulated final stage."""
    from search_regret import paired_tau_gap

    base = ProxyConfig(snapshots="probe")
    a_short, e_short, size = sample_entries(args, base)
    a_long, e_long, _ = sample_entries(args, long_config)
    both = sorted(set(a_short) & set(a_long), key=a_short.index)
    if len(both) < args.completed:
        raise SystemExit(
            f"--final-stage: {len(both)} cells have both complete runs, fewer than "
            f"--completed {args.completed}"
        )
    short, _, n_short = columns([e_short[a_short.index(a)] for a in both])
    long, wall, n_long = columns([e_long[a_long.index(a)] for a in both])
    short["aggregate"] = pool_aggregate(args, both)
    truth = open_benchmark("builtin")
    gt = np.array([truth.get(a, args.truth, "valid_acc") for a in both], dtype=float)
    best = truth.best(args.truth, "valid_acc")[1]
    pick = rank_aggregate(
        {"aggregate": short["aggregate"], "beta_eff": short[f"beta_eff@{n_short}"]}
    )
    rows = {
        "the free aggregate (over the whole space)": short["aggregate"],
        f"the study's pick score (aggregate + βeff@{n_short})": pick,
        f"accuracy@{n_short}": short[f"acc@{n_short}"],
        f"βeff@{n_short}": short[f"beta_eff@{n_short}"],
        f"longer run: accuracy@{n_long}": long[f"acc@{n_long}"],
        f"longer run: βeff@{n_long}": long[f"beta_eff@{n_long}"],
        f"longer run: aggregate + accuracy@{n_long}": rank_aggregate(
            {"aggregate": short["aggregate"], "acc": long[f"acc@{n_long}"]}
        ),
    }
    lines = [
        f"{sample_label(args)}: {len(both)} of {size} cells with both complete runs "
        f"({n_short} and {n_long} report points); {args.truth} 200-epoch validation "
        f"accuracy; the longer run's median cost {np.nanmedian(wall[:, -1]):.1f} s per cell",
        "",
        "| reading | Kendall τ [95 % CI] | regret of its top-1 (points) |",
        "|---|---|---|",
    ]
    lines += tau_rows(rows, gt, best)
    gap, low, high = paired_tau_gap(long[f"acc@{n_long}"], pick, gt)
    lines += [
        "",
        f"τ(longer run's accuracy) − τ(the study's pick score): {gap:+.3f} "
        f"[{low:+.3f}, {high:+.3f}] (paired bootstrap)",
        "",
        f"{args.draws} random draws of {args.completed} of these cells (a study's completed "
        f"cells); regret against the space's best ({best:.2f} %):",
        "",
        "| pick | accuracy (mean) | regret (mean ± sd) |",
        "|---|---|---|",
    ]
    got = final_stage(
        short["aggregate"],
        short[f"beta_eff@{n_short}"],
        long[f"acc@{n_long}"],
        gt,
        completed=args.completed,
        draws=args.draws,
    )
    for rule, acc in got.items():
        r = best - acc
        lines.append(f"| {rule} | {np.mean(acc):.2f} | {np.mean(r):.2f} ± {np.std(r):.2f} |")
    return "\n".join(lines)


def plot(args: argparse.Namespace, config: ProxyConfig, seeds: list[int], path: Path) -> None:
    """τ of each reading against the median seconds per cell up to its report point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    styles = {"acc": "C0", "tse": "C1", "beta_eff": "C3", "product": "C4", "dw_product_sf": "C2"}
    truth = open_benchmark("builtin")
    for seed, marker in zip(seeds, "os^v"):
        sub = argparse.Namespace(**{**vars(args), "seed": seed, "sample": None})
        sub.disjoint_from = None if seed == seeds[0] else seeds[0]
        archs, entries, _ = sample_entries(sub, config)
        cols, wall, n_points = columns(entries)
        gt = np.array([truth.get(a, args.truth, "valid_acc") for a in archs], dtype=float)
        cost = np.nanmedian(wall, axis=0)
        for name, colour in styles.items():
            taus = [
                correlation_summary(cols[f"{name}@{p}"], gt, n_boot=1, seed=0)["kendall_tau"]
                for p in range(1, n_points + 1)
            ]
            ax.plot(
                cost,
                taus,
                marker=marker,
                color=colour,
                ls="-" if marker == "o" else "--",
                label=name if marker == "o" else None,
            )
        if "aggregate" in cols:
            t = correlation_summary(cols["aggregate"], gt, n_boot=1, seed=0)["kendall_tau"]
            ax.axhline(
                t,
                color="k",
                ls="-" if marker == "o" else "--",
                lw=0.8,
                label="free aggregate (init)" if marker == "o" else None,
            )
    ax.axhline(0.0, color="grey", lw=0.5)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, max(hi, 0.8))  # room above the aggregate's lines
    ax.set_xlabel("median seconds of proxy training per cell (a point per report, epochs 1, 2, …)")
    ax.set_ylabel(f"Kendall τ with {args.truth} 200-epoch accuracy")
    ax.set_title(f"Readings of the proxy run along its epochs, samples {seeds} (solid, dashed)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


#: Readings compared across proxy configs (``--axes``), at each config's last report point
#: (or ``--axes-epoch``).
AXES_READINGS = ("acc", "beta_eff", "chain_sf", "probe_dw_chain_sf")


def axis_summary(
    cols: dict[str, np.ndarray], wall: np.ndarray, n_points: int, gt: np.ndarray
) -> dict[str, Any]:
    """One proxy config's point on the budget axes: the median seconds per cell to
    report point ``n_points``, and the correlation summary of the free aggregate and
    of each :data:`AXES_READINGS` reading there."""
    out: dict[str, Any] = {"n": len(gt), "s_per_cell": float(np.nanmedian(wall[:, n_points - 1]))}
    nan = np.full(len(gt), math.nan)  # a reading the runs lack (no snapshots) stays NaN
    for name in ("aggregate", *AXES_READINGS):
        x = cols["aggregate"] if name == "aggregate" else cols.get(f"{name}@{n_points}", nan)
        out[name] = correlation_summary(x, gt, n_boot=1000, seed=0)
    return out


def axis_gaps(
    base: tuple[list[str], dict[str, np.ndarray], int],
    other: tuple[list[str], dict[str, np.ndarray], int],
    truth: dict[str, float],
) -> dict[str, tuple[float, float, float, int]]:
    """τ(other) − τ(base) of each :data:`AXES_READINGS` reading at each config's report
    point ``n_points`` (and of the free aggregate, each on its own network), paired
    over the cells both configs ran: the gap, its paired bootstrap 95 % interval and
    n. Each point is ``(archs, columns, n_points)``, :func:`columns` giving the first
    two."""
    from search_regret import paired_tau_gap

    common = [a for a in base[0] if a in set(other[0])]
    gt = np.array([truth[a] for a in common], dtype=float)
    rows = [[pt[0].index(a) for a in common] for pt in (base, other)]
    out: dict[str, tuple[float, float, float, int]] = {}
    for name in ("aggregate", *AXES_READINGS):
        got = []
        for (_, cols, n_points), idx in zip((base, other), rows):
            key = name if name == "aggregate" else f"{name}@{n_points}"
            got.append(cols[key][idx] if key in cols else np.full(len(idx), math.nan))
        ok = np.isfinite(got[0]) & np.isfinite(got[1]) & np.isfinite(gt)
        if ok.sum() < 3:
            out[name] = (math.nan, math.nan, math.nan, int(ok.sum()))
            continue
        gap, low, high = paired_tau_gap(got[1], got[0], gt)
        out[name] = (gap, low, high, int(ok.sum()))
    return out


def axes(args: argparse.Namespace, points: list[str], path: Path) -> str:
    """τ at the end of the run against its cost, one point per proxy config
    (``default`` or comma-separated ``KEY=VALUE`` overrides); the table, and the plot at
    ``path``. A config with fewer than 3 complete runs in the cache is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = open_benchmark("builtin")
    got: list[tuple[str, dict[str, Any]]] = []
    runs: list[tuple[list[str], dict[str, np.ndarray], int]] = []
    for point in points:
        pairs = [] if point == "default" else [p for p in point.split(",") if p]
        config = ProxyConfig(**{"snapshots": "probe", **parse_overrides(pairs)})
        archs, entries, size = sample_entries(args, config)
        if len(entries) < 3:
            print(f"--axes {point!r}: {len(entries)} complete runs, left out", file=sys.stderr)
            continue
        cols, wall, n_points = columns(entries)
        if args.axes_epoch is not None:
            if args.axes_epoch > n_points:
                raise SystemExit(
                    f"--axes-epoch {args.axes_epoch}: the runs of {point!r} have "
                    f"{n_points} report points"
                )
            n_points = args.axes_epoch
        gt = np.array([truth.get(a, args.truth, "valid_acc") for a in archs], dtype=float)
        got.append((point, {**axis_summary(cols, wall, n_points, gt), "size": size}))
        runs.append((archs, cols, n_points))
    if not got:
        raise SystemExit(f"--axes: no config has 3 complete runs of this sample in {args.cache}")
    names = ("aggregate", *AXES_READINGS)
    lines = [
        f"{sample_label(args)}; ground truth builtin {args.truth}; τ at each run's "
        + ("last report point" if args.axes_epoch is None else f"report point {args.axes_epoch}")
        + " (the aggregate at initialisation, on that config's network)",
        "",
        "| proxy | n | s/cell | " + " | ".join(f"{n}: τ [95 % CI]" for n in names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    fig, ax = plt.subplots(figsize=(8, 5))
    for j, name in enumerate(names):
        nudge = 1 + 0.03 * (j - 2)  # side by side, so the intervals stay visible
        xs = [s["s_per_cell"] * nudge for _, s in got]
        ys = [s[name]["kendall_tau"] for _, s in got]
        err = np.array(
            [
                [y - s[name]["kendall_ci"][0], s[name]["kendall_ci"][1] - y]
                for y, (_, s) in zip(ys, got)
            ]
        ).T
        ax.errorbar(xs, ys, yerr=err, fmt="osv^D"[j], color=f"C{j}", capsize=3, label=name)
    for point, s in got:
        ax.annotate(
            point,
            (s["s_per_cell"], s["aggregate"]["kendall_tau"]),
            fontsize=8,
            xytext=(4, 6),
            textcoords="offset points",
        )
        lines.append(
            f"| {point} | {s['n']} of {s['size']} | {s['s_per_cell']:.1f} | "
            + " | ".join(f"{s[n]['kendall_tau']:+.3f} {_fmt_ci(s[n]['kendall_ci'])}" for n in names)
            + " |"
        )
    if len(got) > 1:
        accs = {a: truth.get(a, args.truth, "valid_acc") for run in runs for a in run[0]}
        lines += [
            "",
            f"Paired gap to {got[0][0]} (the same cells; bootstrap 95 % CI):",
            "",
            "| proxy | " + " | ".join(f"{n}: Δτ [95 % CI]" for n in names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for (point, _), run in zip(got[1:], runs[1:]):
            gaps = axis_gaps(runs[0], run, accs)
            cells = [f"{g:+.3f} [{lo:+.2f}, {hi:+.2f}] (n {n})" for g, lo, hi, n in gaps.values()]
            lines.append(f"| {point} | " + " | ".join(cells) + " |")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("median seconds of proxy training per cell (to that report point)")
    ax.set_ylabel(f"Kendall τ with {args.truth} 200-epoch accuracy (95 % CI)")
    ax.set_title(f"The proxy's budget axes, {sample_label(args)}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add_sample_arguments(parser, seed_required=False)
    parser.add_argument(
        "--sample",
        choices=sorted(SAMPLES),
        default=None,
        help="a fresh sample of benchmarks/free_scores.py instead of --seed (E: the third "
        "sample of the proxy's runs, disjoint from A-D; F: the pruner's score, disjoint "
        "from A-E)",
    )
    parser.add_argument(
        "--top",
        action="store_true",
        help="the sample is the --n best distinct cells of the space by the free aggregate "
        "(a search's shortlist), instead of --seed or --sample",
    )
    parser.add_argument(
        "--half",
        choices=("odd", "even"),
        default=None,
        help="with --top: every other cell by rank (two disjoint samples of the same range)",
    )
    parser.add_argument(
        "--skip",
        type=int,
        default=0,
        metavar="K",
        help="with --top: leave out the K best cells, so the sample is ranks K+1 to K+n "
        "(--top --skip 300 --n 300 --half odd: ranks 301, 303, ..., 599)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a ProxyConfig field (repeatable), e.g. --set resolution=32",
    )
    parser.add_argument("--cache", default="runs/proxy-budget")
    parser.add_argument("--table", action="store_true", help="print the tables from the cache")
    parser.add_argument(
        "--truth",
        default="cifar10-valid",
        choices=("cifar10-valid", "cifar100", "ImageNet16-120"),
        help="benchmark dataset of the ground truth (--table, --plot, --shortlist)",
    )
    parser.add_argument("--plot", default=None, metavar="PNG", help="τ along the epochs")
    parser.add_argument(
        "--shortlist",
        action="store_true",
        help="in-shortlist picks over random pools of the sample (see --pool, --top-k)",
    )
    parser.add_argument("--pool", type=int, default=100, help="cells per pool (--shortlist)")
    parser.add_argument("--top-k", type=int, default=10, help="shortlist size (--shortlist)")
    parser.add_argument("--draws", type=int, default=2000, help="random pools (--shortlist)")
    parser.add_argument(
        "--final-stage",
        action="store_true",
        help="compare the default runs' pick with retraining its top few under --set "
        "(see --completed, --draws)",
    )
    parser.add_argument("--completed", type=int, default=24, help="cells per draw (--final-stage)")
    parser.add_argument(
        "--top-table",
        action="store_true",
        help="with --top: βeff against the aggregate, the pick score and accuracy inside it",
    )
    parser.add_argument(
        "--train-seed",
        type=int,
        default=0,
        help="seed of the runs (data order, initialisation), as a study's seed: seeds its "
        "trials (default 0)",
    )
    parser.add_argument(
        "--versus-seed",
        type=int,
        default=None,
        metavar="SEED",
        help="with --top-table: also the runs at this --train-seed, and how the two seeds "
        "agree (each reading's Kendall τ between the seeds, the top-1 of each)",
    )
    parser.add_argument("--plot-seeds", type=int, nargs=2, default=[1, 2], metavar="SEED")
    parser.add_argument(
        "--axes",
        default=None,
        metavar="PNG",
        help="τ at the end of the run against its cost, one point per --point config",
    )
    parser.add_argument(
        "--point",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="a proxy config for --axes (repeatable): 'default' or ProxyConfig overrides",
    )
    parser.add_argument(
        "--axes-epoch",
        type=int,
        default=None,
        metavar="K",
        help="read --axes at report point K (1 = the first epoch) instead of the last",
    )
    args = parser.parse_args()
    if sum((args.seed is not None, args.sample is not None, args.top)) != 1 and not args.plot:
        parser.error("name the sample with exactly one of --seed, --sample and --top")
    if (args.half or args.top_table or args.skip) and not args.top:
        parser.error("--half, --skip and --top-table read a --top sample")
    if args.axes_epoch is not None and args.axes_epoch < 1:
        parser.error(f"--axes-epoch must be 1 or more, but got {args.axes_epoch}")
    if args.skip < 0:
        parser.error(f"--skip must be 0 or more, but got {args.skip}")
    if args.versus_seed is not None and not args.top_table:
        parser.error("--versus-seed adds to --top-table")
    if args.final_stage and not (args.top and args.set):
        parser.error(
            "--final-stage compares the default runs of a --top sample with a longer "
            "--set config (e.g. --set epochs=24)"
        )
    if args.sample is not None and args.disjoint_from is not None:
        parser.error("--disjoint-from goes with --seed; a --sample is disjoint from the others")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    if args.axes:
        if not args.point:
            parser.error("--axes needs at least one --point")
        print(axes(args, args.point, Path(args.axes)))
        return 0
    config = ProxyConfig(**{"snapshots": "probe", **parse_overrides(args.set)})
    if args.plot:
        plot(args, config, args.plot_seeds, Path(args.plot))
        return 0
    if args.final_stage:
        print(final_stage_table(args, config))
        return 0
    if args.top_table:
        print(top_table(args, config))
        if args.versus_seed is not None:
            print()
            print(seed_agreement(args, config, args.versus_seed))
        return 0
    if args.shortlist:
        print(shortlist_table(args, config))
        return 0
    if args.table:
        print(table(args, config))
        return 0
    return compute(args, config)


if __name__ == "__main__":
    sys.exit(main())
