"""``nasnc train``: train one architecture for a proxy budget and stream βeff.

Options come from three layers, later ones winning: the CPU default proxy
(16 px, 8 channels, 1 cell per stage, 10k images, 8 epochs, lr 0.1, batch
256, probe 128-64), then ``--config FILE`` (a flat YAML mapping of the option
names, ``cells_per_stage`` or ``cells-per-stage``), then the options given on
the command line.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasnc._catalogue import PROXY_DATASETS
from nasnc._errors import ConfigError
from search.cli._base import ARCH_HELP, Command, emit

__all__ = ["TRAIN_DEFAULTS", "Train", "resolve_train_options"]


def _as_int(value: Any, name: str, *, minimum: int = 0, none: bool = False) -> int | None:
    if none and (value is None or (isinstance(value, str) and value.lower() in ("none", "all"))):
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        out = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, but got {name}={value!r}.") from None
    if out < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, but got {name}={value!r}.")
    return out


def _as_float(value: Any, name: str) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, but got {name}={value!r}.") from None
    if not math.isfinite(out) or out <= 0:
        raise ConfigError(f"{name} must be a positive number, but got {name}={value!r}.")
    return out


def _as_str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, but got {name}={value!r}.")
    return value


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in (
        "true",
        "yes",
        "on",
        "1",
        "false",
        "no",
        "off",
        "0",
    ):
        return value.lower() in ("true", "yes", "on", "1")
    raise ConfigError(f"{name} must be true or false, but got {name}={value!r}.")


def _as_probe(value: Any, name: str) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else value
    try:
        widths = tuple(int(str(v).strip()) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name} must be comma-separated hidden widths like 128,64, but got {name}={value!r}."
        ) from None
    if not widths or min(widths) < 1:
        raise ConfigError(
            f"{name} needs at least one positive hidden width (beta_eff needs two dense "
            f"layers), but got {name}={value!r}."
        )
    return widths


def _choice(*choices: str) -> Callable[[Any, str], str]:
    def convert(value: Any, name: str) -> str:
        if value not in choices:
            raise ConfigError(
                f"{name} must be one of {', '.join(choices)}, but got {name}={value!r}."
            )
        return str(value)

    return convert


@dataclass(frozen=True)
class _Opt:
    default: Any
    convert: Callable[[Any, str], Any]
    help: str
    flag: bool = False  # a boolean switch (--x / --no-x)
    metavar: str | None = None


def _ints(minimum: int, *, none: bool = False) -> Callable[[Any, str], int | None]:
    def convert(value: Any, name: str) -> int | None:
        return _as_int(value, name, minimum=minimum, none=none)

    return convert


def _path_or_none(value: Any, name: str) -> str | None:
    return None if value is None else _as_str(str(value), name)


def _threads(value: Any, name: str) -> int | None:
    if value is None or (isinstance(value, str) and value.lower() == "auto"):
        return None
    return _as_int(value, name, minimum=1)


def _one_of(default: str, choices: tuple[str, ...], help: str) -> _Opt:
    return _Opt(default, _choice(*choices), help, metavar="{" + ",".join(choices) + "}")


_OPTIONS: dict[str, _Opt] = {
    "dataset": _one_of(PROXY_DATASETS[0], PROXY_DATASETS, "dataset"),
    "data_root": _Opt(None, _path_or_none, "data folder (default: $NASNC_DATA_DIR)", metavar="DIR"),
    "download": _Opt(
        False, _as_bool, "download the official CIFAR archive into the data root", flag=True
    ),
    "epochs": _Opt(8.0, _as_float, "budget in epochs (may be fractional)", metavar="E"),
    "steps": _Opt(
        None, _ints(1, none=True), "budget in optimiser steps instead of epochs", metavar="N"
    ),
    "subset": _Opt(
        10_000, _ints(1, none=True), "training images ('all': every one present)", metavar="N"
    ),
    "subset_mode": _one_of("first", ("first", "seeded"), "first N images or a seeded sample"),
    "valid_size": _Opt(
        2000, _ints(0, none=True), "validation images from the test file ('all')", metavar="N"
    ),
    "resolution": _Opt(
        16,
        _ints(1, none=True),
        "image side in px, block-averaged ('none': native)",
        metavar="PX",
    ),
    "device": _Opt("auto", _as_str, "auto (CUDA, then MPS, then CPU), cpu, cuda[:i] or mps"),
    "channels": _Opt(8, _ints(1), "channels of the first stage"),
    "cells_per_stage": _Opt(1, _ints(1), "cells per stage (the benchmark uses 5)"),
    "probe": _Opt((128, 64), _as_probe, "hidden widths of the capacitance probe", metavar="W1,W2"),
    "every_n_steps": _Opt(1, _ints(1), "observe beta_eff every N optimiser steps", metavar="N"),
    "interaction": _one_of("chain", ("chain", "product"), "the variant shown as beta_eff"),
    "normalize": _Opt(
        True, _as_bool, "show the scale-free variant as beta_eff (the best measured)", flag=True
    ),
    "seed": _Opt(0, _ints(0), "seed of the model, probe, data order and augmentation"),
    "lr": _Opt(0.1, _as_float, "peak learning rate (cosine to 0 over the budget)"),
    "batch_size": _Opt(256, _ints(1), "training batch size"),
    "augment": _Opt(
        False,
        _as_bool,
        "random crop (pad 4) + horizontal flip (off by default: at 16 px it cost the "
        "8-epoch proxy ~10 points of accuracy)",
        flag=True,
    ),
    "report_every": _Opt(
        None, _ints(1, none=True), "report every N steps (default: 8 report points)", metavar="N"
    ),
    "threads": _Opt(
        None,
        _threads,
        "torch CPU threads ('auto': the cores the load average leaves idle, at least 1)",
        metavar="N",
    ),
    "format": _one_of("table", ("table", "json"), "output format"),
}

#: The CPU default proxy (DESIGN "What we know so far", second row) and other defaults.
TRAIN_DEFAULTS: dict[str, Any] = {k: o.default for k, o in _OPTIONS.items()}


def _load_config(path: str) -> dict[str, Any]:
    import yaml

    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from exc
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {file} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise ConfigError(
            f"config file {file} must hold a mapping of option names, "
            f"but got {type(loaded).__name__}"
        )
    out: dict[str, Any] = {}
    for key, value in loaded.items():
        name = str(key).replace("-", "_")
        if name not in _OPTIONS:
            raise ConfigError(
                f"unknown key {key!r} in config file {file}; known: {', '.join(sorted(_OPTIONS))}"
            )
        out[name] = value
    return out


def resolve_train_options(
    cli: Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Defaults, then ``config`` (a file's mapping), then explicit ``cli`` values (not None).

    Every value is converted and validated; a bad one raises :class:`ConfigError` naming it.
    """
    raw: dict[str, Any] = dict(TRAIN_DEFAULTS)
    for source in (config or {}, cli):
        for key, value in source.items():
            if key not in _OPTIONS:
                raise ConfigError(f"unknown option {key!r}")
            if source is cli and value is None:
                continue
            raw[key] = value
    return {key: opt.convert(raw[key], key) for key, opt in _OPTIONS.items()}


def _idle_cores(limit: int) -> int:
    """Cores the 1-minute load average leaves idle, in ``1..limit``.

    Oversubscribed cores slow small-model training several-fold (measured
    3.5x on a busy 2-core machine: README, "Proxy training"), so on a shared
    machine fewer threads run faster.
    """
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return limit
    return max(1, min(limit, (os.cpu_count() or 1) - round(busy)))


def _fmt(value: float, spec: str) -> str:
    return "nan" if not math.isfinite(value) else format(value, spec)


class Train(Command):
    name = "train"
    help = "train one architecture for a proxy budget while beta_eff streams"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("arch", help=ARCH_HELP)
        parser.add_argument(
            "--config", metavar="FILE", help="YAML mapping of these options (flags win)"
        )
        for key, opt in _OPTIONS.items():
            flag = "--" + key.replace("_", "-")
            default = (
                opt.default
                if not isinstance(opt.default, tuple)
                else ",".join(map(str, opt.default))
            )
            text = f"{opt.help} (default: {default})"
            if opt.flag:
                parser.add_argument(
                    flag, dest=key, action=argparse.BooleanOptionalAction, default=None, help=text
                )
            else:
                parser.add_argument(flag, dest=key, default=None, metavar=opt.metavar, help=text)

    def run(self, args: argparse.Namespace) -> int:
        import torch
        from tqdm import tqdm

        from nasnc.capacitance import CapacitanceObserver
        from nasnc.data import load_dataset
        from nasnc.models import build_network
        from nasnc.space import Arch
        from nasnc.train import Budget, Report, TrainRecipe, resolve_device, train_proxy

        arch = Arch.parse(args.arch)
        config = _load_config(args.config) if args.config else {}
        opts = resolve_train_options({k: getattr(args, k) for k in _OPTIONS}, config)
        device = resolve_device(opts["device"])
        threads = opts["threads"] or (
            _idle_cores(torch.get_num_threads()) if device.type == "cpu" else None
        )
        if threads is not None:
            torch.set_num_threads(threads)
        data = load_dataset(
            opts["dataset"],
            opts["data_root"],
            train_subset=opts["subset"],
            subset_mode=opts["subset_mode"],
            valid_size=opts["valid_size"],
            resolution=opts["resolution"],
            device=device,
            seed=opts["seed"],
            download=opts["download"],
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(opts["seed"])
            model = build_network(
                arch,
                channels=opts["channels"],
                cells_per_stage=opts["cells_per_stage"],
                num_classes=data.num_classes,
                probe=opts["probe"],
                probe_seed=opts["seed"],
            )
        observer = CapacitanceObserver(
            every_n_steps=opts["every_n_steps"],
            interaction=opts["interaction"],
            normalize=opts["normalize"],
        )
        recipe = TrainRecipe(lr=opts["lr"], batch_size=opts["batch_size"], augment=opts["augment"])
        budget = (
            Budget(steps=opts["steps"])
            if opts["steps"] is not None
            else Budget(epochs=opts["epochs"])
        )
        total = budget.total_steps(math.ceil(data.num_train / recipe.batch_size))
        report_every = opts["report_every"] or max(1, math.ceil(total / 8))
        table = opts["format"] == "table"

        bar = tqdm(total=total, unit="step", file=sys.stderr, disable=None, leave=False)

        def progress(step: int, _total: int) -> None:
            bar.update(1)

        def on_report(rep: Report) -> None:
            if table:
                bar.write(
                    f"step {rep.step:>{len(str(total))}}/{total}  epoch {rep.epoch:5.2f}  "
                    f"loss {_fmt(rep.train_loss, '.4f')}  train {_fmt(rep.train_acc, '.3f')}  "
                    f"valid {_fmt(rep.valid_acc, '.3f')}  "
                    f"beta_eff {_fmt(rep.extras.get('beta_eff', math.nan), '.5g')}  "
                    f"{rep.wall_s:6.1f}s",
                    file=sys.stdout,
                )

        if table:
            print(
                f"{arch}  {data.name} {data.num_train} images at {data.resolution} px, "
                f"{total} steps on {device}"
                + (f" ({threads} thread{'s' if threads > 1 else ''})" if threads else "")
            )
        t0 = time.perf_counter()
        try:
            result = train_proxy(
                model,
                data,
                budget,
                device=device,
                seed=opts["seed"],
                observers=[observer],
                report_every=report_every,
                on_report=on_report,
                recipe=recipe,
                progress=progress,
            )
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        beta_last = float(result.trajectory["beta_eff"][-1]) if result.reports else math.nan
        summary = {
            "arch": str(arch),
            "canonical": arch.canonical(),
            "dataset": data.name,
            "final_valid_acc": result.final_valid_acc,
            "beta_eff_last": beta_last,
            "diverged": result.diverged,
            "stopped": result.stopped,
            "reason": result.reason,
            "steps": result.steps,
            "seconds": seconds,
        }
        if table:
            print(
                f"final: valid acc {_fmt(result.final_valid_acc, '.4f')}  "
                f"beta_eff {_fmt(beta_last, '.5g')}  steps {result.steps}/{total}  "
                f"{seconds:.1f}s"
                + ("  DIVERGED" if result.diverged else "")
                + (f"  ({result.reason})" if result.reason else "")
            )
        else:
            payload = {
                **summary,
                "config": {k: v for k, v in opts.items() if k not in ("format", "threads")},
                "threads": threads,
                "trajectory": {k: v.tolist() for k, v in result.trajectory.items()},
                "beta_eff_per_step": {k: v.tolist() for k, v in observer.trajectory().items()},
            }
            emit([], [], "json", json_payload=payload)
        return 0
