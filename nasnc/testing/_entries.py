"""A synthetic :class:`~nasnc.store.Entry` factory (a test double)."""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from nasnc._errors import ConfigError
from nasnc.space import Arch
from nasnc.store import Entry

__all__ = ["DEFAULT_CONFIG", "make_entry"]

#: A proxy configuration shaped like a resolved one (the CPU proxy of docs/results.md).
DEFAULT_CONFIG: dict[str, Any] = {
    "dataset": "cifar10",
    "resolution": 16,
    "train_subset": 10000,
    "epochs": 8,
    "batch_size": 256,
    "lr": 0.1,
    "channels": 8,
    "cells_per_stage": 1,
    "probe": [128, 64],
    "interaction": "chain",
    "normalize": False,
    "every_n_steps": 1,
}

_SCORE_NAMES = ("params", "flops", "synflow", "snip", "grad_norm", "jacob_cov", "naswot")


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256(repr(parts).encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def make_entry(
    arch: Arch | str,
    *,
    dataset: str = "cifar10",
    seed: int = 0,
    beta_eff: float | None = None,
    proxy_valid_acc: float | None = None,
    scores: Mapping[str, float] | None = None,
    config: Mapping[str, Any] | None = None,
    n_points: int = 4,
    diverged: bool = False,
    created: float | None = None,
) -> Entry:
    """A deterministic synthetic entry for tests (a test double, not a result).

    Values not given are drawn from a generator seeded by the canonical form,
    dataset and seed, so the same arguments always give the same entry
    (except ``created``, which defaults to now).

    Parameters
    ----------
    arch : Arch or str
        Benchmark string, 6-digit op code or :class:`~nasnc.Arch`.
    dataset, seed
        Key fields of the entry.
    beta_eff : float, optional
        The summary βeff estimate; the ``beta_eff`` trajectory rises towards
        it. NaN is allowed.
    proxy_valid_acc : float, optional
        Final proxy accuracy (fraction); ``valid_acc`` rises towards it.
    scores : mapping, optional
        Baseline scores; default: synthetic ``params``, ``flops``,
        ``synflow``, ``snip``, ``grad_norm``, ``jacob_cov``, ``naswot``.
        Pass ``{}`` for none.
    config : mapping, optional
        Proxy config (default :data:`DEFAULT_CONFIG` with ``dataset``).
    n_points : int
        Trajectory rows (report points), at least 1.
    diverged : bool
        Marks a run stopped by a non-finite loss (last loss becomes NaN).
    created : float, optional
        Unix time (default: now).

    Examples
    --------
    >>> e = make_entry("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
    ...                beta_eff=1.5)
    >>> e.summary["beta_eff"], sorted(e.trajectory)[:3]
    (1.5, ['beta_eff', 'beta_eff_chain', 'beta_eff_chain_sf'])
    """
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1:
        raise ConfigError(f"n_points must be a positive int, but got {n_points=}.")
    a = Arch.parse(arch)
    rng = _rng(a.canonical(), dataset, int(seed))
    beta = float(rng.uniform(0.5, 3.0)) if beta_eff is None else float(beta_eff)
    acc = float(rng.uniform(0.2, 0.6)) if proxy_valid_acc is None else float(proxy_valid_acc)
    if config is None:
        cfg = copy.deepcopy(DEFAULT_CONFIG)
        cfg["dataset"] = dataset
    else:
        cfg = copy.deepcopy(dict(config))

    steps_per_point = 40
    progress = np.arange(1, n_points + 1) / n_points
    rise = 1.0 - np.exp(-3.0 * progress)
    rise = rise / rise[-1]
    noise = rng.normal(0.0, 0.01, size=(4, n_points))
    final_beta = beta if math.isfinite(beta) else 1.0
    beta_traj = final_beta * (0.4 + 0.6 * rise) + noise[0] * abs(final_beta)
    beta_traj[-1] = final_beta
    valid = 0.1 + (acc - 0.1) * rise + noise[1]
    valid[-1] = acc
    train_acc = np.clip(valid + 0.03 + noise[2], 0.0, 1.0)
    loss = 2.3 * np.exp(-1.2 * progress * (acc / 0.5)) + np.abs(noise[3])
    if diverged:
        loss[-1] = np.nan
    trajectory = {
        "step": (progress * n_points * steps_per_point).round(),
        "epoch": progress * 8.0,
        "train_loss": loss,
        "train_acc": train_acc,
        "valid_acc": valid,
        "wall_s": progress * 19.0,
        "beta_eff": beta_traj,
        "beta_eff_chain": beta_traj,
        "beta_eff_product": beta_traj * 0.9,
        "beta_eff_chain_sf": beta_traj / max(abs(final_beta), 1e-9),
        "beta_eff_product_sf": 0.9 * beta_traj / max(abs(final_beta), 1e-9),
    }
    if scores is None:
        score_rng = _rng("scores", a.canonical(), dataset)
        values = score_rng.uniform(0.0, 1.0, size=len(_SCORE_NAMES))
        score_map = {n: float(v) for n, v in zip(_SCORE_NAMES, values)}
    else:
        score_map = {str(k): float(v) for k, v in scores.items()}
    summary: dict[str, float | bool] = {
        "beta_eff": beta,
        "beta_eff_std": float(abs(rng.normal(0.0, 0.05))),
        "beta_eff_last": float(beta_traj[-1]) if math.isfinite(beta) else math.nan,
        "proxy_valid_acc": acc,
        "cost_s": 19.0 + float(rng.uniform(0.0, 1.0)),
        "diverged": bool(diverged),
    }
    entry = Entry.from_arch(
        a,
        dataset=dataset,
        seed=int(seed),
        config=cfg,
        trajectory=trajectory,
        summary=summary,
        scores=score_map,
    )
    if created is not None:
        entry.created = float(created)
    return entry
