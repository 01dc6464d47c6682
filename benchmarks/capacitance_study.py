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
           W (line 2, trained), of W - W0 (line 3, the weight change) and of
           the loss gradient on the scoring batch (line 3 during training,
           ``grad_ep1_*``, as ``grad`` but on the trained network), the probe's
           βeff of its own weight change W - W0 (``pdw_ep1_*``, the probe's
           four variants), and the proxy validation accuracy at that point, as
           a trained baseline;
           ``--table`` adds the change of βeff over that first epoch,
           ``rate_ep1_*`` = net_ep1 - net_init and ``grad_rate_ep1_*`` =
           grad_ep1 - grad_init, where both ends were computed;
``grad``   line 3 at initialisation: whole-network βeff (four variants) of
           the gradient of the proxy network's mean cross-entropy on its
           first 64 training images (training-mode BatchNorm, one backward
           pass), each kernel's strength the summed magnitude of its gradient;
``probe``  lines 1 and 6: one default-recipe run to epoch 2; at epochs 0, 1, 2
           the backbone's pooled features are cached and a fresh probe is
           trained on them alone (βeff trajectory, its BRR estimate, the probe's
           validation curve, early-fraction predictions); also acc/net/dW after
           epochs 1 and 2 (the epoch-1 values equal ``train``'s);
``probe0`` line 1 at k = 0 only, without training the backbone: the untrained
           network's features and a fresh probe on them, at every (backbone
           seed, probe seed) of ``PROBE0_SEEDS`` (the seed-0 pair's values
           equal ``probe``'s ``probe_k0_*``).

``--top N`` (with ``--half odd|even``) takes the ``N`` best cells of the space
by the free aggregate a search screens with (``benchmarks/proxy_budget.py
--top``: the top of the screen, where a study's shortlist comes from) instead
of ``--seed``; ``--top-table`` prints, inside it, τ of each ``probe_k0``
reading against the aggregate over the whole space (paired bootstrap gaps) and
τ between the seeds' readings.

``--sample E`` (or F) takes a fresh sample of ``benchmarks/free_scores.py``
(disjoint from A, B, C and D) instead of ``--seed``.

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
    # the untrained probe at the top of the screen (odd ranks of the top 300)
    python benchmarks/capacitance_study.py --top 300 --half odd --compute probe0 --shard 0/2
    python benchmarks/capacitance_study.py --top 300 --half odd --top-table
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import optimize, stats

from nasnc.bench import open_benchmark
from nasnc.capacitance import (
    VARIANTS,
    CapacitanceEstimator,
    CapacitanceObserver,
    CapacitanceProbe,
    CouplingGraph,
    ProbeWeightChangeObserver,
    coupling_graph,
    network_beta_eff,
    variant_name,
)
from nasnc.data import DeviceTransform, ProxyData
from nasnc.metrics import correlation_summary
from nasnc.models import build_network
from nasnc.pipeline import ProxyConfig, load_proxy_data
from nasnc.pipeline._evaluate import _build as build_proxy_network
from nasnc.proxies import AGGREGATES, compute_proxies, gradient_beta_eff, rank_aggregate
from nasnc.space import Arch, sample_archs
from nasnc.train import Budget, Report, train_proxy

FREE = (*AGGREGATES["aggregate"], "params")
COMPUTE = ("free", "init", "bench", "grad", "train", "probe", "probe0")
TRACE_INPUT = (1, 3, 8, 8)  # the graph does not depend on resolution
#: ``probe``: backbone epochs at which features are cached and a fresh probe is trained.
PROBE_K = (0, 1, 2)
#: ``probe0``: (backbone seed, probe seed) pairs of the untrained-backbone probe; the
#: first is the line-1 run (``probe_k0_*``), the others ``probe_k0_b<B>p<P>_*``.
PROBE0_SEEDS = ((0, 0), (1, 0), (0, 1))
#: Probe βeff variants recorded (trajectory keys of CapacitanceObserver, ``beta_eff_`` dropped).
PROBE_VARIANTS = ("chain_sf", "product", "product_sf")
#: Early fractions of the probe run from which line 6 predicts its end.
LC_FRACTIONS = (0.10, 0.25)


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
    model: torch.nn.Module,
    prefix: str,
    weights: Sequence[torch.Tensor] | None = None,
    graph: CouplingGraph | None = None,
) -> dict[str, float]:
    """The four whole-network βeff variants (``graph`` traced here, in eval mode, when None)."""
    if graph is None:
        graph = coupling_graph(model.eval(), torch.zeros(TRACE_INPUT))
    ws = graph.weights(model) if weights is None else weights
    values = network_beta_eff(graph, ws).tolist()
    return {
        prefix + variant_name(i, n).removeprefix("beta_eff"): float(v)
        for (i, n), v in zip(VARIANTS, values)
    }


def _gradient_betas(
    model: torch.nn.Module, data: ProxyData, prefix: str = "grad_init"
) -> dict[str, float]:
    """``<prefix>_*``: the four βeff variants of the gradient of the mean cross-entropy
    of the scoring batch (:func:`nasnc.proxies.gradient_beta_eff`; ``grad_init`` at
    initialisation, ``grad_ep1`` after the first proxy epoch)."""
    values = gradient_beta_eff(model, *_batch(data)).tolist()
    return {
        prefix + variant_name(i, n).removeprefix("beta_eff"): float(v)
        for (i, n), v in zip(VARIANTS, values)
    }


def _probe_weight_change(observer: ProbeWeightChangeObserver, prefix: str) -> dict[str, float]:
    """``<prefix>_*``: the probe's four βeff variants of its own weight change W - W0, read
    from ``observer`` (a :class:`~nasnc.capacitance.ProbeWeightChangeObserver` of
    :data:`VARIANTS`, started on the model before training)."""
    values = observer.on_report(0)
    return {
        prefix + variant_name(i, n).removeprefix("beta_eff"): values[key]
        for (i, n), key in zip(VARIANTS, observer.keys)
    }


#: Derived at table time: the change of a βeff reading over the first proxy epoch
#: (line 3, "its rate of change"), ``name: (after, before)`` column prefixes.
RATES = {"rate_ep1": ("net_ep1", "net_init"), "grad_rate_ep1": ("grad_ep1", "grad_init")}


def add_rates(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``cols`` with :data:`RATES` added for every variant whose two ends are both
    columns (NaN where either end is missing for a cell)."""
    out = dict(cols)
    for name, (after, before) in RATES.items():
        for i, n in VARIANTS:
            suffix = variant_name(i, n).removeprefix("beta_eff")
            if after + suffix in cols and before + suffix in cols:
                out[name + suffix] = cols[after + suffix] - cols[before + suffix]
    return out


def _batch(data: ProxyData) -> tuple[torch.Tensor, torch.Tensor]:
    images = data.train_x[:64].float() / 255.0
    mean = torch.tensor(data.mean).view(1, 3, 1, 1)
    std = torch.tensor(data.std).view(1, 3, 1, 1)
    return (images - mean) / std, data.train_y[:64]


# ----------------------------------------------------------- line 1: the probe on cached features
@torch.no_grad()
def pooled_features(
    model: torch.nn.Module, x: torch.Tensor, transform: DeviceTransform, batch: int = 1000
) -> torch.Tensor:
    """The backbone's pooled features of uint8 images ``x`` (eval mode, no grad; mode restored)."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat(
            [model.features(transform.eval(x[i : i + batch])) for i in range(0, len(x), batch)]
        )
    finally:
        model.train(was_training)


def standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Every feature column z-scored with the training features' mean and std.

    A constant column (std 0, e.g. a dead channel) becomes 0 instead of NaN.
    """
    mean = train.mean(0, keepdim=True)
    std = train.std(0, keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return [(t - mean) / std for t in (train, *others)]


def train_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    valid_x: torch.Tensor,
    valid_y: torch.Tensor,
    config: ProxyConfig,
    *,
    epochs: int,
    eval_every: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Train a fresh capacitance probe (``config.probe`` widths, ``config.probe_seed``) on
    cached features with the proxy's SGD recipe (cosine over ``epochs``), streaming βeff.

    Returns the βeff trajectory (``step`` and one array per variant, every step),
    the validation accuracy every ``eval_every`` steps (``acc_step``, ``acc``),
    ``total_steps`` and ``diverged``.
    """
    probe = CapacitanceProbe(
        train_x.shape[1], config.num_classes, hidden=config.probe, seed=config.probe_seed
    )
    opt = torch.optim.SGD(
        probe.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )
    gen = torch.Generator().manual_seed(seed)
    n, bs = int(train_y.shape[0]), config.batch_size
    total = epochs * math.ceil(n / bs)
    acc_step: list[int] = []
    acc: list[float] = []
    step = 0
    diverged = False
    with CapacitanceObserver(every_n_steps=1).attach(probe, opt, total_steps=total) as obs:
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, bs):
                idx = perm[start : start + bs]
                for group in opt.param_groups:
                    group["lr"] = 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total))
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(probe(train_x[idx]), train_y[idx])
                if not torch.isfinite(loss):
                    diverged = True
                    break
                loss.backward()
                opt.step()
                step += 1
                if step % eval_every == 0 or step == total:
                    with torch.no_grad():
                        hit = probe(valid_x).argmax(1) == valid_y
                    acc_step.append(step)
                    acc.append(float(hit.float().mean()))
            if diverged:
                break
    traj = obs.trajectory()
    return {
        "step": traj["step"],
        **{v: traj[f"beta_eff_{v}"] for v in PROBE_VARIANTS},
        "acc_step": np.asarray(acc_step, dtype=float),
        "acc": np.asarray(acc, dtype=float),
        "total_steps": total,
        "diverged": diverged,
    }


# -------------------------------------------------- line 6: predictions from an early fraction
def early(steps: np.ndarray, fraction: float, total: int) -> np.ndarray:
    """Mask of the points within the first ``fraction`` of a ``total``-step run."""
    return np.asarray(steps, dtype=float) <= fraction * total + 1e-9


def brr_estimate(steps: np.ndarray, betas: np.ndarray, total: int) -> float:
    """The converged βeff (end of the budget) that :class:`CapacitanceEstimator` predicts."""
    ok = np.isfinite(betas)
    if ok.sum() < 2:
        return math.nan
    est = CapacitanceEstimator().fit(steps[ok], betas[ok], total_steps=total)
    return float(est.estimate()[0])


def _pow3(t: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(t, -c)


def extrapolate_pow3(steps: np.ndarray, acc: np.ndarray, total: int) -> float:
    """Accuracy at the end of a ``total``-step run from its early curve, by a power law.

    Least-squares fit of ``acc(t) = a - b·t^(-c)``, ``t = step / total`` (so the
    prediction is ``a - b``), with ``0 <= a <= 1``, ``b >= 0``, ``0.01 <= c <= 2``;
    the prediction is clipped to [0, 1]. With fewer than 3 points, or when the
    fit fails, the last reading is returned.
    """
    s = np.asarray(steps, dtype=float)
    y = np.asarray(acc, dtype=float)
    ok = np.isfinite(y) & (s > 0)
    s, y = s[ok], y[ok]
    if y.size == 0:
        return math.nan
    if y.size < 3:
        return float(y[-1])
    t = s / total
    # start from c = 1/2 through the first and last points
    b0 = max(float(y[-1] - y[0]), 1e-3) / max(float(t[0] ** -0.5 - t[-1] ** -0.5), 1e-6)
    a0 = float(np.clip(y[-1] + b0 * t[-1] ** -0.5, 0.0, 1.0))
    try:
        (a, b, _c), _ = optimize.curve_fit(
            _pow3,
            t,
            y,
            p0=(a0, min(b0, 1e3), 0.5),
            bounds=((0.0, 0.0, 0.01), (1.0, 1e3, 2.0)),
            maxfev=2000,
        )
    except (RuntimeError, ValueError):
        return float(y[-1])
    return float(np.clip(a - b, 0.0, 1.0))


def probe_scores(run: dict[str, Any], prefix: str, lc_prefix: str) -> dict[str, float]:
    """Line 1 and line 6 scores of one probe run.

    ``<prefix>_acc``: its final validation accuracy; ``<prefix>_<v>_last``: the
    final βeff; ``<prefix>_<v>_brr``: the BRR estimate from the whole trajectory.
    For every early fraction f (``f10``, ``f25``): ``<lc_prefix>_f<f>_<v>_brr``,
    the BRR estimate from the first f of the βeff trajectory, and
    ``<lc_prefix>_f<f>_acc_last`` / ``_acc_pow3``, the last early validation
    accuracy and its power-law extrapolation.
    """
    total = int(run["total_steps"])
    out: dict[str, float] = {}
    if run["diverged"] or run["acc"].size == 0:
        return out
    out[f"{prefix}_acc"] = float(run["acc"][-1])
    steps = run["step"].astype(float)
    for v in PROBE_VARIANTS:
        out[f"{prefix}_{v}_last"] = float(run[v][-1])
        out[f"{prefix}_{v}_brr"] = brr_estimate(steps, run[v], total)
    for f in LC_FRACTIONS:
        tag = f"{lc_prefix}_f{round(100 * f)}"
        m = early(steps, f, total)
        for v in PROBE_VARIANTS:
            out[f"{tag}_{v}_brr"] = brr_estimate(steps[m], run[v][m], total)
        a = early(run["acc_step"], f, total)
        last = run["acc"][a]
        out[f"{tag}_acc_last"] = float(last[-1]) if last.size else math.nan
        out[f"{tag}_acc_pow3"] = extrapolate_pow3(run["acc_step"][a], run["acc"][a], total)
    return out


def measure_probe(
    arch: Arch, config: ProxyConfig, data: ProxyData, *, epochs: int, eval_every: int
) -> dict[str, Any]:
    """Line 1 and line 6 of one cell, and the whole network after 1 and 2 epochs.

    One run of the default proxy recipe (as ``train``), stopped at its second
    report point (epoch 2). At initialisation and at epochs 1 and 2 the
    backbone's pooled features of the proxy's training subset and validation
    split are computed once (eval mode, no grad), z-scored with the training
    features' statistics, and a fresh probe is trained on them alone
    (:func:`train_probe`); :func:`probe_scores` reads it. At epochs 1 and 2
    also the proxy's validation accuracy (``acc_ep<k>``) and whole-network βeff
    of W (``net_ep<k>_*``) and of W - W0 (``dW_ep<k>_*``); the epoch-1 values
    are those of ``train`` (same run up to there). Costs per part:
    ``cost_probe_backbone_ep<k>`` (build, trace, training to epoch k with its
    validation passes and βeff, feature and probe time excluded),
    ``cost_probe_features_k<k>``, ``cost_probe_fit_k<k>`` (probe training and
    its scores), ``cost_probe`` (everything). ``curves`` holds every probe
    run's βeff trajectories and validation curve (``main`` writes them to
    ``curves-*.jsonl`` beside the scores, so line 6 can be redone without
    training).
    """
    t0 = time.perf_counter()
    row: dict[str, Any] = {"meta_probe_epochs": epochs, "meta_probe_eval_every": eval_every}
    aside = 0.0  # seconds spent on features and probes, not on the backbone
    model = _build(arch, config)
    graph = coupling_graph(model.eval(), torch.zeros(TRACE_INPUT))
    model.train()
    w0 = [w.detach().clone() for w in graph.weights(model)]
    transform = DeviceTransform(data.mean, data.std, device="cpu")
    curves: dict[str, Any] = {}

    def probe_at(k: int) -> None:
        nonlocal aside
        row[f"cost_probe_backbone_ep{k}"] = time.perf_counter() - t0 - aside
        t1 = time.perf_counter()
        train_f, valid_f = standardise(
            pooled_features(model, data.train_x, transform),
            pooled_features(model, data.valid_x, transform),
        )
        t2 = time.perf_counter()
        run = train_probe(
            train_f,
            data.train_y,
            valid_f,
            data.valid_y,
            config,
            epochs=epochs,
            eval_every=eval_every,
        )
        row.update(probe_scores(run, f"probe_k{k}", f"lc_k{k}"))
        curves[f"k{k}"] = {
            key: np.asarray(value, dtype=float).round(6).tolist() if key != "diverged" else value
            for key, value in run.items()
        }
        t3 = time.perf_counter()
        row[f"cost_probe_features_k{k}"] = t2 - t1
        row[f"cost_probe_fit_k{k}"] = t3 - t2
        aside += t3 - t1

    probe_at(0)
    last = max(PROBE_K)
    epoch = 0

    def on_report(report: Report) -> str | None:
        nonlocal epoch
        epoch += 1
        row[f"acc_ep{epoch}"] = float(report.valid_acc)
        row.update(_betas(model, f"net_ep{epoch}", graph=graph))
        delta = [w.detach() - w_0 for w, w_0 in zip(graph.weights(model), w0)]
        row.update(_betas(model, f"dW_ep{epoch}", delta, graph=graph))
        if epoch in PROBE_K:
            probe_at(epoch)
        return "stop" if epoch >= last else None

    _train_by_epoch(model, config, data, on_report)
    row["cost_probe"] = time.perf_counter() - t0
    row["curves"] = curves
    return row


def measure_probe0(
    arch: Arch,
    config: ProxyConfig,
    data: ProxyData,
    *,
    epochs: int,
    eval_every: int,
    seeds: Sequence[tuple[int, int]] = PROBE0_SEEDS,
) -> dict[str, Any]:
    """Line 1 at k = 0 alone: for every (backbone seed, probe seed) in ``seeds``, the
    untrained proxy network's pooled features (as :func:`measure_probe` caches them at
    k = 0) and a fresh probe trained on them (probe initialisation and shuffling
    from the probe seed). Keys: ``probe_k0_*`` for the pair (0, 0), which is
    :func:`measure_probe`'s k = 0 run, ``probe_k0_b<B>p<P>_*`` for the others; costs
    of the (0, 0) pair under :func:`measure_probe`'s names, ``cost_probe0`` in all."""
    t0 = time.perf_counter()
    row: dict[str, Any] = {"meta_probe_epochs": epochs, "meta_probe_eval_every": eval_every}
    transform = DeviceTransform(data.mean, data.std, device="cpu")
    features: dict[int, list[torch.Tensor]] = {}
    for backbone, probe_seed in seeds:
        t1 = time.perf_counter()
        if backbone not in features:
            model = build_proxy_network(arch, config, backbone, torch.device("cpu"))
            t_built = time.perf_counter()
            features[backbone] = standardise(
                pooled_features(model, data.train_x, transform),
                pooled_features(model, data.valid_x, transform),
            )
            if backbone == 0:
                row["cost_probe_backbone_ep0"] = t_built - t1
                row["cost_probe_features_k0"] = time.perf_counter() - t_built
        train_f, valid_f = features[backbone]
        t2 = time.perf_counter()
        run = train_probe(
            train_f,
            data.train_y,
            valid_f,
            data.valid_y,
            dataclasses.replace(config, probe_seed=probe_seed),
            epochs=epochs,
            eval_every=eval_every,
            seed=probe_seed,
        )
        tag = "" if (backbone, probe_seed) == (0, 0) else f"_b{backbone}p{probe_seed}"
        row.update(probe_scores(run, f"probe_k0{tag}", f"lc_k0{tag}"))
        if not tag:
            row["cost_probe_fit_k0"] = time.perf_counter() - t2
    row["cost_probe0"] = time.perf_counter() - t0
    return row


def _train_by_epoch(
    model: torch.nn.Module,
    config: ProxyConfig,
    data: ProxyData,
    on_report: Callable[[Any], str | None],
) -> Any:
    """The default proxy recipe on CPU (seed 0), one report point per epoch;
    ``on_report`` returns ``"stop"`` to end the run there."""
    steps_per_epoch = max(1, math.ceil(int(data.train_y.shape[0]) / config.batch_size))
    return train_proxy(
        model.train(),
        data,
        Budget(epochs=config.epochs),
        device="cpu",
        seed=0,
        report_every=steps_per_epoch,
        on_report=on_report,
        recipe=config.to_recipe(),
    )


def measure(
    arch: Arch,
    config: ProxyConfig,
    data: ProxyData,
    what: Sequence[str],
    *,
    probe_epochs: int = 10,
    probe_eval_every: int = 5,
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
    if "grad" in what:
        t0 = time.perf_counter()
        row.update(_gradient_betas(_build(arch, config), data))
        row["cost_grad"] = time.perf_counter() - t0
    if "train" in what:
        t0 = time.perf_counter()
        model = _build(arch, config)
        graph = coupling_graph(model.eval(), torch.zeros(TRACE_INPUT))
        w0 = [w.detach().clone() for w in graph.weights(model)]
        probe_change = ProbeWeightChangeObserver(VARIANTS)
        probe_change.on_train_start(model, total_steps=0)  # keeps the probe's W0
        result = _train_by_epoch(model, config, data, lambda _report: "stop")
        row["acc_ep1"] = float(result.final_valid_acc)
        row.update(_betas(model, "net_ep1"))
        delta = [w.detach() - w_0 for w, w_0 in zip(graph.weights(model), w0)]
        row.update(_betas(model, "dW_ep1", delta))
        row.update(_gradient_betas(model, data, "grad_ep1"))
        row.update(_probe_weight_change(probe_change, "pdw_ep1"))
        row["cost_train"] = time.perf_counter() - t0
    if "probe" in what:
        row.update(
            measure_probe(arch, config, data, epochs=probe_epochs, eval_every=probe_eval_every)
        )
    if "probe0" in what:
        row.update(
            measure_probe0(arch, config, data, epochs=probe_epochs, eval_every=probe_eval_every)
        )
    return row


def sample_tag(seed: int | None, sample: str | None = None, top: str | None = None) -> str:
    """The file-name tag of a sample: ``seed<seed>``, ``sample<name>`` for a fresh one,
    or ``top-<half>`` (``top-all``) for a ``--top`` sample (``top``: its half or "all")."""
    if top is not None:
        return f"top-{top}"
    return f"sample{sample}" if sample is not None else f"seed{seed}"


def top_sample(n: int, half: str | None, cache: str, data_root: str) -> list[tuple[Arch, float]]:
    """The ``n`` best cells of the space by the free aggregate (``half``: its odd or even
    ranks), each with its aggregate over the whole space, best first: the ``--top``
    sample of ``benchmarks/proxy_budget.py``, screened into the same ``cache``."""
    from proxy_budget import half_of, top_of_space  # a sibling script that imports this one

    ranked = list(top_of_space(n, cache, data_root))
    kept = {str(a) for a in half_of([a for a, _ in ranked], half)}
    return [(a, v) for a, v in ranked if str(a) in kept]


def top_table(rows: dict[str, dict[str, Any]], pool: list[tuple[Arch, float]], label: str) -> str:
    """Inside a ``--top`` sample: τ of every ``probe_k0`` βeff reading and of the free
    aggregate over the whole space, the pick score's rank aggregate of the two, the
    paired bootstrap gap of each over the aggregate, and how the seeds' readings agree."""
    from proxy_budget import tau_rows  # sibling scripts
    from search_regret import paired_tau_gap

    from nasnc.metrics import kendall_tau

    truth = open_benchmark("builtin")
    archs = [str(a) for a, _ in pool if str(a) in rows]
    agg = np.array([v for a, v in pool if str(a) in rows], dtype=float)
    gt = np.array([truth.get(a, "cifar10-valid", "valid_acc") for a in archs], dtype=float)
    best = truth.best("cifar10-valid", "valid_acc")[1]

    def col(key: str) -> np.ndarray:
        return np.array([rows[a].get(key, math.nan) for a in archs], dtype=float)

    seeds = ["" if p == (0, 0) else f"_b{p[0]}p{p[1]}" for p in PROBE0_SEEDS]
    product = {tag: col(f"probe_k0{tag}_product_brr") for tag in seeds}
    main_col = product[""]
    scores = {"the free aggregate (over the whole space)": agg}
    scores["probe_k0_product_brr (backbone seed 0, probe seed 0)"] = main_col
    scores["aggregate + probe_k0_product_brr (weight 1 each)"] = rank_aggregate(
        {"aggregate": agg, "probe": main_col}
    )
    for tag in seeds[1:]:
        scores[f"probe_k0{tag}_product_brr"] = product[tag]
    for key in ("probe_k0_chain_sf_brr", "probe_k0_product_sf_brr", "probe_k0_acc"):
        scores[key] = col(key)
    finite = [c for c in product.values() if np.isfinite(c).all()]
    if len(finite) == len(product):
        mean_rank = np.mean([stats.rankdata(c) for c in finite], axis=0)
        scores["probe_k0_product_brr, the mean of its seeds' ranks"] = mean_rank
    costs = col("cost_probe0")
    lines = [
        f"{label}: {len(archs)} cells recorded; cifar10-valid 200-epoch validation accuracy "
        f"spans {np.nanmin(gt):.2f}-{np.nanmax(gt):.2f} %; probe0 median "
        f"{np.nanmedian(costs):.1f} s per cell (all seed pairs)",
        "",
        "| score | Kendall τ [95 % CI] | regret of its top-1 | τ(score) − τ(aggregate) [95 % CI] |",
        "|---|---|---|---|",
    ]
    shown = {name: c for name, c in scores.items() if np.isfinite(c).sum() >= 3}  # recorded

    def gap(name: str, c: np.ndarray) -> str:
        if c is agg:
            return "–"
        g, low, high = paired_tau_gap(c, agg, gt)
        return f"{g:+.3f} [{low:+.3f}, {high:+.3f}]"

    lines += tau_rows(shown, gt, best, gap)
    lines += ["", "| probe_k0_product_brr | τ with backbone seed 0, probe seed 0 |", "|---|---|"]
    for tag in seeds[1:]:
        lines.append(f"| {tag.lstrip('_')} | {kendall_tau(product[tag], main_col):+.3f} |")
    return "\n".join(lines)


def _files(out: Path, tag: str, n: int) -> list[Path]:
    return sorted(out.glob(f"{tag}-n{n}*.jsonl"))


def load_rows(out: Path, tag: str, n: int) -> dict[str, dict[str, Any]]:
    """Every recorded value per arch string of the sample ``tag`` (:func:`sample_tag`),
    merged over shards and compute passes."""
    rows: dict[str, dict[str, Any]] = {}
    for path in _files(out, tag, n):
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


def line6_table(
    cols: dict[str, np.ndarray], lc: dict[str, np.ndarray], gt: np.ndarray
) -> list[str]:
    """Line 6: τ of each early prediction with the probe's final accuracy and the benchmark's.

    Per backbone epoch k and early fraction f: the BRR estimate of the
    converged βeff from the first f of the βeff trajectory (per variant), the
    last validation accuracy seen by then, and its power-law extrapolation
    (:func:`extrapolate_pow3`); as references, the final βeff and the BRR
    estimate from the whole trajectory. For the βeff rows also τ with the
    final βeff reading (how well the early estimate ranks the converged value).
    """
    out = [
        "line 6 (learning-curve prediction from the first f of each probe run; targets: the "
        "probe's final validation accuracy, the benchmark's 200-epoch accuracy):",
        "",
        "| k | predictor | τ with probe final acc [95 % CI] | τ with benchmark [95 % CI] | "
        "τ with final βeff | n |",
        "|---|---|---|---|---|---|",
    ]

    def cell(x: np.ndarray, y: np.ndarray) -> tuple[str, int]:
        s = correlation_summary(x, y, n_boot=1000, seed=0)
        return f"{s['kendall_tau']:+.3f} {_fmt_ci(s['kendall_ci'])}", int(s["n"])

    for k in PROBE_K:
        target = cols.get(f"probe_k{k}_acc")
        if target is None:
            continue
        preds: list[tuple[str, np.ndarray, str | None]] = []
        for f in LC_FRACTIONS:
            tag = f"lc_k{k}_f{round(100 * f)}"
            for v in PROBE_VARIANTS:
                if f"{tag}_{v}_brr" in lc:
                    preds.append((f"{tag}_{v}_brr", lc[f"{tag}_{v}_brr"], f"probe_k{k}_{v}_last"))
            for name in ("acc_last", "acc_pow3"):
                if f"{tag}_{name}" in lc:
                    preds.append((f"{tag}_{name}", lc[f"{tag}_{name}"], None))
        for v in PROBE_VARIANTS:
            for ref in (f"probe_k{k}_{v}_brr", f"probe_k{k}_{v}_last"):
                if ref in cols:
                    preds.append((ref + " (whole run)", cols[ref], f"probe_k{k}_{v}_last"))
        for name, x, last in preds:
            with_acc, n = cell(x, target)
            with_gt, _ = cell(x, gt)
            with_last = "–"
            if last is not None and last in cols and not name.startswith(last):
                with_last = (
                    f"{correlation_summary(x, cols[last], n_boot=1, seed=0)['kendall_tau']:+.3f}"
                )
            out.append(f"| {k} | {name} | {with_acc} | {with_gt} | {with_last} | {n} |")
    return out


def table(rows: dict[str, dict[str, Any]], label: str) -> str:
    """The markdown tables of one sample (each score on the cells where it was recorded)."""
    truth = open_benchmark("builtin")
    archs = list(rows)
    gt = np.array([truth.get(a, "cifar10-valid", "valid_acc") for a in archs], dtype=float)
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    cols = {
        k: np.array([rows[a].get(k, math.nan) for a in archs], dtype=float)
        for k in keys
        if k != "arch" and not k.startswith(("cost_", "meta_"))
    }
    lc = {k: cols.pop(k) for k in list(cols) if k.startswith("lc_")}
    cols = add_rates(cols)
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
        f"sample {label}: {len(archs)} distinct cells, ground truth builtin cifar10-valid "
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
        "cost per cell, seconds (1 torch thread; the load on the machine is not recorded): "
        + ", ".join(
            f"{k} median {np.nanmedian(v):.2f} / mean {np.nanmean(v):.2f} "
            f"(n {np.isfinite(v).sum()})"
            for k, v in costs.items()
        ),
    ]
    if lc:
        lines += ["", *line6_table(cols, lc, gt)]
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


def score_cost(score: str, col: dict[str, np.ndarray]) -> np.ndarray:
    """Seconds per cell that producing ``score`` took (NaN where not recorded).

    ``probe_k<k>_*``: the backbone to epoch k, its features, the probe run;
    ``lc_k<k>_f<f>_*``: the same with only the first f of the probe run;
    ``*_ep<k>``: the backbone to epoch k (the ``probe`` run's own timing, or
    ``train``'s for epoch 1 where only that ran); ``*rate_ep1_*``: ``train``'s
    (the reading at initialisation costs a fraction of it and is not added).
    """
    nan = np.full(len(next(iter(col.values()))), math.nan)

    def get(name: str) -> np.ndarray:
        return col.get(name, nan)

    m = re.match(r"(probe|lc)_k(\d+)(?:_f(\d+))?_", score)
    if m:
        k = m.group(2)
        share = 1.0 if m.group(3) is None else int(m.group(3)) / 100
        backbone = get(f"cost_probe_backbone_ep{k}")
        return backbone + get(f"cost_probe_features_k{k}") + share * get(f"cost_probe_fit_k{k}")
    m = re.match(r"(?:acc|net|dW|pdw|grad|rate|grad_rate)_ep(\d+)", score)
    if m:
        own = get(f"cost_probe_backbone_ep{m.group(1)}")
        return np.where(np.isfinite(own), own, get("cost_train")) if m.group(1) == "1" else own
    for prefix, part in (("net_init", "init"), ("bench_init", "bench"), ("grad_init", "grad")):
        if score.startswith(prefix):
            return get(f"cost_{part}")
    return get("cost_free")


def plot(
    out: Path, seeds: Sequence[int], n: int, path: Path, only: Sequence[str] | None = None
) -> None:
    """τ against the median cost per cell of every score (or those starting with
    one of ``only``), one marker per sample, labelled once."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = open_benchmark("builtin")
    fig, ax = plt.subplots(figsize=(10, 6))
    colours: dict[str, Any] = {}
    for seed, marker in zip(seeds, "os^v"):
        rows = load_rows(out, sample_tag(seed), n)
        archs = list(rows)
        gt = np.array([truth.get(a, "cifar10-valid", "valid_acc") for a in archs], dtype=float)
        keys = list(dict.fromkeys(k for r in rows.values() for k in r))
        col = {
            k: np.array([rows[a].get(k, math.nan) for a in archs], dtype=float)
            for k in keys
            if k != "arch" and not k.startswith("meta_")
        }
        agg_names = AGGREGATES["aggregate"]
        col["aggregate"] = rank_aggregate({k: col[k] for k in agg_names}, names=agg_names)
        for k, v in col.items():
            if k.startswith("cost_") or not np.isfinite(v).any():
                continue
            if only and not k.startswith(tuple(only)):
                continue
            cost = score_cost(k, col)
            good = np.isfinite(cost) & np.isfinite(v)
            if good.sum() < 10:
                continue
            tau = correlation_summary(v[good], gt[good], n_boot=1, seed=0)["kendall_tau"]
            colour = colours.setdefault(k, plt.get_cmap("tab20")(len(colours) % 20))
            ax.scatter(float(np.median(cost[good])), tau, marker=marker, color=colour, s=22)
            if seed == seeds[0]:
                ax.annotate(
                    k,
                    (float(np.median(cost[good])), tau),
                    fontsize=6,
                    xytext=(3, 2),
                    textcoords="offset points",
                )
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("median cost per cell (s, one CPU thread, shared cores)")
    ax.set_ylabel("Kendall τ vs cifar10-valid (200 ep.)")
    ax.set_title(
        f"τ against cost per cell; samples {', '.join(map(str, seeds))} "
        f"({', '.join('os^v'[: len(seeds)])})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def add_sample_arguments(parser: argparse.ArgumentParser, *, seed_required: bool = True) -> None:
    """The options naming a study sample (:func:`study_sample`), its shard and the data."""
    parser.add_argument("--seed", type=int, required=seed_required, help="sample seed")
    parser.add_argument("--n", type=int, default=150, help="distinct cells (default 150)")
    parser.add_argument(
        "--disjoint-from",
        type=int,
        default=None,
        metavar="SEED",
        help="leave out every cell of the n-cell sample drawn with SEED",
    )
    parser.add_argument("--shard", default="0/1", metavar="I/K", help="only cells I, I+K, ...")
    parser.add_argument(
        "--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add_sample_arguments(parser, seed_required=False)
    parser.add_argument(
        "--sample",
        choices=("E", "F"),
        default=None,
        help="a fresh sample of benchmarks/free_scores.py instead of --seed",
    )
    parser.add_argument(
        "--top",
        type=int,
        default=None,
        metavar="N",
        help="the N best cells of the space by the free aggregate instead of --seed",
    )
    parser.add_argument(
        "--half",
        choices=("odd", "even"),
        default=None,
        help="with --top: its odd or even ranks (two disjoint samples of the same range)",
    )
    parser.add_argument(
        "--screen-cache",
        default="runs/proxy-budget",
        help="HDF5 cache of the space's free scores for --top (proxy_budget.py's --cache)",
    )
    parser.add_argument(
        "--top-table",
        action="store_true",
        help="with --top: the untrained probe's readings against the aggregate inside it",
    )
    parser.add_argument("--compute", nargs="+", choices=COMPUTE, default=["free", "init"])
    parser.add_argument(
        "--probe-epochs", type=int, default=10, help="probe epochs on cached features (probe)"
    )
    parser.add_argument(
        "--probe-eval-every",
        type=int,
        default=5,
        metavar="STEPS",
        help="probe validation accuracy every this many steps (probe)",
    )
    parser.add_argument("--out", default="runs/capacitance-study")
    parser.add_argument("--table", action="store_true", help="print the tables of what is recorded")
    parser.add_argument(
        "--plot",
        default=None,
        metavar="PNG",
        help="write τ against cost per cell for the samples of --plot-seeds",
    )
    parser.add_argument("--plot-seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--plot-only",
        nargs="+",
        default=None,
        metavar="PREFIX",
        help="plot only the scores whose names start with one of these",
    )
    args = parser.parse_args()
    named = (args.seed is not None, args.sample is not None, args.top is not None)
    if sum(named) != 1 and not args.plot:
        parser.error("name the sample with exactly one of --seed, --sample and --top")
    if args.disjoint_from is not None and args.seed is None:
        parser.error("--disjoint-from goes with --seed (--sample and --top are fixed samples)")
    if (args.half or args.top_table) and args.top is None:
        parser.error("--half and --top-table read a --top sample")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    out = Path(args.out)
    tag = sample_tag(args.seed, args.sample, (args.half or "all") if args.top else None)
    n = args.top if args.top is not None else args.n
    pool = top_sample(args.top, args.half, args.screen_cache, args.data_root) if args.top else []
    if args.top_table:
        rows = load_rows(out, tag, n)
        if not rows:
            print(f"nothing recorded under {out} for {tag}, n {n}", file=sys.stderr)
            return 1
        half = f", its {args.half} ranks" if args.half else ""
        print(top_table(rows, pool, f"the top {args.top} of the space by the free aggregate{half}"))
        return 0
    if args.plot:
        plot(out, args.plot_seeds, args.n, Path(args.plot), args.plot_only)
        return 0
    if args.table:
        rows = load_rows(out, tag, n)
        if not rows:
            print(f"nothing recorded under {out} for {tag}, n {n}", file=sys.stderr)
            return 1
        label = f"seed {args.seed}" if args.sample is None else f"{args.sample} (fresh)"
        print(table(rows, tag if args.top else label))
        return 0
    if args.top is not None:
        archs = [a for a, _ in pool]
    elif args.sample is not None:
        from free_scores import fresh_sample  # a sibling script that imports this one

        archs = fresh_sample(args.sample, args.n)
    else:
        archs = study_sample(args.n, args.seed, args.disjoint_from)
    i, k = (int(v) for v in args.shard.split("/"))
    config = ProxyConfig()
    data = load_proxy_data(config, args.data_root, device="cpu", seed=0)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{tag}-n{n}-{'-'.join(args.compute)}-shard{i}of{k}.jsonl"
    done = {
        a for a, r in load_rows(out, tag, n).items() if all(f"cost_{c}" in r for c in args.compute)
    }
    start = time.perf_counter()
    mine = archs[i::k]
    curves_path = out / f"curves-{path.name}"
    curves_file = curves_path.open("a") if "probe" in args.compute else contextlib.nullcontext()
    with path.open("a") as fh, curves_file as cfh:
        for j, arch in enumerate(mine, start=1):
            if str(arch) in done:
                continue
            row = measure(
                arch,
                config,
                data,
                args.compute,
                probe_epochs=args.probe_epochs,
                probe_eval_every=args.probe_eval_every,
            )
            curves = row.pop("curves", None)
            if curves is not None:
                cfh.write(json.dumps({"arch": row["arch"], **curves}) + "\n")
                cfh.flush()
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            costs = " ".join(f"{c}={row[f'cost_{c}']:.2f}s" for c in args.compute)
            print(f"[{j:3d}/{len(mine)}] {costs} {arch}", file=sys.stderr, flush=True)
    print(f"done: {len(mine)} cells in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
