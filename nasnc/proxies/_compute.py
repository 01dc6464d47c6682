"""The table of baseline proxies and the one call that computes several of them."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from types import MappingProxyType
from typing import Protocol

import numpy as np
import torch
from torch import nn

from nasnc._config import SEED_BOUND, check_int
from nasnc._errors import ConfigError
from nasnc.proxies._aggregate import AGGREGATES
from nasnc.proxies._latency import latency
from nasnc.proxies._zero_cost import (
    BETA_EFF_GRAD,
    _gradient_scores,
    beta_eff_grad,
    fisher,
    flops,
    grad_norm,
    grasp,
    jacob_cov,
    meco,
    naswot,
    params,
    snip,
    synflow,
    zico,
)

__all__ = ["PROXIES", "ProxyFn", "compute_proxies", "tse"]

logger = logging.getLogger(__name__)


class ProxyFn(Protocol):
    """A proxy: ``fn(model, images, labels) -> float`` (higher = better; may be nan)."""

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float: ...


#: Every baseline proxy by name, in the order results are reported. Read-only.
PROXIES: Mapping[str, ProxyFn] = MappingProxyType(
    {
        "params": params,
        "flops": flops,
        "synflow": synflow,
        "snip": snip,
        "grad_norm": grad_norm,
        "jacob_cov": jacob_cov,
        "naswot": naswot,
        "fisher": fisher,
        "grasp": grasp,
        "zico": zico,
        "meco": meco,
        BETA_EFF_GRAD: beta_eff_grad,
        "latency": latency,
    }
)

# Proxies sharing one forward/backward pass of the loss inside compute_proxies.
_GRADIENT_GROUP = ("snip", "grad_norm", "fisher")


def _resolve_names(names: str | Iterable[str]) -> list[str]:
    if isinstance(names, str):
        requested = list(PROXIES) if names == "all" else [names]
    else:
        requested = list(names)
    if not requested:
        raise ConfigError(f"names must name at least one proxy, but got {names=}.")
    out: list[str] = []
    for name in requested:
        if isinstance(name, str) and name in AGGREGATES:
            raise ConfigError(
                f"{name!r} is a rank aggregate over a pool of cells "
                f"({', '.join(AGGREGATES[name])}); compute those and use rank_aggregate, "
                f"but got {names=}."
            )
        if not isinstance(name, str) or name not in PROXIES:
            raise ConfigError(
                f"unknown proxy {name!r}; known: {', '.join(PROXIES)} (or 'all'), but got {names=}."
            )
        if name not in out:
            out.append(name)
    return out


def _check_batch(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, but got {type(model).__name__}.")
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        kind = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise ConfigError(
            "images must be a floating-point tensor, normalised as the model sees them, "
            f"but got {kind}."
        )
    if images.dim() < 2 or images.shape[0] < 2:
        raise ConfigError(
            f"images must be a batch of at least 2 samples, but got shape={tuple(images.shape)}."
        )
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point():
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ConfigError(f"labels must be a 1-D integer tensor, but got {got}.")
    if labels.shape[0] != images.shape[0]:
        raise ConfigError(
            f"images and labels must hold the same number of samples, but got "
            f"{images.shape[0]} images and {labels.shape[0]} labels."
        )
    param = next(iter(model.parameters()), None)
    if param is not None:
        images = images.to(param.device)
        labels = labels.to(param.device)
    return images.detach(), labels.detach().long()


def compute_proxies(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    names: str | Sequence[str] = "all",
    seed: int = 0,
    timings: MutableMapping[str, float] | None = None,
) -> dict[str, float]:
    """Compute baseline proxies of ``model`` on one batch.

    Parameters
    ----------
    model : torch.nn.Module
        The network, at initialisation for the zero-cost proxies. It is never
        modified: every proxy works on a private copy without the caller's
        hooks (``flops`` shares the caller's parameters and buffers when every
        module is a torch.nn or nasnc class, since its one eval-mode no-grad
        pass writes none).
    images : torch.Tensor
        One batch ``[N, C, H, W]`` (``N >= 2``; ``zico`` needs ``N >= 4``),
        floating point, normalised as the model expects; moved to the model's
        device.
    labels : torch.Tensor
        ``[N]`` integer class labels.
    names : "all", a proxy name, or a sequence of names, default "all"
        Which entries of :data:`PROXIES` to compute.
    seed : int, default 0
        Seeds the torch RNG (inside ``torch.random.fork_rng``, so the caller's
        RNG state is untouched) before each proxy, for models with stochastic
        layers; the same seed gives the same scores.
    timings : mutable mapping, optional
        Filled with the seconds each proxy took (proxies sharing one
        gradient pass, ``snip``/``grad_norm``/``fisher``, split its time).

    Returns
    -------
    dict of str to float
        Name -> score in the requested order. Higher = better for every
        proxy; a non-finite score is ``nan`` (and logged as a warning).

    Examples
    --------
    >>> import torch
    >>> from nasnc.models import build_network
    >>> net = build_network("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|",
    ...                     channels=4, cells_per_stage=1)
    >>> x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    >>> sorted(compute_proxies(net, x, y, names=["params", "snip"]))
    ['params', 'snip']
    """
    wanted = _resolve_names(names)
    images, labels = _check_batch(model, images, labels)
    seed = check_int("seed", seed, high=SEED_BOUND)
    if "flops" in wanted and images.dim() == 4 and images.shape[-1] != images.shape[-2]:
        raise ConfigError(  # counted at W x W: a 8x16 batch gave the FLOPs of 16x16
            f"flops needs square images (H == W), but got shape={tuple(images.shape)}."
        )
    devices = [images.device] if images.device.type == "cuda" else []
    results: dict[str, float] = {}
    grouped = [n for n in wanted if n in _GRADIENT_GROUP]
    for name in wanted:
        if name in results:
            continue
        start = time.perf_counter()
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            if name in _GRADIENT_GROUP:
                results.update(_gradient_scores(model, images, labels, grouped))
                share = grouped
            else:
                results[name] = float(PROXIES[name](model, images, labels))
                share = [name]
        if timings is not None:
            elapsed = time.perf_counter() - start
            for member in share:
                timings[member] = elapsed / len(share)
    return {name: results[name] for name in wanted}


def tse(train_losses: Iterable[float] | np.ndarray) -> float:
    """Training speed estimate (Ru et al. 2021): minus the sum of training losses.

    Pass the training losses of the proxy run (per epoch or per report point;
    sum the same kind for every architecture). The sum is negated so that
    **higher = better** (a network whose loss falls faster scores higher),
    like every other proxy. Any non-finite loss (a diverged run) gives
    ``nan`` with a logged warning.

    Raises
    ------
    ConfigError
        When ``train_losses`` is empty or not one-dimensional.
    """
    if isinstance(train_losses, (Mapping, str, bytes)) or not isinstance(
        train_losses, (Iterable, np.ndarray)
    ):  # a dict summed its keys; a number failed as "not iterable"
        raise ConfigError(
            "train_losses must be a non-empty 1-D sequence of losses, "
            f"but got {type(train_losses).__name__}."
        )
    losses = np.asarray(
        list(train_losses) if not isinstance(train_losses, np.ndarray) else train_losses,
        dtype=np.float64,
    )
    if losses.ndim != 1 or losses.size == 0:
        raise ConfigError(
            f"train_losses must be a non-empty 1-D sequence, but got shape={losses.shape}."
        )
    if not np.all(np.isfinite(losses)):
        logger.warning(
            "tse: %d non-finite training loss(es); reported as nan",
            int(np.sum(~np.isfinite(losses))),
        )
        return math.nan
    return -float(losses.sum())
