"""``nasnc train ARCH``: one architecture through the proxy, βeff printed at every report point.

A thin command over :class:`nasnc.pipeline.ProxyConfig` and
:func:`nasnc.pipeline.evaluate_arch`, the same two that ``nasnc evaluate``
and ``nasnc search`` use: the same cell, proxy and seed give the same βeff
(and the same cache key) in all three. The proxy comes from ``--config FILE``
(a study config, whose ``proxy:`` section and ``seed``/``device``/``cache``...
are read as ``evaluate`` reads them, or a flat mapping of ``ProxyConfig``
fields), then ``--set FIELD=VALUE`` and the few common flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasnc._catalogue import PROXY_DATASETS
from nasnc._config import DEFAULT_CACHE
from nasnc._errors import ConfigError

from ._base import ARCH_HELP, Command, UsageError, emit, progress_wanted, seed_int

if TYPE_CHECKING:
    from .._config import SearchConfig

__all__ = ["Train", "load_train_config"]

_FORMATS = ("table", "json")


def _idle_cores(limit: int) -> int:
    """Cores the 1-minute load average leaves idle, in ``1..limit``.

    Oversubscribed cores slow small-model training several-fold (measured
    3.5x on a busy 2-core machine: docs/benchmarks.md, "Data and proxy
    training"), so on a shared machine fewer threads run faster.
    """
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return limit
    return max(1, min(limit, (os.cpu_count() or 1) - round(busy)))


def _proxy_fields() -> set[str]:
    from nasnc.pipeline import ProxyConfig

    return {f.name for f in dataclasses.fields(ProxyConfig)}


def load_train_config(path: str | Path | None) -> SearchConfig:
    """The study config ``path`` holds, or one around a flat mapping of ProxyConfig fields.

    A file with any key of a study config that is not a ``ProxyConfig`` field
    (``proxy:``, ``seed:``, ``study_name:``...) is read as ``nasnc evaluate
    --config`` reads it; otherwise its keys are the ``proxy:`` section itself
    (the rest at its defaults). None gives the built-in CPU proxy.
    """
    from nasnc.pipeline import ProxyConfig

    from .._config import SearchConfig, load_config, read_yaml

    if path is None:
        return SearchConfig()
    path = Path(path)
    data = read_yaml(path)
    study_keys = {f.name for f in dataclasses.fields(SearchConfig)} - _proxy_fields()
    given = {str(k).replace("-", "_") for k in data} if isinstance(data, dict) else set()
    if study_keys & given:
        stray = sorted(_proxy_fields() & given)
        if stray:
            raise ConfigError(
                f"{path}: {stray[0]!r} is a proxy field: put it under proxy: (the file also "
                f"has study keys: {', '.join(sorted(study_keys & given))})"
            )
        return load_config(path)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must hold a study config or a mapping of proxy fields, "
            f"but holds {type(data).__name__}"
        )
    for key in sorted(given - _proxy_fields()):  # a study key's typo: proxi:, n_trails:
        close = difflib.get_close_matches(key, sorted(study_keys), n=2, cutoff=0.8)
        if close and not difflib.get_close_matches(key, sorted(_proxy_fields()), cutoff=0.8):
            raise ConfigError(
                f"{path}: unknown key {key!r}; did you mean the study key "
                f"{' or '.join(map(repr, close))}? "
                "(a file holds proxy fields, epochs: channels: ..., or a study config, "
                "proxy: seed: ...)"
            )
    try:
        return SearchConfig(proxy=ProxyConfig.from_mapping(data, where=""))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _parse_set(items: list[str]) -> dict[str, Any]:
    """``--set FIELD=VALUE`` pairs as ``proxy.FIELD`` overrides, read as
    ``nasnc search --set`` reads its pairs (VALUE as YAML, ``null`` unsets)."""
    from .._config import parse_overrides

    try:
        values = parse_overrides(items, form="FIELD=VALUE, e.g. epochs=2")
    except ConfigError as exc:
        raise UsageError(f"--set: {exc}") from None
    known = _proxy_fields()
    out: dict[str, Any] = {}
    for key, value in values.items():
        field = key.replace("-", "_")
        if field not in known:
            names = ", ".join(sorted(known))
            raise UsageError(f"--set {key}=...: {field!r} is not a proxy field; known: {names}")
        out[f"proxy.{field}"] = value
    return out


def _fmt(value: float, spec: str) -> str:
    return "nan" if not math.isfinite(value) else format(value, spec)


class Train(Command):
    name = "train"
    help = "train one architecture at the proxy (ProxyConfig) and print beta_eff per report point"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("arch", help=ARCH_HELP)
        parser.add_argument(
            "--config",
            metavar="FILE",
            help="a study config (its proxy: section, seed, device, cache, ... as evaluate reads "
            "them) or a flat mapping of ProxyConfig fields (default: the built-in CPU proxy)",
        )
        parser.add_argument(
            "--set",
            metavar="FIELD=VALUE",
            action="append",
            default=[],
            help="override one ProxyConfig field, e.g. --set train_subset=5000 (repeatable)",
        )
        parser.add_argument(
            "--dataset",
            metavar="{" + ",".join(PROXY_DATASETS) + "}",
            help="override the proxy dataset (or an alias of one)",
        )
        parser.add_argument("--epochs", type=float, help="override the proxy budget")
        parser.add_argument(
            "--seed", type=seed_int, help="seed of the run (default: the config's, 0)"
        )
        parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
        parser.add_argument(
            "--threads",
            type=int,
            help="torch threads (default: the config's, else on CPU the cores the load "
            "average leaves idle)",
        )
        parser.add_argument("--data-root", help="folder holding the dataset (else $NASNC_DATA_DIR)")
        parser.add_argument(
            "--download",
            action="store_true",
            default=None,
            help="download CIFAR into --data-root when missing",
        )
        cache = parser.add_mutually_exclusive_group()
        cache.add_argument(
            "--cache",
            metavar="PATH",
            help=f"the HDF5 trajectory cache, shared with evaluate and search (default: "
            f"{DEFAULT_CACHE}, or the study config's 'cache:'): a cached cell is replayed, "
            "not trained, and a new run is stored",
        )
        cache.add_argument(
            "--no-cache",
            action="store_true",
            help="train even if the cell is cached, and store nothing",
        )
        parser.add_argument("--format", choices=_FORMATS, default="table")
        parser.add_argument(
            "--no-progress", action="store_true", help="no progress bar (none unless a terminal)"
        )

    def run(self, args: argparse.Namespace) -> int:
        import torch
        from tqdm import tqdm

        from nasnc.data import locate_dataset
        from nasnc.pipeline import ReportPoint, evaluate_arch, load_proxy_data
        from nasnc.space import Arch
        from nasnc.store import Store
        from nasnc.train import resolve_device

        from .._config import apply_overrides

        arch = Arch.parse(args.arch)
        flags = {
            "proxy.dataset": args.dataset,
            "proxy.epochs": args.epochs,
            "seed": args.seed,
            "device": args.device,
            "threads": args.threads,
            "data_root": args.data_root,
            "download": args.download,
            "cache": args.cache,
        }
        # --set FIELD=null sets None (e.g. resolution: the native size); a flag not
        # given (None) changes nothing, and a flag given wins over --set
        config = apply_overrides(
            load_train_config(args.config), _parse_set(args.set), keep_none=True
        )
        config = apply_overrides(config, flags)
        proxy = config.proxy
        device = resolve_device(config.device)
        # missing data stops here (or is downloaded), before the cache is made, as a search does
        locate_dataset(proxy.dataset, config.data_root, download=config.download)
        store = None if args.no_cache else Store(config.cache)  # unwritable: stop before work
        threads = config.threads or (
            _idle_cores(torch.get_num_threads()) if device.type == "cpu" else None
        )
        if threads is not None:
            torch.set_num_threads(threads)
        data = load_proxy_data(
            proxy, config.data_root, device=device, seed=config.seed, download=config.download
        )
        table = args.format == "table"
        if table:
            print(
                f"{arch}  {data.name} {data.num_train} images at {data.resolution} px, "
                f"{proxy.epochs:g} epoch{'s' if proxy.epochs != 1 else ''} on {device}"
                + (f" ({threads} thread{'s' if threads > 1 else ''})" if threads else "")
                + f", seed {config.seed}, cache: {'none' if store is None else config.cache}"
            )
        bar = tqdm(
            unit="step",
            file=sys.stderr,
            disable=not progress_wanted(args.no_progress),
            leave=False,
            dynamic_ncols=True,
        )

        def progress(step: int, total: int) -> None:
            bar.total = total
            bar.update(step - bar.n)

        t0 = time.perf_counter()

        def on_report(point: ReportPoint) -> None:
            if not table:
                return
            total = point.total_steps
            epoch = point.step / total * proxy.epochs if total else math.nan
            bar.write(
                f"step {point.step:>{len(str(total))}}/{total}  epoch {epoch:5.2f}  "
                f"loss {_fmt(point.train_loss, '.4f')}  valid {_fmt(point.valid_acc, '.3f')}  "
                f"beta_eff {_fmt(point.beta_eff, '.5g')} ± {_fmt(point.beta_eff_std, '.2g')}  "
                f"last {_fmt(point.beta_eff_last, '.5g')}  "
                + ("cached" if point.cached else f"{time.perf_counter() - t0:6.1f}s"),
                file=sys.stdout,
            )

        try:
            result = evaluate_arch(
                arch,
                proxy,
                data,
                seed=config.seed,
                device=device,
                store=store,
                on_report=on_report,
                progress=progress,
            )
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        entry, summary = result.entry, result.entry.summary
        if table:
            print(
                f"final: valid acc {_fmt(summary['proxy_valid_acc'], '.4f')}  "
                f"beta_eff {_fmt(summary['beta_eff'], '.5g')} ± "
                f"{_fmt(summary['beta_eff_std'], '.2g')}  "
                f"last {_fmt(summary['beta_eff_last'], '.5g')}  steps {summary['steps']}  "
                f"{seconds:.1f}s"
                + ("  (from the cache)" if result.cache_hit else "")
                + ("  DIVERGED" if result.diverged else "")
            )
            return 0
        payload = {
            "arch": str(arch),
            "canonical": arch.canonical(),
            "dataset": entry.dataset,
            "seed": entry.seed,
            "key": entry.key,
            "cache": None if store is None else config.cache,
            "cache_hit": result.cache_hit,
            "final_valid_acc": summary["proxy_valid_acc"],
            "beta_eff": summary["beta_eff"],
            "beta_eff_std": summary["beta_eff_std"],
            "beta_eff_last": summary["beta_eff_last"],
            "diverged": result.diverged,
            "steps": summary["steps"],
            "cost_s": summary["cost_s"],
            "seconds": seconds,
            "threads": threads,
            "config": entry.config,
            "scores": entry.scores,
            "trajectory": entry.trajectory,
        }
        emit([], [], "json", json_payload=payload)
        return 0
