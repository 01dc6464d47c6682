"""The capacitance probe (NCP): a small MLP between pooled features and the logits."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from nasnc._errors import ConfigError

__all__ = ["CapacitanceProbe", "dense_chain"]


class CapacitanceProbe(nn.Module):
    """Dense chain ``in_features -> hidden... -> num_classes`` with ReLU between layers.

    It replaces the network's plain classifier; βeff is measured on its
    weights (probe layers + the final classifier layer). The probe is
    initialised from its own generator seeded with ``seed``, independent of
    whatever the backbone consumed from the global RNG, so every architecture
    starts from the same probe for a given seed.

    Parameters
    ----------
    in_features : int
        Width of the pooled features.
    num_classes : int
        Number of logits.
    hidden : sequence of int, default (256, 128)
        Hidden widths; an empty sequence leaves a single linear classifier
        (βeff then needs at least two layers and will refuse it).
    seed : int, default 0
        Seed of the probe's private initialisation generator.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int] = (256, 128),
        *,
        seed: int = 0,
    ) -> None:
        super().__init__()
        widths = [int(in_features), *(int(h) for h in hidden), int(num_classes)]
        bad = [w for w in widths if w < 1]
        if bad:
            raise ConfigError(f"probe widths must be positive, but got widths={widths}.")
        self.widths: tuple[int, ...] = tuple(widths)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.reset_parameters(seed)

    @property
    def linears(self) -> list[nn.Linear]:
        """The dense layers, input side first (the last one is the classifier)."""
        return [m for m in self.layers if isinstance(m, nn.Linear)]

    def reset_parameters(self, seed: int) -> None:
        """Re-initialise like ``nn.Linear`` (Kaiming-uniform) from a private generator."""
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        with torch.no_grad():
            for layer in self.linears:
                bound = 1.0 / float(layer.in_features) ** 0.5
                w = torch.empty(layer.weight.shape).uniform_(-bound, bound, generator=gen)
                b = torch.empty(layer.bias.shape).uniform_(-bound, bound, generator=gen)
                layer.weight.copy_(w)
                layer.bias.copy_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.linears):
            x = layer(x)
            if i < last:
                x = torch.relu(x)
        return x


def dense_chain(model: nn.Module) -> list[torch.Tensor]:
    """The weight matrices (``[out, in]``) of the model's dense chain after pooling.

    For a model holding a :class:`CapacitanceProbe` these are the probe's
    layers including its final classifier; the tensors are the parameters
    themselves (views, never copies), so reading them costs nothing.
    """
    if isinstance(model, CapacitanceProbe):
        probe: CapacitanceProbe | None = model
    else:
        probe = next((m for m in model.modules() if isinstance(m, CapacitanceProbe)), None)
    if probe is None:
        raise ConfigError(
            f"{type(model).__name__} holds no CapacitanceProbe; build it with "
            "build_network(..., probe=(256, 128)) to measure beta_eff"
        )
    return [layer.weight for layer in probe.linears]
