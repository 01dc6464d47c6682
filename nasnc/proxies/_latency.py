"""Measured forward latency of a network at initialisation (a cost, and a free score).

:func:`latency` times the forward pass of the candidate network on the batch
it is given, on the device that batch and the network live on, and returns the
**median over repeats in milliseconds per batch**. In a screen
(:func:`nasnc.pipeline.screen_archs`) and in
:func:`nasnc.pipeline.evaluate_arch` the batch is the first 64 training images
at the proxy resolution, on the proxy network (its ``channels`` and
``cells_per_stage``), so the number is *the proxy network's* latency for 64
images, not that of the full-size NAS-Bench-201 network.

Protocol (constants of this module, keyword arguments of :func:`latency`):

* a deep copy of the model in evaluation mode (BatchNorm on its running
  statistics, dropout off), without the caller's hooks, under
  ``torch.inference_mode``; in the model's own dtype (no autocast, although
  CUDA training uses mixed precision);
* :data:`LATENCY_WARMUP` untimed forward passes (allocator, cuDNN algorithm
  choice, caches), then :data:`LATENCY_REPEATS` timed ones with
  ``time.perf_counter``; on CUDA (and MPS) the device is synchronised before
  the clock starts and before it stops, so each time covers the kernels, not
  only their launch;
* the median of the timed passes, in milliseconds.

Sign. Like ``params`` and ``flops``, the value is the raw size of the cost,
so as a *proxy* it reads "higher = better" (on NAS-Bench-201 larger, slower
cells tend to be more accurate; ``nasnc compare`` reports the measured sign),
and as an *objective* of a multi-objective study it is a cost and is
minimised (``nasnc_search._config.COST_OBJECTIVES``). To penalise slow cells in
a rank aggregate give it a negative weight (``pick.weights: {aggregate: 1,
latency: -0.5}``), which ranks the fastest cell first on it
(:func:`~nasnc.proxies.rank_aggregate`).

Machine dependence. Latency is a property of the machine, not of the cell:
the CPU or GPU model, the torch thread count (``threads`` of a study), other
load on the machine and the torch version all change it, and repeated
measurements of one cell differ by a few per cent (it is the one entry of
:data:`~nasnc.proxies.PROXIES` that ``seed`` does not fix). Compare latencies
only within one run on one machine. Cache entries record the config they were
computed under, which includes the device *type* (``device_type``: ``cpu``,
``cuda``, ``mps``), so CPU and GPU latencies never share a cache key; they do
not record the model of the CPU or GPU nor the thread count, so a cache carried
to another machine of the same type reuses the first machine's latencies: use
a separate ``cache`` per machine when latency matters.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from nasnc._errors import ConfigError
from nasnc.proxies._zero_cost import _private_copy

__all__ = ["LATENCY_REPEATS", "LATENCY_WARMUP", "latency"]

#: Untimed forward passes before the timed ones.
LATENCY_WARMUP = 2
#: Timed forward passes; the median is reported.
LATENCY_REPEATS = 5


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def latency(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    warmup: int = LATENCY_WARMUP,
    repeats: int = LATENCY_REPEATS,
) -> float:
    """Median forward latency of ``model`` on the batch ``images``, in ms per batch.

    Parameters
    ----------
    model : torch.nn.Module
        The network; never modified (a copy in evaluation mode is timed).
    images : torch.Tensor
        The batch; its size is the batch the latency is *per* (64 in a
        screen). It must already be on the model's device, as
        :func:`~nasnc.proxies.compute_proxies` arranges.
    labels : torch.Tensor
        Unused; the signature matches :data:`~nasnc.proxies.PROXIES`.
    warmup : int, default :data:`LATENCY_WARMUP`
        Untimed passes first (>= 0).
    repeats : int, default :data:`LATENCY_REPEATS`
        Timed passes (>= 1); the median is returned.

    Returns
    -------
    float
        Milliseconds per forward pass of the whole batch, on the device of
        ``images``. Higher = better as a proxy (like ``params``), minimised
        as a cost; machine-dependent (see the module docstring).

    Raises
    ------
    ConfigError
        When ``warmup`` or ``repeats`` is out of range.

    Examples
    --------
    >>> import torch
    >>> from nasnc.models import build_network
    >>> net = build_network("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|",
    ...                     channels=4, cells_per_stage=1)
    >>> x = torch.randn(8, 3, 16, 16)
    >>> latency(net, x, torch.zeros(8, dtype=torch.long)) > 0
    True
    """
    del labels
    for name, value, low in (("warmup", warmup, 0), ("repeats", repeats, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, but got {name}={value!r}.")
    work = _private_copy(model).eval()  # without the caller's hooks
    sync = _synchronizer(images.device)
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            work(images)
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            work(images)
            sync()
            times.append((time.perf_counter() - start) * 1e3)
    return float(statistics.median(times))
