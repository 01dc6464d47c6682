"""The NAS-Bench-201 cell network for any :class:`~nasnc.space.Arch`."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import torch
from torch import nn

from nasnc._config import check_int
from nasnc.capacitance._probe import CapacitanceProbe
from nasnc.models._ops import ResidualReduction, make_op
from nasnc.space import Arch

__all__ = ["Cell", "Network", "arch_params", "build_network", "count_macs", "count_params"]


class Cell(nn.Module):
    """One cell: node ``j`` sums its incoming edges ``op(node_i)``, ``i < j``.

    ``none`` edges are skipped in ``forward`` (they add zeros); a node whose
    every input is ``none`` is zero. Edges are built and summed in
    :meth:`Arch.graph_edges` order, so two cells that build the same network
    (nodes 1 and 2 swapped) draw the same seeded weights and compute the same
    values.
    """

    def __init__(self, arch: Arch, channels: int) -> None:
        super().__init__()
        self.arch = arch
        order = arch.graph_edges()
        self.edges = nn.ModuleDict(
            {f"{t}<-{s}": make_op(arch.op(t, s), channels, channels, 1) for t, s in order}
        )
        self._live = [(t, s) for t, s in order if arch.op(t, s) != "none"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for target, source in self._live:
            inp = nodes[source]
            if inp is None:
                continue
            out = self.edges[f"{target}<-{source}"](inp)
            prev = nodes[target]
            nodes[target] = out if prev is None else prev + out
        result = nodes[3]
        return torch.zeros_like(x) if result is None else result


class Network(nn.Module):
    """Stem, three stages of cells with residual reductions, BN-ReLU, pool, head.

    ``features(x)`` returns the pooled features (input of the head, where the
    capacitance probe sits); ``forward(x)`` returns logits.
    """

    def __init__(
        self,
        arch: Arch,
        *,
        channels: int,
        cells_per_stage: int,
        num_classes: int,
        probe: Sequence[int] | None,
        probe_seed: int,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        blocks: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                blocks.append(ResidualReduction(c, 2 * c))
                c *= 2
            blocks.extend(Cell(arch, c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*blocks)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = c
        self.classifier: nn.Module
        if probe is None:
            self.classifier = nn.Linear(c, num_classes)
        else:
            self.classifier = CapacitanceProbe(c, num_classes, hidden=probe, seed=probe_seed)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cells(self.stem(x))
        return torch.flatten(self.pool(self.lastact(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_network(
    arch: Arch | str,
    *,
    channels: int = 16,
    cells_per_stage: int = 5,
    num_classes: int = 10,
    probe: Sequence[int] | None = None,
    probe_seed: int = 0,
) -> Network:
    """Build the benchmark's network for ``arch``.

    Parameters
    ----------
    arch : Arch or str
        The cell (a benchmark string is parsed).
    channels : int, default 16
        Channels of the first stage (doubled at each reduction).
    cells_per_stage : int, default 5
        Cells per stage (the benchmark uses 5).
    num_classes : int, default 10
        Logits (10 for CIFAR-10, 100 for CIFAR-100, 120 for ImageNet16-120).
    probe : sequence of int or None
        Hidden widths of a :class:`~nasnc.capacitance.CapacitanceProbe` that
        replaces the linear classifier; ``None`` keeps the benchmark's head.
    probe_seed : int, default 0
        Seed of the probe's own initialisation generator.

    The backbone is initialised from the global torch RNG (seed it, or build
    under ``torch.random.fork_rng``); the probe never depends on it.
    """
    arch = Arch.parse(arch)
    _check_sizes(channels=channels, cells_per_stage=cells_per_stage, num_classes=num_classes)
    return Network(
        arch,
        channels=int(channels),
        cells_per_stage=int(cells_per_stage),
        num_classes=int(num_classes),
        probe=None if probe is None else tuple(probe),
        probe_seed=probe_seed,
    )


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters, as the benchmark counts them (BN affine included)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, resolution: int = 32) -> int:
    """Multiply-accumulates of one forward pass on a ``3 x resolution x resolution`` image.

    Counts convolutions and linear layers (the benchmark's FLOP convention
    counts the same layers); ``none`` edges cost nothing.
    """
    total = 0

    def conv_hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Conv2d)
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        total += int(out.numel()) * k

    def linear_hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Linear)
        total += int(out.numel()) * mod.in_features

    handles = []
    try:
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                handles.append(m.register_forward_hook(conv_hook))
            elif isinstance(m, nn.Linear):
                handles.append(m.register_forward_hook(linear_hook))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                dev = next(model.parameters()).device
                model(torch.zeros(1, 3, resolution, resolution, device=dev))
        finally:
            model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return total


@cache
def _op_params(op: str, channels: int) -> int:
    with torch.device("meta"):  # shapes only: a wide op allocates nothing
        return count_params(make_op(op, channels, channels, 1))


@cache
def _fixed_params(channels: int, cells_per_stage: int, num_classes: int) -> int:
    """Parameters outside the cells: stem, reductions, last BN, linear head."""
    total = 3 * channels * 9 + 2 * channels  # stem conv + BN
    c = channels
    for _ in range(2):
        with torch.device("meta"):
            total += count_params(ResidualReduction(c, 2 * c))
        c *= 2
    return total + 2 * c + c * num_classes + num_classes


def _check_sizes(**sizes: object) -> None:
    """Each size a positive integer (4.5 channels was built as 4, 0 cells counted)."""
    for name, value in sizes.items():
        check_int(name, value, low=1)


def arch_params(
    arch: Arch | str, *, channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10
) -> int:
    """Parameter count of ``build_network(arch, ...)`` without building it (linear head).

    Exact: the network's count is the fixed part plus, per stage, the sum of
    the cell's edge operations; used for the parameter-count baseline and the
    parity check against the benchmark over all 15,625 cells.
    """
    arch = Arch.parse(arch)
    _check_sizes(channels=channels, cells_per_stage=cells_per_stage, num_classes=num_classes)
    total = _fixed_params(channels, cells_per_stage, num_classes)
    for stage in range(3):
        c = channels * 2**stage
        total += cells_per_stage * sum(_op_params(op, c) for op in arch.ops)
    return total
