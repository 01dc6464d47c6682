"""Weight snapshots at report points, and βeff recomputed from them.

:class:`SnapshotObserver` copies the weights of the probe's dense layers
(``kind="probe"``) or of every conv/linear layer (``kind="network"``) to the
host as float16 at the start of training (step 0, ``W0``) and at every
report point: a host copy where the loop syncs anyway, nothing at optimiser
steps. :func:`snapshot_beta_eff` recomputes a βeff variant at every snapshot
from such arrays, so a new variant can be read off stored runs
(``nasnc.pipeline.beta_eff_from_snapshots`` does it for a cached entry).

Variant names: the probe's ``beta_eff_<chain|product>[_sf]``
(:func:`~nasnc.capacitance.variant_name`), the whole network's coupling graph
``beta_eff_net_<chain|product>[_sf]`` (:func:`network_name`) and of its weight
change ``W - W0`` ``beta_eff_dw_<chain|product>[_sf]``
(:func:`~nasnc.capacitance.weight_change_name`), and the probe's own weight
change ``beta_eff_probe_dw_<chain|product>[_sf]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from nasnc._errors import ConfigError
from nasnc.capacitance._betaeff import (
    VARIANTS,
    beta_eff_variants,
    probe_weight_change_name,
    variant_name,
)
from nasnc.capacitance._network import CouplingGraph, network_beta_eff
from nasnc.capacitance._probe import CapacitanceProbe

__all__ = [
    "SNAPSHOT_VARIANTS",
    "SnapshotObserver",
    "network_name",
    "parse_variant",
    "snapshot_beta_eff",
]

_KINDS = ("probe", "network")
_LAYERS = (nn.Conv2d, nn.Linear)


def network_name(interaction: str, normalize: bool) -> str:
    """Name of a whole-network βeff variant: ``beta_eff_net_<interaction>`` (+ ``_sf``)."""
    return variant_name(interaction, normalize).replace("beta_eff_", "beta_eff_net_", 1)


#: Every variant name :func:`snapshot_beta_eff` knows, with its scope
#: (``"probe"``, ``"network"``, ``"dw"`` or ``"probe_dw"``), interaction and normalisation.
SNAPSHOT_VARIANTS: dict[str, tuple[str, str, bool]] = {
    **{variant_name(i, n): ("probe", i, n) for i, n in VARIANTS},
    **{network_name(i, n): ("network", i, n) for i, n in VARIANTS},
    **{
        variant_name(i, n).replace("beta_eff_", "beta_eff_dw_", 1): ("dw", i, n)
        for i, n in VARIANTS
    },
    **{probe_weight_change_name(i, n): ("probe_dw", i, n) for i, n in VARIANTS},
}

#: Scopes read from the probe's layers alone (any kind of snapshot holds them).
PROBE_SCOPES = ("probe", "probe_dw")


def parse_variant(variant: str) -> tuple[str, str, bool]:
    """``(scope, interaction, normalize)`` of a variant name; ConfigError naming the known ones."""
    if variant not in SNAPSHOT_VARIANTS:
        raise ConfigError(
            f"unknown beta_eff variant {variant!r}; known: {', '.join(SNAPSHOT_VARIANTS)}"
        )
    return SNAPSHOT_VARIANTS[variant]


def _probe_layers(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    probe = next((m for m in model.modules() if isinstance(m, CapacitanceProbe)), None)
    if probe is None:
        raise ConfigError(f"{type(model).__name__} holds no CapacitanceProbe to snapshot")
    names = {id(m): n for n, m in model.named_modules()}
    return [(names[id(layer)], layer.weight) for layer in probe.linears]


def _all_layers(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(n, m.weight) for n, m in model.named_modules() if isinstance(m, _LAYERS)]


class SnapshotObserver:
    """Float16 host copies of weights at the start of training and at every report point.

    A ``nasnc.train`` observer. ``kind="probe"`` keeps the probe's dense
    layers (its chain, classifier included); ``kind="network"`` every conv
    and linear layer of the model (the probe too), in module order.
    :attr:`names`, :attr:`steps` and :meth:`layers` give what was kept.
    """

    def __init__(self, kind: str) -> None:
        if kind not in _KINDS:
            raise ConfigError(f"snapshot kind must be 'probe' or 'network', but got {kind=}.")
        self.kind = kind
        self.names: tuple[str, ...] = ()
        self.steps: list[int] = []
        self._weights: list[torch.Tensor] = []
        self._copies: list[list[np.ndarray]] = []

    def __repr__(self) -> str:
        return f"SnapshotObserver(kind={self.kind!r}, steps={self.steps})"

    def _take(self, step: int) -> None:
        if self.steps and step <= self.steps[-1]:
            return
        with torch.no_grad():
            for copies, w in zip(self._copies, self._weights):
                copies.append(w.detach().to("cpu", torch.float16).numpy())
        self.steps.append(int(step))

    def on_train_start(self, model: nn.Module, total_steps: int) -> None:
        """Choose the layers and keep ``W0`` (step 0)."""
        layers = _probe_layers(model) if self.kind == "probe" else _all_layers(model)
        self.names = tuple(n for n, _ in layers)
        self._weights = [w for _, w in layers]
        self._copies = [[] for _ in layers]
        self.steps = []
        self._take(0)

    def on_step(self, step: int, model: nn.Module) -> None:
        """Nothing: weights are copied at report points only."""

    def on_report(self, step: int) -> dict[str, float]:
        """Copy the weights (float16, host); adds no trajectory column."""
        self._take(step)
        return {}

    def on_train_end(self) -> None:
        """Release the weight references (the copies stay)."""
        self._weights = []

    def layers(self) -> list[np.ndarray]:
        """One float16 array per layer, shape ``(len(steps), *weight_shape)``."""
        return [np.stack(c) if c else np.empty((0,), np.float16) for c in self._copies]


def snapshot_beta_eff(
    layers: Sequence[np.ndarray],
    variant: str,
    *,
    graph: CouplingGraph | None = None,
) -> np.ndarray:
    """A βeff variant at every snapshot, from float16 (or any float) weight arrays.

    Parameters
    ----------
    layers : sequence of array
        One array per layer, shape ``(n_snapshots, *weight_shape)``: the
        probe's chain in order for a probe variant (``probe_dw`` too), or
        the layers of ``graph`` in its order for a ``net``/``dw`` variant
        (snapshot 0 is ``W0`` for ``dw`` and ``probe_dw``).
    variant : str
        A key of :data:`SNAPSHOT_VARIANTS`.
    graph : CouplingGraph, optional
        Needed for ``beta_eff_net_*`` and ``beta_eff_dw_*``.

    Returns
    -------
    ndarray
        float64, one value per snapshot, computed in float64. NaN for a
        ``net``/``dw`` variant of a graph without layers.
    """
    scope, interaction, normalize = parse_variant(variant)
    if not layers:
        raise ConfigError("need at least one layer of snapshots")
    n = int(layers[0].shape[0])
    if any(int(a.shape[0]) != n for a in layers):
        raise ConfigError("every layer must have one array per snapshot")
    if scope not in PROBE_SCOPES and graph is None:
        raise ConfigError(f"variant {variant!r} needs the network's coupling graph")
    tensors = [torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in layers]
    out = np.empty(n)
    for k in range(n):
        weights = [t[k] for t in tensors]
        if scope in ("dw", "probe_dw"):
            weights = [t[k] - t[0] for t in tensors]
        if scope in PROBE_SCOPES:
            value = beta_eff_variants(weights, [(interaction, normalize)], dtype=torch.float64)
        else:
            assert graph is not None
            if len(graph) == 0:
                out[k] = math.nan
                continue
            value = network_beta_eff(
                graph, weights, [(interaction, normalize)], dtype=torch.float64
            )
        out[k] = float(value[0])
    return out
