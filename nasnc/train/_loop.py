"""The proxy training loop: short budgets, on-device data, observers at every step."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasnc._errors import ConfigError, DataError
from nasnc.data import DeviceTransform, ProxyData
from nasnc.train._types import Budget, Observer, Report, TrainRecipe, TrainResult, resolve_device

__all__ = ["autocast_dtype", "evaluate", "train_proxy"]

logger = logging.getLogger(__name__)

#: Trajectory columns every run has, in order; observers may not reuse these names.
BASE_COLUMNS = ("step", "epoch", "train_loss", "train_acc", "valid_acc", "wall_s")


def autocast_dtype(recipe: TrainRecipe, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``recipe`` trains with on ``device`` (None: float32)."""
    if recipe.amp == "off":
        return None
    if device.type != "cuda":
        if recipe.amp != "auto":
            raise ConfigError(f"amp={recipe.amp!r} needs a CUDA device, but got {device=}.")
        return None
    if recipe.amp == "fp16":
        return torch.float16
    if recipe.amp == "bf16" or native_bf16(device):
        return torch.bfloat16
    return torch.float16


def native_bf16(device: torch.device) -> bool:
    """Whether CUDA ``device`` computes bfloat16 in hardware (compute capability 8.0,
    Ampere, or later). ``torch.cuda.is_bf16_supported()`` also counts emulated bf16
    and asks about the current device, not the training one."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def _autocast(
    dtype: torch.dtype | None, device: torch.device
) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _grad_scaler() -> Any:
    """A CUDA GradScaler (``torch.amp`` from torch 2.3 on, ``torch.cuda.amp`` before)."""
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        return amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()  # pragma: no cover - torch < 2.3


def _cosine_lr(recipe: TrainRecipe, index: int, total: int) -> float:
    """Learning rate of the ``index``-th step (0-based) of ``total``."""
    if index < recipe.warmup_steps:
        return recipe.lr * (index + 1) / recipe.warmup_steps
    span = max(1, total - recipe.warmup_steps)
    progress = min(1.0, (index - recipe.warmup_steps) / span)
    return recipe.lr_min + (recipe.lr - recipe.lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    transform: DeviceTransform,
    *,
    batch_size: int = 1024,
    amp_dtype: torch.dtype | None = None,
) -> float:
    """Top-1 accuracy (fraction) of ``model`` in eval mode on uint8 images ``x``.

    Batched, no gradients, one host sync at the end; NaN for an empty set.
    The model's train/eval mode is restored afterwards.
    """
    n = int(x.shape[0])
    if n == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    try:
        correct = torch.zeros((), dtype=torch.int64, device=x.device)
        for start in range(0, n, batch_size):
            xb = transform.eval(x[start : start + batch_size])
            with _autocast(amp_dtype, x.device):
                logits = model(xb)
            correct += (logits.argmax(1) == y[start : start + batch_size]).sum()
        return float(correct.item()) / n
    finally:
        model.train(was_training)


def _epoch_batches(
    n: int, batch_size: int, drop_last: bool, gen: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """Index batches of one shuffled epoch, forever (a new permutation per epoch)."""
    while True:
        perm = torch.randperm(n, generator=gen, device=device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            yield perm[start : start + batch_size]


def _check_observers(observers: Sequence[Observer]) -> None:
    for obs in observers:
        missing = [
            m
            for m in ("on_train_start", "on_step", "on_report", "on_train_end")
            if not callable(getattr(obs, m, None))
        ]
        if missing:
            raise ConfigError(
                f"observers must implement the Observer protocol; {type(obs).__name__} lacks "
                f"{', '.join(missing)}"
            )


def train_proxy(
    model: nn.Module,
    data: ProxyData,
    budget: Budget | float | int,
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
    observers: Sequence[Observer] = (),
    report_every: int | None = None,
    on_report: Callable[[Report], str | None] | None = None,
    recipe: TrainRecipe | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` for a proxy ``budget`` while observers watch.

    The loop keeps the data on the device and draws every batch, crop and flip
    from one ``torch.Generator`` seeded with ``seed`` (no global RNG is read or
    changed), accumulates loss and accuracy on the device, and synchronises the
    host only at report points. At each report point it evaluates the
    validation set, asks every observer for its values, records a trajectory
    row and calls ``on_report``.

    Parameters
    ----------
    model : nn.Module
        Trained in place; moved to ``device`` (and to channels-last on CUDA).
        Its initialisation is the caller's (seed it before building).
    data : ProxyData
        Moved to ``device`` when it lives elsewhere.
    budget : Budget, float or int
        ``Budget(epochs=...)`` or ``Budget(steps=...)``; a bare number means epochs.
        The cosine schedule spans the whole budget even if the run stops early.
    device : str or torch.device, default "auto"
        ``"auto"`` picks CUDA, then MPS, then CPU (:func:`resolve_device`).
    seed : int, default 0
        Seed of the shuffling/augmentation generator.
    observers : sequence of Observer
        Called at start, after every optimiser step, at report points, at the end.
    report_every : int or None
        Report every this many steps; ``None`` reports once per epoch. The
        last step is always a report point.
    on_report : callable or None
        ``on_report(report) -> None | "stop"``; ``"stop"`` ends training cleanly.
    recipe : TrainRecipe or None
        Optimiser, schedule and augmentation settings (benchmark defaults).
    progress : callable or None
        ``progress(step, total_steps)`` after every step (e.g. a progress bar).

    Returns
    -------
    TrainResult
        A non-finite training loss ends the run with ``diverged=True``: it is
        returned, not raised. It is detected at once on CPU (where checking is
        free) and at the next report point on accelerators (no per-step sync).

    Notes
    -----
    On CUDA, cuDNN may pick non-deterministic kernels; runs are reproducible
    bit for bit on CPU. fp16 AMP uses a ``GradScaler``, whose step inspects
    gradients on the host (prefer bf16, the default where supported).
    """
    recipe = recipe if recipe is not None else TrainRecipe()
    if not isinstance(recipe, TrainRecipe):
        raise ConfigError(f"recipe must be a TrainRecipe, but got {type(recipe).__name__}.")
    if not isinstance(data, ProxyData):
        raise ConfigError(f"data must be a ProxyData, but got {type(data).__name__}.")
    budget = Budget.coerce(budget)
    if report_every is not None and (
        isinstance(report_every, bool)
        or not isinstance(report_every, (int, np.integer))
        or report_every < 1
    ):
        raise ConfigError(f"report_every must be a positive int or None, but got {report_every=}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an int, but got {seed=}.")
    observers = tuple(observers)
    _check_observers(observers)
    n_train = data.num_train
    if n_train == 0:
        raise DataError(f"{data.name} holds no training images")
    if recipe.drop_last and n_train < recipe.batch_size:
        raise ConfigError(
            f"drop_last=True with {n_train} training images leaves no batch, but got "
            f"batch_size={recipe.batch_size}."
        )

    dev = resolve_device(device)
    t_start = time.perf_counter()
    moved = data.to(dev)
    if moved is not data:
        logger.info("moving %s to %s", data.name, dev)
    data = moved
    amp_dtype = autocast_dtype(recipe, dev)
    channels_last = (
        dev.type == "cuda" if recipe.channels_last == "auto" else bool(recipe.channels_last)
    )
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.train()
    transform = DeviceTransform(
        data.mean,
        data.std,
        device=dev,
        augment=recipe.augment,
        padding=recipe.crop_padding,
        flip=recipe.hflip,
        channels_last=channels_last,
    )
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        nesterov=recipe.nesterov,
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    scaler = _grad_scaler() if amp_dtype == torch.float16 else None

    bs = recipe.batch_size
    steps_per_epoch = n_train // bs if recipe.drop_last else math.ceil(n_train / bs)
    total = budget.total_steps(steps_per_epoch)
    every = report_every if report_every is not None else steps_per_epoch
    check_each_step = dev.type == "cpu"  # .item() on a CPU tensor costs no device sync
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    batches = _epoch_batches(n_train, bs, recipe.drop_last, gen, dev)
    logger.info(
        "training %d steps (%d per epoch, batch %d) on %s, amp=%s, channels_last=%s",
        total,
        steps_per_epoch,
        bs,
        dev,
        amp_dtype,
        channels_last,
    )

    rows: list[dict[str, float]] = []
    extra_keys: list[str] = []
    loss_sum = torch.zeros((), dtype=torch.float32, device=dev)
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    seen = 0
    last_report_step = 0
    step = 0
    diverged = stopped = False
    reason: str | None = None

    def report(step: int, *, bad: bool) -> str | None:
        nonlocal loss_sum, correct, seen, last_report_step
        train_loss = float(loss_sum.item()) / max(seen, 1)
        train_acc = float(correct.item()) / max(seen, 1)
        if bad or not math.isfinite(train_loss):
            bad = True
            train_loss = float("nan") if math.isfinite(train_loss) else train_loss
        valid_acc = (
            float("nan")
            if bad
            else evaluate(
                model,
                data.valid_x,
                data.valid_y,
                transform,
                batch_size=recipe.eval_batch_size,
                amp_dtype=amp_dtype,
            )
        )
        extras: dict[str, float] = {}
        for obs in observers:
            for key, value in obs.on_report(step).items():
                if key in BASE_COLUMNS:
                    raise ConfigError(
                        f"observer {type(obs).__name__} returned the reserved column {key!r}"
                    )
                extras[key] = float(value)
                if key not in extra_keys:
                    extra_keys.append(key)
        wall = time.perf_counter() - t_start
        rep = Report(
            step=step,
            total_steps=total,
            epoch=step / steps_per_epoch,
            train_loss=train_loss,
            train_acc=train_acc,
            valid_acc=valid_acc,
            wall_s=wall,
            extras=extras,
        )
        rows.append(
            {
                "step": float(step),
                "epoch": rep.epoch,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "valid_acc": valid_acc,
                "wall_s": wall,
                **extras,
            }
        )
        loss_sum = torch.zeros_like(loss_sum)
        correct = torch.zeros_like(correct)
        seen = 0
        last_report_step = step
        if bad:
            return "diverged"
        if on_report is None:
            return None
        verdict = on_report(rep)
        if verdict not in (None, "stop"):
            raise ConfigError(f"on_report must return None or 'stop', but got {verdict=}.")
        return verdict

    for obs in observers:
        obs.on_train_start(model, total)
    try:
        while step < total:
            idx = next(batches)
            xb = transform.train(data.train_x[idx], gen)
            yb = data.train_y[idx]
            for group in optimizer.param_groups:
                group["lr"] = _cosine_lr(recipe, step, total)
            with _autocast(amp_dtype, dev):
                logits = model(xb)
                loss = criterion(logits.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                if recipe.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                if recipe.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                optimizer.step()
            step += 1
            n = int(yb.shape[0])
            seen += n
            loss_d = loss.detach()
            loss_sum += loss_d * n
            correct += (logits.detach().argmax(1) == yb).sum()
            for obs in observers:
                obs.on_step(step, model)
            if progress is not None:
                progress(step, total)
            bad = check_each_step and not math.isfinite(float(loss_d.item()))
            if bad or step % every == 0 or step == total:
                previous = last_report_step
                verdict = report(step, bad=bad)
                if verdict == "diverged":
                    diverged = True
                    reason = (
                        f"non-finite training loss at step {step}"
                        if check_each_step
                        else f"non-finite training loss between steps {previous} and {step}"
                    )
                    break
                if verdict == "stop":
                    stopped = True
                    reason = f"stopped by the on_report callback at step {step} of {total}"
                    break
    finally:
        for obs in observers:
            obs.on_train_end()

    seconds = time.perf_counter() - t_start
    if diverged:
        logger.warning("%s", reason)
    trajectory: dict[str, np.ndarray] = {
        key: np.array([row.get(key, np.nan) for row in rows], dtype=np.float64)
        for key in (*BASE_COLUMNS, *extra_keys)
    }
    final = float(trajectory["valid_acc"][-1]) if rows else float("nan")
    return TrainResult(
        trajectory=trajectory,
        diverged=diverged,
        stopped=stopped,
        steps=step,
        seconds=seconds,
        final_valid_acc=final,
        reason=reason,
    )
