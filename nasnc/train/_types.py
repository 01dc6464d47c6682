"""Value types of proxy training: recipe, budget, observer protocol, report, result."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from nasnc._errors import ConfigError

__all__ = ["Budget", "Observer", "Report", "TrainRecipe", "TrainResult", "resolve_device"]


@runtime_checkable
class Observer(Protocol):
    """Watches a training run; the streaming channel of :func:`train_proxy`.

    ``on_step`` runs after every optimiser step and must not synchronise the
    host with the device (no ``.item()``, no host copies); ``on_report`` runs
    at report points only and may. Its items become trajectory columns.
    """

    def on_train_start(self, model: nn.Module, total_steps: int) -> None: ...

    def on_step(self, step: int, model: nn.Module) -> None: ...

    def on_report(self, step: int) -> Mapping[str, float]: ...

    def on_train_end(self) -> None: ...


@dataclass(frozen=True)
class Budget:
    """A training budget in epochs (may be fractional) or in optimiser steps.

    >>> Budget(epochs=8).total_steps(40)
    320
    >>> Budget(steps=100).total_steps(40)
    100
    """

    epochs: float | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        epochs, steps = self.epochs, self.steps
        if (epochs is None) == (steps is None):
            raise ConfigError(f"a Budget needs exactly one of epochs or steps, but got {self!r}.")
        if epochs is not None and not (
            isinstance(epochs, (int, float)) and math.isfinite(epochs) and epochs > 0
        ):
            raise ConfigError(f"epochs must be a positive number, but got {epochs=}.")
        if steps is not None and (
            isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1
        ):
            raise ConfigError(f"steps must be a positive int, but got {steps=}.")

    @classmethod
    def coerce(cls, budget: Budget | float | int) -> Budget:
        """A :class:`Budget` from itself or a bare number of epochs."""
        if isinstance(budget, Budget):
            return budget
        if isinstance(budget, bool) or not isinstance(budget, (int, float, np.number)):
            raise ConfigError(f"budget must be a Budget or a number of epochs, but got {budget=}.")
        return cls(epochs=float(budget))

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimiser steps this budget means at ``steps_per_epoch``."""
        if self.steps is not None:
            return int(self.steps)
        assert self.epochs is not None  # guaranteed by __post_init__
        return max(1, math.ceil(self.epochs * steps_per_epoch - 1e-9))


_AMP = ("auto", "off", "bf16", "fp16")


@dataclass(frozen=True)
class TrainRecipe:
    """Every knob of the proxy training loop; defaults follow NAS-Bench-201's recipe.

    SGD with Nesterov momentum 0.9, weight decay 5e-4 (on every parameter, as
    the benchmark does), learning rate 0.1 decayed by a per-step cosine to
    ``lr_min`` over the whole budget, batch 256, random crop (zero padding 4)
    plus horizontal flip done batch-wise on the device.

    Parameters
    ----------
    lr, momentum, nesterov, weight_decay : optimiser settings.
    batch_size : int, default 256
    lr_min : float, default 0.0
        Learning rate at the end of the cosine.
    warmup_steps : int, default 0
        Linear warm-up before the cosine starts.
    augment : bool, default True
        Random crop + flip (``crop_padding``, ``hflip``).
    crop_padding : int, default 4
        Zero padding of the random crop (the benchmark uses 2 on ImageNet16-120).
    hflip : bool, default True
    amp : {"auto", "off", "bf16", "fp16"}
        Mixed precision, CUDA only: ``"auto"`` picks bf16 on a GPU that computes
        it natively (compute capability 8.0, Ampere, or later), else fp16 with
        a ``GradScaler``; it is off on CPU and MPS.
    channels_last : {"auto", True, False}
        ``"auto"`` converts model and batches to channels-last on CUDA only.
    grad_clip : float or None
        Clip the global gradient norm to this value.
    label_smoothing : float, default 0.0
    eval_batch_size : int, default 1024
        Batch size of the validation passes.
    drop_last : bool, default False
        Drop the last incomplete batch of each epoch.
    """

    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    batch_size: int = 256
    lr_min: float = 0.0
    warmup_steps: int = 0
    augment: bool = True
    crop_padding: int = 4
    hflip: bool = True
    amp: str = "auto"
    channels_last: bool | str = "auto"
    grad_clip: float | None = None
    label_smoothing: float = 0.0
    eval_batch_size: int = 1024
    drop_last: bool = False

    def __post_init__(self) -> None:
        def positive(name: str, value: Any, *, integer: bool = False, zero: bool = False) -> None:
            ok_type = (int, np.integer) if integer else (int, float, np.number)
            if isinstance(value, bool) or not isinstance(value, ok_type):
                kind = "an int" if integer else "a number"
                raise ConfigError(f"{name} must be {kind}, but got {name}={value!r}.")
            if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
                raise ConfigError(
                    f"{name} must be {'>= 0' if zero else '> 0'}, but got {name}={value!r}."
                )

        positive("lr", self.lr)
        positive("momentum", self.momentum, zero=True)
        positive("weight_decay", self.weight_decay, zero=True)
        positive("batch_size", self.batch_size, integer=True)
        positive("lr_min", self.lr_min, zero=True)
        positive("warmup_steps", self.warmup_steps, integer=True, zero=True)
        positive("crop_padding", self.crop_padding, integer=True, zero=True)
        positive("label_smoothing", self.label_smoothing, zero=True)
        positive("eval_batch_size", self.eval_batch_size, integer=True)
        if self.lr_min > self.lr:
            raise ConfigError(f"lr_min must not exceed lr={self.lr}, but got lr_min={self.lr_min}.")
        if self.label_smoothing >= 1:
            raise ConfigError(
                "label_smoothing must be in [0, 1), but got "
                f"label_smoothing={self.label_smoothing}."
            )
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov=True needs momentum > 0, but got momentum=0.")
        if self.grad_clip is not None:
            positive("grad_clip", self.grad_clip)
        if self.amp not in _AMP:
            raise ConfigError(f"amp must be one of {', '.join(_AMP)}, but got amp={self.amp!r}.")
        if self.channels_last not in ("auto", True, False):
            raise ConfigError(
                f"channels_last must be 'auto', True or False, but got "
                f"channels_last={self.channels_last!r}."
            )
        for name in ("nesterov", "augment", "hflip", "drop_last"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be a bool, but got {name}={getattr(self, name)!r}.")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainRecipe:
        """Build from a mapping; an unknown key raises :class:`ConfigError` naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(
                    f"unknown training recipe key {key!r}; known: {', '.join(sorted(known))}"
                )
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable settings (for cache keys and logs)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Report:
    """What an ``on_report`` callback sees at a report point.

    ``train_loss``/``train_acc`` are means over the steps since the previous
    report; ``valid_acc`` is measured on the whole validation set (NaN when it
    is empty or the run diverged); accuracies are fractions in ``[0, 1]``.
    """

    step: int
    total_steps: int
    epoch: float
    train_loss: float
    train_acc: float
    valid_acc: float
    wall_s: float
    extras: Mapping[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    """Outcome of :func:`train_proxy`.

    ``trajectory`` holds equal-length float arrays, one row per report point:
    ``step, epoch, train_loss, train_acc, valid_acc, wall_s`` and every
    observer key (NaN where an observer gave no value at that point).
    """

    trajectory: dict[str, np.ndarray]
    diverged: bool
    stopped: bool
    steps: int
    seconds: float
    final_valid_acc: float
    reason: str | None = None

    @property
    def reports(self) -> int:
        """Number of report points recorded."""
        return len(self.trajectory.get("step", ()))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA, then MPS, then CPU; an explicit device is checked for availability.

    Raises
    ------
    ConfigError
        An unknown device string, or a device this machine does not have.
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device, but got {device=}.") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"CUDA is not available on this machine, but got {device=}.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"only {torch.cuda.device_count()} CUDA device(s) here, but got {device=}."
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"MPS is not available on this machine, but got {device=}.")
    elif dev.type != "cpu":
        raise ConfigError(f"device must be auto, cpu, cuda[:i] or mps, but got {device=}.")
    return dev
