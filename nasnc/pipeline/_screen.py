"""Stage 1 of a search: score many cells with free scores at initialisation, cached.

:func:`screen_archs` builds each cell's proxy network at initialisation (the
same network, seed and batch as :func:`~nasnc.pipeline.evaluate_arch` uses for
its baselines) and computes zero-cost scores on the first 64 training images.
No training: about 0.06 s per cell on one CPU core for NASWOT, synflow,
jacob_cov and FLOPs, so the whole space (6,466 distinct cells) screens in
minutes.

Results are cached in the :class:`~nasnc.store.Store` as ordinary entries
(the format is unchanged) marked *score-only*:

* the config is :func:`screen_config` -- only the fields that change a score
  at initialisation (dataset, data selection, network, probe, device type),
  plus ``"stage": "screen"`` -- so score-only entries never share a key with a
  trained run, and every study with the same network reuses them whatever
  its training recipe;
* the trajectory is empty; the summary holds the required scalars as NaN
  (nothing was trained), ``cost_s`` (seconds spent scoring) and
  ``score_only = True``; ``scores`` holds the free scores.

A later screen reads the cached scores from the store's index (no HDF5 file
per cell) and computes only what is missing.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nasnc._errors import ConfigError
from nasnc.data import ProxyData
from nasnc.pipeline._config import ProxyConfig
from nasnc.pipeline._evaluate import _baselines, _build, _check_data, resolved_config
from nasnc.space import Arch
from nasnc.store import Entry, Store, config_hash, make_key
from nasnc.train import resolve_device

__all__ = ["SCREEN_FIELDS", "ScreenResult", "score_only_entry", "screen_archs", "screen_config"]

logger = logging.getLogger(__name__)

#: Fields of the resolved proxy config that change a score at initialisation.
SCREEN_FIELDS: tuple[str, ...] = (
    "dataset",
    "resolution",
    "train_subset",
    "subset_mode",
    "valid_size",
    "valid_from",
    "channels",
    "cells_per_stage",
    "probe",
    "probe_seed",
    "n_train",
    "n_valid",
    "device_type",
)
#: Images of the scoring batch (the first training images, as in evaluate_arch).
SCORE_BATCH = 64


def screen_config(
    config: ProxyConfig, data: ProxyData, *, device: str | torch.device = "auto"
) -> dict[str, Any]:
    """The config stored (and hashed) with score-only entries of ``config`` on ``data``,
    scored on ``device``."""
    full = resolved_config(config, data, device=device)
    out = {name: full[name] for name in SCREEN_FIELDS if name in full}
    out["stage"] = "screen"
    out["score_batch"] = SCORE_BATCH
    return out


def score_only_entry(
    arch: Arch, config: Mapping[str, Any], seed: int, scores: Mapping[str, float], cost_s: float
) -> Entry:
    """A score-only :class:`~nasnc.store.Entry` (see the module docstring)."""
    summary: dict[str, float | bool] = {
        "beta_eff": math.nan,
        "beta_eff_std": math.nan,
        "beta_eff_last": math.nan,
        "proxy_valid_acc": math.nan,
        "cost_s": float(cost_s),
        "diverged": False,
        "score_only": True,
    }
    return Entry(
        arch=str(arch),
        canonical=arch.canonical(),
        dataset=str(config["dataset"]),
        seed=int(seed),
        config=dict(config),
        trajectory={},
        summary=summary,
        scores={k: float(v) for k, v in scores.items()},
    )


@dataclass(frozen=True)
class ScreenResult:
    """Free scores of a pool of cells, one row per cell in the order screened.

    Attributes
    ----------
    archs : list of str
    keys : list of str
        Cache keys of the score-only entries.
    scores : dict of str to ndarray
        One column per score name (NaN where a score is not finite).
    cached : int
        Cells whose scores all came from the cache.
    seconds : float
        Wall-clock of the screen.
    """

    archs: list[str]
    keys: list[str]
    scores: dict[str, np.ndarray]
    cached: int = 0
    seconds: float = 0.0
    config_hash: str = ""
    per_cell_s: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.archs)


def screen_archs(
    archs: Sequence[Arch | str],
    config: ProxyConfig,
    data: ProxyData,
    *,
    names: Sequence[str],
    seed: int = 0,
    device: str | torch.device = "auto",
    store: Store | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScreenResult:
    """Free scores at initialisation of every cell of ``archs``, from the cache when present.

    Parameters
    ----------
    archs : sequence of Arch or str
        The pool; isomorphic cells share one cache entry.
    config : ProxyConfig
        The proxy network (width, cells per stage, probe) and data selection.
    data : ProxyData
        Loaded for ``config``; the first 64 training images are the batch.
    names : sequence of str
        Per-network proxies of :data:`nasnc.proxies.PROXIES`.
    seed : int
        Backbone initialisation (as in :func:`~nasnc.pipeline.evaluate_arch`).
    store : Store, optional
        Cache of score-only entries; only missing scores are computed.
    progress : callable, optional
        ``progress(done, total)`` after each cell.
    """
    from nasnc.proxies import PROXIES

    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in PROXIES]
    if not wanted or unknown:
        raise ConfigError(
            f"screen scores must name proxies of {', '.join(PROXIES)}, but got names={wanted!r}."
        )
    _check_data(config, data)
    dev = resolve_device(device)
    resolved = screen_config(config, data, device=dev)
    h = config_hash(resolved)
    known = {info.key: info for info in store.index(config_hash=h)} if store is not None else {}
    pool = [Arch.parse(a) for a in archs]
    columns = {n: np.full(len(pool), math.nan) for n in wanted}
    keys: list[str] = []
    per_cell: list[float] = []
    cached = 0
    start = time.perf_counter()
    for i, arch in enumerate(pool):
        key = make_key(arch.canonical(), config.dataset, resolved, seed)
        keys.append(key)
        info = known.get(key)
        have: dict[str, float] = dict(info.scores) if info is not None else {}
        missing = [n for n in wanted if n not in have]
        if missing:
            t0 = time.perf_counter()
            model = _build(arch, config, seed, dev)
            have.update(_baselines(model, data, missing, seed, dev))
            cost = time.perf_counter() - t0
            per_cell.append(cost)
            if info is not None:
                cost += float(info.summary.get("cost_s", 0.0))
            if store is not None:
                store.put(score_only_entry(arch, resolved, seed, have, cost))
        else:
            cached += 1
        for n in wanted:
            columns[n][i] = float(have[n])
        if progress is not None:
            progress(i + 1, len(pool))
        if (i + 1) % 500 == 0:
            logger.info("screened %d/%d cells (%d from the cache)", i + 1, len(pool), cached)
    seconds = time.perf_counter() - start
    logger.info(
        "screen: %d cells, %d from the cache, %.1f s (%.3f s per scored cell)",
        len(pool),
        cached,
        seconds,
        float(np.median(per_cell)) if per_cell else 0.0,
    )
    return ScreenResult(
        archs=[str(a) for a in pool],
        keys=keys,
        scores=columns,
        cached=cached,
        seconds=seconds,
        config_hash=h,
        per_cell_s=per_cell,
    )
