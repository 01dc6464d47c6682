"""``CapacitanceObserver``: the streaming channel from training to βeff.

Every ``every_n_steps`` optimiser steps the observer reads the probe's weight
matrices (:func:`~nasnc.capacitance.dense_chain`: the parameters themselves,
no copy), computes βeff in closed form on their device
(:func:`~nasnc.capacitance.beta_eff_variants`, all four variants from one
pass when ``variants=True``) and writes the values into a preallocated
on-device buffer. Nothing is copied to the host at a step: the host sees the
values only at report points (:meth:`CapacitanceObserver.on_report`, the
latest row) and on demand (:meth:`CapacitanceObserver.trajectory`, every row).

It satisfies the ``nasnc.train.Observer`` protocol structurally
(``on_train_start``, ``on_step``, ``on_report``, ``on_train_end``) without
importing :mod:`nasnc.train`, and it can drive itself in a hand-written loop
through an optimiser step hook::

    observer = CapacitanceObserver(every_n_steps=10)
    with observer.attach(model, optimizer):
        for x, y in batches:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()          # the hook observes every 10th step
    traj = observer.trajectory()      # {"step", "beta_eff", "beta_eff_chain", ...}

The hook is removed when the ``with`` block exits, also on an exception.

Trajectory keys: ``beta_eff`` (the configured variant) and, with
``variants=True``, ``beta_eff_chain``, ``beta_eff_product``,
``beta_eff_chain_sf`` and ``beta_eff_product_sf`` (``_sf``: scale-free, each
layer's ``|W|`` divided by its mean).
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import nn

from nasnc._errors import ConfigError
from nasnc.capacitance._betaeff import VARIANTS, _check_interaction, beta_eff_variants, variant_name
from nasnc.capacitance._probe import CapacitanceProbe, dense_chain

__all__ = ["CapacitanceObserver"]

logger = logging.getLogger(__name__)

_MIN_CAPACITY = 64


class CapacitanceObserver:
    """Stream βeff of a model's capacitance probe during training.

    Parameters
    ----------
    every_n_steps : int, default 1
        Observe at optimiser steps that are multiples of this (steps count from 1).
    interaction : {"chain", "product"}, default "chain"
        The variant reported as ``beta_eff``.
    normalize : bool, default False
        Report the scale-free variant as ``beta_eff``.
    variants : bool, default True
        Also record all four variants under their own keys (one pass over
        the weights computes them all).
    dtype : torch.dtype, optional
        Accumulation dtype; default float64 (float32 on MPS, which lacks float64).

    Attributes
    ----------
    keys : tuple of str
        The value keys of :meth:`on_report` and :meth:`trajectory` (without ``"step"``).
    n_observed : int
        Rows recorded since the last start.

    Examples
    --------
    >>> import torch
    >>> from nasnc.capacitance import CapacitanceObserver, CapacitanceProbe
    >>> model = CapacitanceProbe(8, 3, hidden=(16,))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> with CapacitanceObserver(every_n_steps=2).attach(model, opt) as obs:
    ...     for _ in range(5):
    ...         opt.zero_grad()
    ...         model(torch.randn(4, 8)).square().mean().backward()
    ...         opt.step()
    >>> obs.trajectory()["step"].tolist()
    [2, 4]
    """

    def __init__(
        self,
        *,
        every_n_steps: int = 1,
        interaction: str = "chain",
        normalize: bool = False,
        variants: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        try:
            if isinstance(every_n_steps, bool):
                raise TypeError
            every_n_steps = operator.index(every_n_steps)  # int, numpy integer
        except TypeError:
            raise ConfigError(
                f"every_n_steps must be a positive int, but got {every_n_steps=}."
            ) from None
        if every_n_steps < 1:
            raise ConfigError(f"every_n_steps must be positive, but got {every_n_steps=}.")
        _check_interaction(interaction)
        if dtype is not None and not dtype.is_floating_point:
            raise ConfigError(f"dtype must be a floating point dtype, but got {dtype=}.")
        self.every_n_steps = every_n_steps
        self.interaction = interaction
        self.normalize = bool(normalize)
        self.variants = bool(variants)
        self.dtype = dtype
        configured = (interaction, self.normalize)
        self._variants: tuple[tuple[str, bool], ...] = VARIANTS if self.variants else (configured,)
        self._main = self._variants.index(configured)
        self.keys: tuple[str, ...] = ("beta_eff",) + (
            tuple(variant_name(*v) for v in self._variants) if self.variants else ()
        )
        self._buffer: torch.Tensor | None = None
        self._steps: list[int] = []
        self._capacity_hint = _MIN_CAPACITY
        self._model: nn.Module | None = None
        self._probe: CapacitanceProbe | None = None
        self._handle: Any = None
        self._hook_step = 0

    def __repr__(self) -> str:
        return (
            f"CapacitanceObserver(every_n_steps={self.every_n_steps}, "
            f"interaction={self.interaction!r}, normalize={self.normalize}, "
            f"variants={self.variants}, n_observed={self.n_observed})"
        )

    # ------------------------------------------------------------------ state
    @property
    def n_observed(self) -> int:
        return len(self._steps)

    def reset(self) -> None:
        """Forget every recorded row (the hook, if any, stays)."""
        self._buffer = None
        self._steps = []

    def _weights(self, model: nn.Module) -> list[torch.Tensor]:
        if model is not self._model or self._probe is None:
            dense_chain(model)  # raises a clear error when the model has no probe
            self._model = model
            self._probe = (
                model
                if isinstance(model, CapacitanceProbe)
                else next(m for m in model.modules() if isinstance(m, CapacitanceProbe))
            )
        return [layer.weight for layer in self._probe.linears]

    def _compute_dtype(self, device: torch.device) -> torch.dtype:
        if self.dtype is not None:
            return self.dtype
        return torch.float32 if device.type == "mps" else torch.float64

    def _append(self, step: int, values: torch.Tensor) -> None:
        n = len(self._steps)
        buf = self._buffer
        if buf is None or buf.device != values.device or buf.dtype != values.dtype:
            cap = max(self._capacity_hint, 2 * n, _MIN_CAPACITY)
            new = values.new_empty((cap, values.numel()))
            if buf is not None and n:
                new[:n].copy_(buf[:n])
            buf = self._buffer = new
        elif n >= buf.shape[0]:
            new = buf.new_empty((2 * buf.shape[0], buf.shape[1]))
            new[:n].copy_(buf[:n])
            buf = self._buffer = new
        buf[n].copy_(values)
        self._steps.append(int(step))

    # --------------------------------------------------- the Observer protocol
    def on_train_start(self, model: nn.Module, total_steps: int) -> None:
        """Reset the buffer and size it for ``total_steps`` (0 or less: grow as needed)."""
        self.reset()
        self._weights(model)
        expected = int(total_steps) // self.every_n_steps + 1 if total_steps > 0 else 0
        self._capacity_hint = max(_MIN_CAPACITY, expected)

    def on_step(self, step: int, model: nn.Module) -> None:
        """Record βeff at every ``every_n_steps``-th step; no host synchronisation."""
        if step % self.every_n_steps:
            return
        weights = self._weights(model)
        with torch.no_grad():
            values = beta_eff_variants(
                weights, self._variants, dtype=self._compute_dtype(weights[0].device)
            )
        self._append(step, values)

    def on_report(self, step: int) -> Mapping[str, float]:
        """The latest recorded values by key (NaN before the first observation); syncs once."""
        if not self._steps or self._buffer is None:
            return dict.fromkeys(self.keys, math.nan)
        row = self._buffer[len(self._steps) - 1].tolist()
        return self._row_to_mapping(row)

    def on_train_end(self) -> None:
        """Keep the recorded rows for :meth:`trajectory`."""
        logger.debug("observed beta_eff at %d steps", len(self._steps))

    def _row_to_mapping(self, row: list[float]) -> dict[str, float]:
        out = {"beta_eff": float(row[self._main])}
        if self.variants:
            out.update({variant_name(*v): float(x) for v, x in zip(self._variants, row)})
        return out

    def trajectory(self) -> dict[str, np.ndarray]:
        """Host copy of every recorded row: ``"step"`` (int64) plus one float64 column per key."""
        n = len(self._steps)
        out: dict[str, np.ndarray] = {"step": np.asarray(self._steps, dtype=np.int64)}
        if n == 0 or self._buffer is None:
            out.update({k: np.empty(0, dtype=np.float64) for k in self.keys})
            return out
        values = self._buffer[:n].detach().to("cpu", torch.float64).numpy()
        out["beta_eff"] = values[:, self._main].copy()
        if self.variants:
            for col, v in enumerate(self._variants):
                out[variant_name(*v)] = values[:, col].copy()
        return out

    # ------------------------------------------------- use in a user's own loop
    def attach(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, *, total_steps: int = 0
    ) -> CapacitanceObserver:
        """Observe ``model`` after every ``optimizer.step()`` until :meth:`detach`.

        Registers a step post-hook on ``optimizer`` (steps are counted from 1
        by the hook) and resets the buffer. Use as ``with obs.attach(model,
        opt): ...`` so that the hook is removed however the block ends.

        Raises
        ------
        RuntimeError
            When the observer is already attached.
        ValueError
            When ``model`` holds no :class:`CapacitanceProbe`.
        """
        if self._handle is not None:
            raise RuntimeError("this CapacitanceObserver is already attached; detach() it first")
        self.on_train_start(model, total_steps)
        self._hook_step = 0

        def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self._hook_step += 1
            self.on_step(self._hook_step, model)

        self._handle = optimizer.register_step_post_hook(hook)
        return self

    def detach(self) -> None:
        """Remove the optimizer hook installed by :meth:`attach` (no-op if none)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.remove()
            finally:
                self.on_train_end()

    @property
    def attached(self) -> bool:
        """Whether an optimizer hook is installed."""
        return self._handle is not None

    def __enter__(self) -> CapacitanceObserver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()
