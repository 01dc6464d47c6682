"""One architecture through the proxy: cache lookup, training with βeff streaming, entry.

:func:`evaluate_arch` is the unit of work shared by ``nasnc evaluate`` (a list
of architectures, no Optuna) and the Optuna objective of ``nasnc search``. It
is deliberately free of Optuna: pruning reaches it only as an ``on_report``
callback that may return ``"stop"``.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasnc._catalogue import dataset_info
from nasnc._errors import ConfigError
from nasnc.capacitance import (
    CapacitanceEstimator,
    CapacitanceObserver,
    ProbeWeightChangeObserver,
    SnapshotObserver,
    WeightChangeObserver,
    coupling_graph,
    snapshot_beta_eff,
)
from nasnc.capacitance._snapshots import PROBE_SCOPES, parse_variant
from nasnc.data import ProxyData, load_dataset
from nasnc.models import build_network
from nasnc.pipeline._config import ProxyConfig
from nasnc.space import Arch
from nasnc.store import Entry, Snapshots, Store, make_key
from nasnc.train import Budget, Report, autocast_dtype, resolve_device, train_proxy

__all__ = [
    "Evaluation",
    "ReportPoint",
    "beta_eff_from_snapshots",
    "evaluate_arch",
    "load_proxy_data",
    "proxy_key",
    "resolved_config",
    "run_precision",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportPoint:
    """What a caller sees at each report point (live training or cache replay)."""

    index: int  # 0-based report index (the Optuna step)
    step: int  # optimiser step
    total_steps: int
    beta_eff: float  # estimated converged βeff of the configured variant
    beta_eff_std: float
    beta_eff_last: float  # last measured value
    valid_acc: float
    train_loss: float
    cached: bool
    #: Every other reading recorded at this point, by trajectory column (e.g.
    #: ``beta_eff_probe_dw_chain_sf``); a column the run lacks is absent.
    readings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    """Outcome of :func:`evaluate_arch`."""

    entry: Entry
    cache_hit: bool
    stopped: bool  # the on_report callback stopped it (a pruned trial); cached as pruned

    @property
    def diverged(self) -> bool:
        return bool(self.entry.summary.get("diverged", False))


def load_proxy_data(
    config: ProxyConfig,
    root: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    download: bool = False,
) -> ProxyData:
    """Load the data ``config`` describes (dataset, subset, validation split, resolution)."""
    return load_dataset(
        config.dataset,
        root,
        train_subset=config.train_subset,
        subset_mode=config.subset_mode,
        valid_size=config.valid_size,
        valid_from=config.valid_from,
        resolution=config.resolution,
        device=resolve_device(device),
        seed=seed,
        download=download,
    )


def resolved_config(
    config: ProxyConfig, data: ProxyData, *, device: str | torch.device = "auto"
) -> dict[str, Any]:
    """``config`` plus the data actually used (image counts and the data's
    :attr:`~nasnc.data.ProxyData.digest`) and the device type, as hashed.

    With ``train_subset: null`` the number of training images depends on the
    batches present (one in a partial copy, five in a full download); a
    seeded subset, a held-out split or another copy of the files changes the
    images with the same counts. Counts and digest enter the cache key: runs
    on different data never share an entry.
    The type of the device the run *trains* on enters too (``device`` as
    :func:`evaluate_arch` takes it, ``"auto"`` resolved the same way; not the
    device the data happens to live on, which the loop moves): CUDA trains
    with mixed precision (bf16/fp16), the CPU in float32, so their
    trajectories differ numerically; on CUDA the autocast dtype ``amp: auto``
    chose for this GPU enters as ``amp_dtype`` (bf16 on Ampere and later,
    fp16 before).
    """
    dev = resolve_device(device)
    run = (int(data.num_train), int(data.num_valid), data.digest, dev.type)
    out = {**config.to_dict(), **dict(zip(_RUN_KEYS[:4], run, strict=True))}
    if dev.type == "cuda":
        out["amp_dtype"] = run_precision(config, dev)
    return out


def run_precision(config: ProxyConfig, device: str | torch.device = "auto") -> str:
    """The dtype ``config`` computes in on ``device``: its autocast dtype on CUDA
    (``"bfloat16"``, ``"float16"``), else ``"float32"``."""
    dtype = autocast_dtype(config.to_recipe(), resolve_device(device))
    return str(dtype or torch.float32).removeprefix("torch.")


#: What :func:`resolved_config` adds to the proxy config: the run's data and device
#: (``amp_dtype`` on CUDA only, so that CPU keys stayed what they were).
_RUN_KEYS = ("n_train", "n_valid", "data_digest", "device_type", "amp_dtype")


def proxy_key(
    arch: Arch | str,
    config: ProxyConfig,
    seed: int,
    data: ProxyData,
    *,
    device: str | torch.device = "auto",
) -> str:
    """Cache key of ``arch`` under ``config``, ``seed``, ``data`` and the training ``device``.

    Cells that build the same network share it (:meth:`Arch.graph_form`);
    ``device`` is what :func:`evaluate_arch` is given.
    """
    return make_key(arch, config.dataset, resolved_config(config, data, device=device), seed)


def _check_data(config: ProxyConfig, data: ProxyData) -> None:
    problems = []
    if data.name != config.dataset:
        problems.append(f"dataset {data.name!r} (config: {config.dataset!r})")
    want = config.resolution
    if want is None:  # the dataset's own resolution
        want = dataset_info(config.dataset).resolution
    if data.resolution != want:
        problems.append(f"resolution {data.resolution} (config: {want})")
    if config.train_subset is not None and data.num_train > config.train_subset:
        problems.append(f"{data.num_train} training images (config: {config.train_subset})")
    if problems:
        raise ConfigError(
            "data does not match the proxy config: it holds "
            + ", ".join(problems)
            + "; load it with the config's dataset, resolution and train_subset"
        )


@functools.cache
def _blas() -> Any:
    """The BLAS thread pools, found once (``threadpool_limits`` searches at every call, ~3 ms).

    A 7-column fit gains nothing from BLAS threads; on a busy machine,
    contending for them made the refit 3-9x slower at 2,000-10,000 points
    (``python benchmarks/estimate_cost.py``), with bit-identical results.
    """
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    return ThreadpoolController()


def _estimate(steps: np.ndarray, betas: np.ndarray, total_steps: int) -> tuple[float, float]:
    ok = np.isfinite(betas)
    if ok.sum() < 2:
        last = float(betas[ok][-1]) if ok.any() else math.nan
        return last, math.nan
    est = CapacitanceEstimator()
    with _blas().limit(limits=1, user_api="blas"):
        est.partial_fit(steps[ok], betas[ok], total_steps=total_steps)
    mean, std = est.estimate()
    return float(mean), float(std)


def _replay(entry: Entry, on_report: Callable[[ReportPoint], str | None] | None) -> bool:
    """Feed a cached trajectory to ``on_report``; True when the callback stopped it."""
    if on_report is None:
        return False
    traj = entry.trajectory
    n = len(traj.get("step", ()))
    if entry.summary.get("diverged"):
        # live training never reports the row where the loss went non-finite
        losses = np.asarray(traj.get("train_loss", np.zeros(n)), dtype=float)
        n = int(np.argmin(np.isfinite(losses))) if not np.isfinite(losses).all() else n
    total = int(entry.summary.get("steps", traj["step"][-1] if n else 0))
    for i in range(n):
        point = ReportPoint(
            index=i,
            step=int(traj["step"][i]),
            total_steps=total,
            beta_eff=float(traj.get("beta_eff_est", traj["beta_eff"])[i]),
            beta_eff_std=float(traj.get("beta_eff_est_std", np.full(n, math.nan))[i]),
            beta_eff_last=float(traj["beta_eff"][i]),
            valid_acc=float(traj["valid_acc"][i]),
            train_loss=float(traj["train_loss"][i]),
            cached=True,
            readings={k: float(v[i]) for k, v in traj.items()},  # equal-length 1-D columns
        )
        if on_report(point) == "stop":
            return True
    return False


def _build(arch: Arch, config: ProxyConfig, seed: int, dev: torch.device) -> torch.nn.Module:
    # the backbone draws from the global RNG: seed it inside fork_rng so the
    # caller's RNG state is left untouched; the probe has its own generator
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        model = build_network(
            arch,
            channels=config.channels,
            cells_per_stage=config.cells_per_stage,
            num_classes=config.num_classes,
            probe=config.probe,
            probe_seed=config.probe_seed,
        )
    return model.to(dev)


def _baselines(
    model: torch.nn.Module, data: ProxyData, names: Sequence[str], seed: int, dev: torch.device
) -> dict[str, float]:
    """Zero-cost proxies at initialisation on the first (up to) 64 training images."""
    from nasnc.proxies import compute_proxies

    n = min(64, int(data.train_y.shape[0]))
    images = data.train_x[:n].to(dev).float() / 255.0
    mean = torch.tensor(data.mean, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(data.std, device=dev).view(1, 3, 1, 1)
    return compute_proxies(
        model, (images - mean) / std, data.train_y[:n].to(dev), names=list(names), seed=seed
    )


def evaluate_arch(
    arch: Arch | str,
    config: ProxyConfig,
    data: ProxyData,
    *,
    seed: int = 0,
    device: str | torch.device = "auto",
    store: Store | None = None,
    proxies: Sequence[str] = (),
    on_report: Callable[[ReportPoint], str | None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate one architecture under ``config``, reusing the cache when it can.

    Parameters
    ----------
    arch : Arch or str
    config : ProxyConfig
    data : ProxyData
        Loaded with the same dataset/resolution as ``config``.
    seed : int
        Seeds the backbone initialisation, the data order and augmentation.
    device : str or torch.device
        ``"auto"`` picks CUDA, then MPS, then CPU.
    store : Store, optional
        Cache: a hit returns the stored entry (``cache_hit=True``) without
        training (baselines it lacks are computed and stored); a completed or
        diverged run is written to it.
    proxies : sequence of str
        Baseline proxies (:mod:`nasnc.proxies`) to compute at initialisation
        on one training batch and store beside βeff.
    on_report : callable, optional
        Called at each report point with a :class:`ReportPoint`; returning
        ``"stop"`` ends the evaluation (a pruned trial). Its partial run is
        cached with ``summary["pruned"] = True`` (so ``nasnc compare`` can see
        every trial, not only those the pruner kept) and is never served as a
        cache hit: the cell trains again when asked for.
    progress : callable, optional
        ``progress(step, total_steps)`` during training.
    """
    arch = Arch.parse(arch)
    _check_data(config, data)
    dev = resolve_device(device)
    resolved = resolved_config(config, data, device=dev)
    key = make_key(arch, config.dataset, resolved, seed)
    if store is not None:
        cached = store.get(key)
        if cached is not None and cached.summary.get("pruned", False):
            logger.info("cached run of %s was pruned (partial): training it again", arch)
            cached = None
        if cached is not None:
            logger.info("cache hit for %s (key %s)", arch, key)
            missing = [p for p in proxies if p not in cached.scores]
            if missing:  # cheap and deterministic: fill in and store again
                model = _build(arch, config, seed, dev)
                cached.scores.update(_baselines(model, data, missing, seed, dev))
                store.put(cached)
            stopped = _replay(cached, on_report)
            return Evaluation(entry=cached, cache_hit=True, stopped=stopped)

    model = _build(arch, config, seed, dev)
    scores = _baselines(model, data, proxies, seed, dev) if proxies else {}

    observer = CapacitanceObserver(
        every_n_steps=config.every_n_steps,
        interaction=config.interaction,
        normalize=config.normalize,
    )
    # whole-network βeff of W - W0 (beta_eff_dw_product_sf): recorded, never the objective
    weight_change = WeightChangeObserver((1, *data.train_x.shape[1:]))
    # the probe's βeff of its own W - W0 (beta_eff_probe_dw_*): recorded, never the objective
    observers: list[Any] = [observer, weight_change, ProbeWeightChangeObserver()]
    snapper = None if config.snapshots == "none" else SnapshotObserver(config.snapshots)
    if snapper is not None:
        observers.append(snapper)
    recipe = config.to_recipe()
    n_train = int(data.train_y.shape[0])
    steps_per_epoch = max(1, math.ceil(n_train / config.batch_size))
    report_every = max(1, steps_per_epoch // config.reports_per_epoch)
    estimates: list[tuple[float, float]] = []

    def at_report(report: Report) -> str | None:
        traj = observer.trajectory()
        mean, std = _estimate(
            traj["step"].astype(float), traj[config.variant].astype(float), report.total_steps
        )
        estimates.append((mean, std))
        if on_report is None:
            return None
        last = float(report.extras.get(config.variant, math.nan))
        return on_report(
            ReportPoint(
                index=len(estimates) - 1,
                step=report.step,
                total_steps=report.total_steps,
                beta_eff=mean,
                beta_eff_std=std,
                beta_eff_last=last,
                valid_acc=report.valid_acc,
                train_loss=report.train_loss,
                cached=False,
                readings={k: float(v) for k, v in report.extras.items()},
            )
        )

    start = time.perf_counter()
    result = train_proxy(
        model,
        data,
        Budget(epochs=config.epochs),
        device=dev,
        seed=seed,
        observers=observers,
        report_every=report_every,
        on_report=at_report,
        recipe=recipe,
        progress=progress,
    )
    cost = time.perf_counter() - start

    trajectory = {k: np.asarray(v, dtype=float) for k, v in result.trajectory.items()}
    n_rows = len(trajectory.get("step", ()))
    est = np.array(estimates[:n_rows] + [(math.nan, math.nan)] * (n_rows - len(estimates)))
    est = est.reshape(n_rows, 2)
    trajectory["beta_eff_est"] = est[:, 0]
    trajectory["beta_eff_est_std"] = est[:, 1]
    if "beta_eff" not in trajectory:
        trajectory["beta_eff"] = trajectory.get(config.variant, np.full(n_rows, math.nan))
    final_mean, final_std = (
        (float(est[-1, 0]), float(est[-1, 1])) if n_rows else (math.nan, math.nan)
    )
    summary: dict[str, float | bool] = {
        "beta_eff": final_mean,
        "beta_eff_std": final_std,
        "beta_eff_last": float(trajectory[config.variant][-1]) if n_rows else math.nan,
        "proxy_valid_acc": float(result.final_valid_acc),
        "cost_s": float(cost),
        "steps": int(result.steps),
        "diverged": bool(result.diverged),
        "pruned": bool(result.stopped),
    }
    if n_rows and not result.diverged:
        from nasnc.proxies import tse

        scores.setdefault("tse", tse(trajectory["train_loss"]))
    entry = Entry(
        arch=str(arch),
        canonical=arch.canonical(),
        dataset=config.dataset,
        seed=seed,
        config=resolved,
        trajectory=trajectory,
        summary=summary,
        scores=scores,
        snapshots=None
        if snapper is None
        else Snapshots(snapper.kind, snapper.names, snapper.steps, snapper.layers()),
    )
    if result.diverged:
        logger.warning("%s diverged: %s", arch, result.reason)
    if store is not None:  # a pruned run too, flagged: compare sees every trial, not the kept
        store.put(entry)
    return Evaluation(entry=entry, cache_hit=False, stopped=bool(result.stopped))


def beta_eff_from_snapshots(
    entry: Entry, variant: str = "beta_eff_chain_sf"
) -> dict[str, np.ndarray]:
    """Recompute a βeff variant at every stored weight snapshot of ``entry``.

    Parameters
    ----------
    entry : Entry
        A run evaluated with ``ProxyConfig.snapshots`` ``"probe"`` or
        ``"network"`` (e.g. from :meth:`Store.get <nasnc.store.Store.get>`).
    variant : str
        A key of :data:`~nasnc.capacitance.SNAPSHOT_VARIANTS`: the probe's
        ``beta_eff_<chain|product>[_sf]`` and its weight change
        ``beta_eff_probe_dw_*`` (from either kind of snapshot), or,
        from ``"network"`` snapshots only, the whole network's coupling graph
        ``beta_eff_net_*`` and its weight change ``beta_eff_dw_*`` (``W - W0``).

    Returns
    -------
    dict
        ``{"step": int64 array, variant: float64 array}``, one row per
        snapshot; step 0 is the initialisation, the other rows are the run's
        report points (equal to its trajectory's ``step`` column). Computed in
        float64 from the float16 weights; how closely they agree with the
        streamed values is measured in docs/cache-format.md (Weight snapshots).

    Raises
    ------
    ConfigError
        The entry kept no snapshots, or the variant is unknown or needs
        ``"network"`` snapshots.

    For network variants the model is rebuilt from the entry's arch and
    config with the pipeline's builder (on the CPU) only to trace its
    :class:`~nasnc.capacitance.CouplingGraph`; its weights are not used.
    """
    scope, _, _ = parse_variant(variant)
    on_probe = scope in PROBE_SCOPES
    snaps = entry.snapshots
    if snaps is None:
        raise ConfigError(
            f"entry {entry.key} ({entry.arch}) kept no weight snapshots; evaluate it with "
            "proxy option snapshots: probe or network"
        )
    steps = snaps.steps
    if snaps.kind == "probe" and not on_probe:
        raise ConfigError(
            f"variant {variant!r} needs snapshots: network, but entry {entry.key} kept the "
            "probe's only"
        )
    if snaps.kind == "probe":
        layers = [snaps.layer(i) for i in range(len(snaps.names))]
        return {"step": steps, variant: snapshot_beta_eff(layers, variant)}
    config = ProxyConfig.from_mapping({k: v for k, v in entry.config.items() if k not in _RUN_KEYS})
    model = _build(Arch.parse(entry.arch), config, entry.seed, torch.device("cpu"))
    if on_probe:
        from nasnc.capacitance._snapshots import _probe_layers

        names = [n for n, _ in _probe_layers(model)]
        graph = None
    else:
        side = config.resolution or 32
        graph = coupling_graph(model.eval(), torch.zeros(1, 3, side, side))
        names = list(graph.names)
    missing = [n for n in names if n not in snaps.names]
    if missing:
        raise ConfigError(
            f"entry {entry.key}'s snapshots lack layer {missing[0]!r} of the rebuilt network"
        )
    layers = [snaps.layer(n) for n in names]
    if not layers:  # a cell whose output does not depend on its input: no live layer
        return {"step": steps, variant: np.full(len(steps), math.nan)}
    return {"step": steps, variant: snapshot_beta_eff(layers, variant, graph=graph)}
