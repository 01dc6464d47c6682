"""``ProxyConfig``: everything that determines one proxy evaluation's result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nasnc._catalogue import CATALOGUE, PROXY_DATASETS, dataset_info
from nasnc._config import from_mapping, to_mapping
from nasnc._errors import ConfigError
from nasnc.capacitance import variant_name
from nasnc.train import TrainRecipe

__all__ = ["DATASET_CLASSES", "SNAPSHOT_MODES", "ProxyConfig"]

#: Values of ``ProxyConfig.snapshots``: keep no weights, the probe's, or the network's.
SNAPSHOT_MODES: tuple[str, ...] = ("none", "probe", "network")

#: Proxy datasets and their number of classes (from the dataset catalogue).
DATASET_CLASSES: dict[str, int] = {name: info.num_classes for name, info in CATALOGUE.items()}


def _positive(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"{name} must be positive, but got {name}={value!r}")


#: The random crop's padding of every run before ``crop_padding`` existed.
_PADDING_BEFORE = 4


@dataclass(frozen=True)
class ProxyConfig:
    """The proxy budget, network and capacitance settings of one evaluation.

    Every field changes the result, so every field enters the cache key (the
    seed enters separately, and so do the device type and the image counts;
    the data location does not). The defaults are the CPU proxy of
    docs/results.md: 16 px, 8 channels, one cell per stage, the first 10,000
    training images for 8 epochs at lr 0.1, chosen where the project's first
    60-cell study found the proxy accuracy informative (Kendall τ +0.41); on
    later samples it ranked at +0.29 and +0.12, and at +0.25 and +0.23 on
    the capacitance study's samples A and B (docs/capacitance-study.md).

    Augmentation is off by default: at 16 px a random crop with 4 px padding
    shifts the image by up to a quarter of its side, and it costs the 8-epoch
    proxy 7 to 11 points of validation accuracy, i.e. a less informative proxy
    (docs/benchmarks.md, "Data and proxy training"). The GPU configs (native
    resolution, 12 epochs) switch it on.

    Attributes
    ----------
    dataset : str
        A proxy dataset of the catalogue (``cifar10``, ``cifar100``,
        ``ImageNet16-120``) or one of its aliases, stored under its name.
    resolution : int or None
        Input side in pixels after 2×2 average pooling (16), or None for native.
    train_subset : int or None
        Number of training images (None = all that are present).
    subset_mode : {"first", "seeded"}
    valid_size : int
        Validation images for the proxy accuracy.
    valid_from : {"test", "train"}
        Take them from the test batch, or hold them out of the training images.
    channels, cells_per_stage : int
        Width of the first stage and cells per stage of the backbone.
    probe : tuple of int
        Hidden widths of the capacitance probe (βeff is measured on it).
    probe_seed : int
        Seed of the probe's private initialisation (same probe for every arch).
    epochs : float
        Proxy budget in epochs.
    batch_size, lr, momentum, weight_decay, nesterov, augment
        The SGD recipe (cosine decay over the budget).
    crop_padding : int or None
        Zero padding of the random crop when ``augment`` is on; None takes the
        benchmark's own for the dataset (``nasnc._catalogue``), whatever the
        resolution.
    every_n_steps : int
        βeff is read every this many optimiser steps.
    reports_per_epoch : int
        Report points (validation, estimator, pruning) per epoch.
    interaction : {"chain", "product"}
        The βeff variant used for the objective and pruning (all four
        variants are recorded in every trajectory).
    snapshots : {"none", "probe", "network"}
        Keep float16 weight snapshots at every report point (and at step 0,
        the initialisation) in the cache entry: the probe's dense layers, or
        every conv/linear layer of the network. Lets a new βeff variant be
        recomputed from stored runs (``beta_eff_from_snapshots``) without
        training again. Enters the cache key only when not ``"none"``, so
        existing keys are unchanged.
    normalize : bool
        Use the scale-free βeff (each layer's |W| divided by its mean). On by
        default: on 100 cells at this proxy (benchmarks/rank_correlation.py,
        docs/results.md) the scale-free chain variant ranked best of the four, Kendall
        τ +0.41 [+0.30, +0.52] against +0.17 [+0.05, +0.29] for the raw chain
        variant, as in the project's first study (docs/results.md).
    """

    dataset: str = "cifar10"
    resolution: int | None = 16
    train_subset: int | None = 10000
    subset_mode: Literal["first", "seeded"] = "first"
    valid_size: int = 2000
    valid_from: Literal["test", "train"] = "test"
    channels: int = 8
    cells_per_stage: int = 1
    probe: tuple[int, ...] = (128, 64)
    probe_seed: int = 0
    epochs: float = 8.0
    batch_size: int = TrainRecipe.batch_size  # the benchmark's recipe, written in TrainRecipe
    lr: float = TrainRecipe.lr
    momentum: float = TrainRecipe.momentum
    weight_decay: float = TrainRecipe.weight_decay
    nesterov: bool = TrainRecipe.nesterov
    augment: bool = False
    crop_padding: int | None = None
    every_n_steps: int = 1
    reports_per_epoch: int = 1
    interaction: Literal["chain", "product"] = "chain"
    normalize: bool = True
    snapshots: Literal["none", "probe", "network"] = "none"

    def __post_init__(self) -> None:
        try:
            info = dataset_info(self.dataset)
        except ConfigError:
            raise ConfigError(
                f"dataset must be one of {', '.join(PROXY_DATASETS)} (or an alias), "
                f"but got {self.dataset!r}"
            ) from None
        object.__setattr__(self, "dataset", info.name)
        for name in (
            "resolution",
            "train_subset",
            "valid_size",
            "channels",
            "cells_per_stage",
            "epochs",
            "batch_size",
            "lr",
            "every_n_steps",
            "reports_per_epoch",
        ):
            _positive(name, getattr(self, name))
        if self.resolution is not None and self.resolution not in (8, 16, 32):
            raise ConfigError(f"resolution must be 8, 16, 32 or null, but got {self.resolution!r}")
        if not self.probe or any(w < 1 for w in self.probe):
            raise ConfigError(
                f"probe must list positive hidden widths, but got {list(self.probe)!r}"
            )
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ConfigError(
                f"need weight_decay >= 0 and 0 <= momentum < 1, but got "
                f"weight_decay={self.weight_decay!r}, momentum={self.momentum!r}"
            )

        if self.snapshots not in SNAPSHOT_MODES:
            raise ConfigError(
                f"snapshots must be one of {', '.join(map(repr, SNAPSHOT_MODES))}, "
                f"but got snapshots={self.snapshots!r}"
            )
        if self.crop_padding is not None and (
            isinstance(self.crop_padding, bool)
            or not isinstance(self.crop_padding, int)
            or self.crop_padding < 0
        ):
            raise ConfigError(
                f"crop_padding must be an int >= 0 or null, but got {self.crop_padding!r}"
            )
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov needs momentum > 0, but got momentum=0.0")

    @property
    def num_classes(self) -> int:
        return CATALOGUE[self.dataset].num_classes

    @property
    def variant(self) -> str:
        """Name of the trajectory column of the configured βeff variant."""
        return variant_name(self.interaction, self.normalize)

    def to_recipe(self) -> TrainRecipe:
        """The training recipe this proxy trains with."""
        return TrainRecipe(
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
            augment=self.augment,
            crop_padding=self.padding,
        )

    @property
    def padding(self) -> int:
        """The random crop's zero padding: ``crop_padding``, else the dataset's own."""
        if self.crop_padding is not None:
            return self.crop_padding
        return CATALOGUE[self.dataset].crop_padding

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, *, where: str = "proxy") -> ProxyConfig:
        """Build from a mapping (YAML section); unknown keys and bad values raise ConfigError."""
        return from_mapping(cls, data, where=where)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; what the cache stores and hashes.

        ``snapshots`` appears only when it is not ``"none"``: configs from
        before the option existed hash as they did. ``crop_padding`` appears
        resolved wherever augmentation is on, except where it is 4 px and that
        is the dataset's own (CIFAR): every run padded 4 before the option
        existed, so those keys are unchanged, an ImageNet16-120 run (2 px by
        default) never shares a key with an older one that padded 4, and
        :meth:`from_mapping` of the result trains the same proxy.
        """
        out = to_mapping(self)
        if out.get("snapshots") == "none":
            del out["snapshots"]
        del out["crop_padding"]
        own = CATALOGUE[self.dataset].crop_padding
        if self.augment and not self.padding == own == _PADDING_BEFORE:
            out["crop_padding"] = self.padding
        return out
