"""``nasnc evaluate ARCHS``: score a list of architectures without Optuna."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nasnc._errors import ConfigError
from nasnc.space import Arch, sample_archs

from ._base import CACHE_HELP, FORMATS, Command, UsageError, emit, progress_wanted, seed_int


def parse_archs(spec: str) -> list[Arch]:
    """``sample:N[:SEED]`` (a seeded sample of distinct cells) or a file of arch strings."""
    if spec.startswith("sample:"):
        parts = spec.split(":")
        try:
            n = int(parts[1])
            seed = int(parts[2]) if len(parts) > 2 and parts[2] else 0
        except (IndexError, ValueError):
            raise UsageError(f"expected sample:N[:SEED], but got {spec!r}") from None
        if len(parts) > 3 or n < 1:
            raise UsageError(f"expected sample:N[:SEED] with N >= 1, but got {spec!r}")
        try:
            return sample_archs(n, seed=seed, unique=True, exclude_zero=True)
        except ConfigError as exc:
            raise UsageError(f"{spec}: {exc}") from None
    path = Path(spec)
    if not path.is_file():
        raise UsageError(
            f"ARCHS must be a file of arch strings or sample:N[:SEED]; no file {spec!r}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path} is not a text file of arch strings (byte {exc.start} is not UTF-8)"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    archs = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            archs.append(Arch.parse(text))
        except ValueError as exc:
            raise UsageError(f"{path}:{lineno}: {exc}") from None
    if not archs:
        raise UsageError(f"{path} lists no architectures")
    return archs


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


class Evaluate(Command):
    name = "evaluate"
    help = "score architectures (βeff and baselines) without Optuna; resumable through the cache"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("archs", help="file with one arch string per line, or sample:N[:SEED]")
        parser.add_argument(
            "--config",
            help="study config whose proxy section to use (default: the built-in CPU proxy)",
        )
        parser.add_argument(
            "--proxies",
            default="all",
            help="baseline proxies at initialisation: all, none or a comma list; 'aggregate' "
            "adds the free rank aggregate (nasnc.proxies.AGGREGATES), ranked within the "
            "listed cells (a pool score: needs 2 or more, never cached)",
        )
        parser.add_argument("--cache", metavar="PATH", help=CACHE_HELP)
        parser.add_argument("--data-root", help="folder holding the dataset (else $NASNC_DATA_DIR)")
        parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
        parser.add_argument("--seed", type=seed_int)
        parser.add_argument("--epochs", type=float, help="override the proxy budget")
        parser.add_argument("--threads", type=int, help="torch threads")
        parser.add_argument(
            "--download",
            action="store_true",
            default=None,
            help="download CIFAR into --data-root when missing",
        )
        parser.add_argument("--format", choices=FORMATS, default="table")
        parser.add_argument(
            "--no-progress", action="store_true", help="no progress bar (none unless a terminal)"
        )

    def run(self, args: argparse.Namespace) -> int:
        from tqdm import tqdm

        from nasnc.data import locate_dataset
        from nasnc.pipeline import evaluate_arch, load_proxy_data
        from nasnc.proxies import AGGREGATES, PROXIES, expand_proxies, rank_aggregate
        from nasnc.store import REQUIRED_SUMMARY, Store
        from nasnc.train import resolve_device

        from .._config import SearchConfig, apply_overrides, load_config

        config = load_config(args.config) if args.config else SearchConfig()
        config = apply_overrides(
            config,
            {
                "cache": args.cache,
                "data_root": args.data_root,
                "device": args.device,
                "seed": args.seed,
                "proxy.epochs": args.epochs,
                "threads": args.threads,
                "download": args.download,
            },
        )
        pooled: tuple[str, ...] = ()
        if args.proxies == "all":
            proxies = tuple(PROXIES)
        elif args.proxies in ("none", ""):
            proxies = ()
        else:
            names = [p.strip() for p in args.proxies.split(",") if p.strip()]
            if not names:
                raise UsageError(
                    f"--proxies {args.proxies!r} names no proxy; give all, none or a comma list"
                )
            unknown = [p for p in names if p not in PROXIES and p not in AGGREGATES]
            if unknown:
                raise UsageError(
                    f"unknown proxy {unknown[0]!r}; known: {', '.join([*PROXIES, *AGGREGATES])}"
                )
            proxies, pooled = expand_proxies(names)
        archs = parse_archs(args.archs)
        if pooled and len(archs) < 2:
            raise UsageError(
                f"--proxies {pooled[0]} ranks cells within the evaluated list (a pool score), "
                f"so it needs 2 or more cells, but {args.archs} gives {len(archs)}"
            )
        p = config.proxy
        device = resolve_device(config.device)
        # missing data stops here (or is downloaded), before the cache is made, as a search does
        locate_dataset(p.dataset, config.data_root, download=config.download)
        store = Store(config.cache)  # an unwritable cache stops here, before any work
        data = load_proxy_data(
            p, config.data_root, device=device, seed=config.seed, download=config.download
        )
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        rows: list[dict[str, Any]] = []
        bar = tqdm(
            archs,
            desc="evaluate",
            unit="arch",
            file=sys.stderr,
            disable=not progress_wanted(args.no_progress),
            dynamic_ncols=True,
        )
        hits = 0
        for arch in bar:
            result = evaluate_arch(
                arch, p, data, seed=config.seed, device=device, store=store, proxies=proxies
            )
            hits += result.cache_hit
            entry = result.entry
            row: dict[str, Any] = {
                "arch": str(arch),  # the cell asked for; a hit may hold its twin's string
                "key": entry.key,
                "cache_hit": result.cache_hit,
            }
            row.update({name: entry.summary.get(name) for name in REQUIRED_SUMMARY})
            row.update({k: v for k, v in entry.scores.items() if k not in row})
            rows.append(row)
            bar.set_postfix(cached=hits, refresh=False)
        bar.close()
        for name in pooled:  # over this list as the pool, as compare does over a config group
            parts = AGGREGATES[name]
            columns_in = {p: [_num(r.get(p)) for r in rows] for p in parts}
            for row, value in zip(rows, rank_aggregate(columns_in, names=parts)):
                row[name] = float(value)
            print(
                f"{name}: rank aggregate of {', '.join(parts)} within these {len(rows)} cells "
                "(another list ranks them differently; not cached)",
                file=sys.stderr,
            )
        fixed = {"arch", "key", "cache_hit", *REQUIRED_SUMMARY}
        score_names = sorted({k for r in rows for k in r} - fixed)
        columns = ["arch", "beta_eff", "beta_eff_std", "proxy_valid_acc", *score_names, "cost_s"]
        if args.format == "json":
            emit(rows, columns, "json")
        else:
            emit(
                rows,
                columns
                if args.format == "table"
                else ["key", "cache_hit", *columns, "beta_eff_last", "diverged"],
                args.format,
            )
        n_div = sum(bool(r.get("diverged")) for r in rows)
        print(
            f"{len(rows)} architecture(s), {hits} from the cache, {n_div} diverged; "
            f"cache: {config.cache}",
            file=sys.stderr,
        )
        return 0
