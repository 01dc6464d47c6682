"""The probe's βeff of its own weight change ``W - W0``, read at report points.

On two disjoint 150-cell samples (docs/capacitance-study.md, "The probe's own
weight change") the scale-free chain βeff of the probe's ``W - W0`` after one
proxy epoch ranked the cells better than the 8-epoch objective; this observer
records it in every run's trajectory so that it can be tested as a score
without training again. It is recorded, not (yet) an objective.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
from torch import nn

from nasnc._errors import ConfigError
from nasnc.capacitance._betaeff import (
    _check_interaction,
    beta_eff_variants,
    probe_weight_change_name,
)
from nasnc.capacitance._probe import dense_chain

__all__ = ["PROBE_WEIGHT_CHANGE_VARIANTS", "ProbeWeightChangeObserver"]

logger = logging.getLogger(__name__)

#: Variants :class:`ProbeWeightChangeObserver` records by default: the two
#: scale-free readings that passed the study's rule on samples B and E.
PROBE_WEIGHT_CHANGE_VARIANTS: tuple[tuple[str, bool], ...] = (("chain", True), ("product", True))


class ProbeWeightChangeObserver:
    """βeff of the probe's weight change ``W - W0`` at every report point.

    A ``nasnc.train`` observer (structurally, like
    :class:`~nasnc.capacitance.CapacitanceObserver`). At the start of training
    it keeps detached clones ``W0`` of the probe's dense chain
    (:func:`~nasnc.capacitance.dense_chain`, the classifier included) on their
    device; at each report point it returns the probe's βeff of
    ``[W - W0 for each layer]`` under the keys
    :func:`~nasnc.capacitance.probe_weight_change_name` (default
    ``beta_eff_probe_dw_chain_sf`` and ``beta_eff_probe_dw_product_sf``).
    Nothing runs at optimiser steps. The values are NaN, never an error, for
    a model without a probe.

    Parameters
    ----------
    variants : sequence of (str, bool), default :data:`PROBE_WEIGHT_CHANGE_VARIANTS`
        ``(interaction, normalize)`` pairs.
    dtype : torch.dtype, optional
        Accumulation dtype; default float64 (float32 on MPS).
    """

    def __init__(
        self,
        variants: Sequence[tuple[str, bool]] = PROBE_WEIGHT_CHANGE_VARIANTS,
        *,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.variants = tuple((_check_interaction(i), bool(n)) for i, n in variants)
        if not self.variants:
            raise ConfigError(f"variants must name at least one variant, but got {variants=}.")
        self.dtype = dtype
        self.keys: tuple[str, ...] = tuple(probe_weight_change_name(*v) for v in self.variants)
        self._weights: list[torch.Tensor] = []
        self._w0: list[torch.Tensor] = []

    def __repr__(self) -> str:
        return f"ProbeWeightChangeObserver(keys={self.keys})"

    def on_train_start(self, model: nn.Module, total_steps: int) -> None:
        """Keep ``W0`` of the probe's layers; a model without a probe leaves NaN values."""
        try:
            self._weights = dense_chain(model)
        except ConfigError as exc:
            logger.warning("probe weight-change βeff disabled: %s", exc)
            self._weights, self._w0 = [], []
            return
        self._w0 = [w.detach().clone() for w in self._weights]

    def on_step(self, step: int, model: nn.Module) -> None:
        """Nothing: the weight change is read at report points only."""

    def on_report(self, step: int) -> dict[str, float]:
        """The probe's βeff of ``W - W0`` for each variant (one host sync); NaN without a probe."""
        if not self._w0:
            return dict.fromkeys(self.keys, math.nan)
        dtype = self.dtype
        if dtype is None:
            dtype = torch.float32 if self._w0[0].device.type == "mps" else torch.float64
        with torch.no_grad():
            delta = [w.detach().to(dtype) - w0.to(dtype) for w, w0 in zip(self._weights, self._w0)]
            values = beta_eff_variants(delta, self.variants, dtype=dtype).tolist()
        return {k: float(v) for k, v in zip(self.keys, values)}

    def on_train_end(self) -> None:
        """Release ``W0`` and the weight references."""
        self._weights, self._w0 = [], []
