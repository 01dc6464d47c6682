"""``nasnc report``: a study's anytime regret beside random search at the same budget.

The study's trained cells, in the order they finished, each cost its
``cost_s`` user attribute (the trial's duration where it is missing; a cache
hit costs what training the cell cost when it was cached); the screen's
recorded seconds come first. A completed trial's cell is *found* with its
benchmark accuracy; a pruned or diverged one costs time but is not found
(the search discarded it). A trial that replays a cell the study already
trained (a cache hit of an earlier trial's cell) adds nothing.

Random search draws distinct cells (no two of one canonical form, no
all-zero cells, as ``sample_archs``) from the benchmark, each draw costing the study's
median seconds per completed cell, over ``--seeds`` runs
(:func:`nasnc.analysis.anytime_regret`).
"""

from __future__ import annotations

import argparse
import difflib
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasnc._errors import ArchError, ConfigError, NasncError

from ._base import (
    FORMATS,
    Command,
    UsageError,
    check_writable_folder,
    emit,
    format_table,
    positive_int,
    seed_int,
)
from ._bench import BENCH_DATASETS

__all__ = ["Report", "StudyCell", "study_cells"]


@dataclass(frozen=True)
class StudyCell:
    """One trained cell of a study, in finishing order."""

    trial: int
    state: str  # COMPLETE, PRUNED or FAIL
    arch: str
    cost_s: float
    cache_hit: bool
    cost_from: str  # "cost_s" or "duration"


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) and out >= 0 else None


def study_cells(trials: Any) -> tuple[list[StudyCell], dict[str, int]]:
    """The trained cells of ``trials`` (FrozenTrials) in finishing order, and what was skipped.

    Skipped: trials not finished, failed ones without a recorded cost
    (interrupted, stale), trials without an ``arch``, and replays (a cache hit
    of a cell an earlier trial of the study trained).
    """
    from optuna.trial import TrialState

    from .._objective import trial_cell

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    done = [t for t in trials if t.state in states]
    done.sort(key=lambda t: (t.datetime_complete is None, t.datetime_complete or 0, t.number))
    cells: list[StudyCell] = []
    skipped = {"unfinished": len(trials) - len(done), "no_cost": 0, "no_arch": 0, "replays": 0}
    seen: set[str] = set()
    for t in done:
        arch = t.user_attrs.get("arch")
        if not arch:
            skipped["no_arch"] += 1
            continue
        cell = str(trial_cell(t))
        hit = bool(t.user_attrs.get("cache_hit"))
        if hit and cell in seen:
            skipped["replays"] += 1
            continue
        cost, source = _float(t.user_attrs.get("cost_s")), "cost_s"
        if cost is None and t.state != TrialState.FAIL and t.datetime_start and t.datetime_complete:
            cost, source = (t.datetime_complete - t.datetime_start).total_seconds(), "duration"
        if cost is None:
            skipped["no_cost"] += 1
            continue
        seen.add(cell)
        cells.append(StudyCell(t.number, t.state.name, str(arch), cost, hit, source))
    return cells, skipped


def _pm(mean: float, sd: float) -> str:
    return "-" if not math.isfinite(mean) else f"{mean:.2f} ± {sd:.2f}"


class Report(Command):
    name = "report"
    help = (
        "a study's anytime regret: best benchmark accuracy found so far against seconds and "
        "trained cells, beside random search at the same budget"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "config",
            nargs="?",
            help="the study's config (gives storage, study name, benchmark); or pass "
            "--storage and --study",
        )
        parser.add_argument(
            "--storage", help="sqlite:///FILE, journal:FILE or postgresql+psycopg://..."
        )
        parser.add_argument("--study", dest="study_name", help="study name")
        parser.add_argument(
            "--benchmark",
            help="ground truth: builtin, a table from `nasnc bench import` or an official file "
            "(default: the config's, else builtin)",
        )
        parser.add_argument(
            "--dataset",
            choices=BENCH_DATASETS,
            help="benchmark dataset (default: the config's benchmark_dataset, else the proxy "
            "dataset's: cifar10 -> cifar10-valid)",
        )
        parser.add_argument("--metric", choices=("valid", "test"), default="valid")
        parser.add_argument(
            "--seeds", type=positive_int, default=20, help="random-search runs (default 20)"
        )
        parser.add_argument(
            "--seed", type=seed_int, default=0, help="seed of the random-search runs"
        )
        parser.add_argument(
            "--draw-cost",
            type=float,
            metavar="SECONDS",
            help="seconds per random draw (default: the study's median per completed cell)",
        )
        parser.add_argument(
            "--screen-cost",
            type=float,
            metavar="SECONDS",
            help="seconds charged before the first cell (default: the screen's recorded seconds)",
        )
        parser.add_argument("--plot", metavar="FILE", help="write the curves to a new PNG file")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default="table",
            help="table (default), csv (one row per trained cell) or json (everything)",
        )

    def run(self, args: argparse.Namespace) -> int:
        import numpy as np
        import optuna

        from nasnc.analysis import anytime_regret, plot_anytime, truth_dataset_for
        from nasnc.bench import open_benchmark
        from nasnc.space import NUM_ARCHS

        from .._config import SearchConfig, apply_overrides, load_config
        from .._screen import SCREEN_ATTR
        from .._storage import make_storage, shown_url, storage_error

        for flag, value in (("--draw-cost", args.draw_cost), ("--screen-cost", args.screen_cost)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise UsageError(f"{flag} must be a non-negative number of seconds, got {value}")
        if args.draw_cost == 0:
            raise UsageError("--draw-cost must be positive: a draw that costs nothing is free")
        plot = Path(args.plot) if args.plot is not None else None
        if plot is not None:
            if plot.suffix.lower() != ".png":
                raise UsageError(f"--plot {plot} must name a .png file")
            if plot.exists():
                raise UsageError(f"--plot {plot} exists; name a new file")
            if not plot.parent.is_dir():
                raise UsageError(f"--plot {plot}: no folder {plot.parent}")
            check_writable_folder(plot.parent, f"--plot {plot}")

        config: SearchConfig | None = None
        if args.config is not None:
            config = apply_overrides(
                load_config(args.config),
                {"storage": args.storage, "study_name": args.study_name},
            )
            url, name = config.storage_url, config.study_name
        elif args.storage is None or args.study_name is None:
            raise UsageError("name the study: a study CONFIG, or both --storage and --study")
        else:
            url, name = args.storage, args.study_name
        _check_storage_exists(url)
        shown = shown_url(url)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = make_storage(url, read_only=True)
        try:
            names = optuna.study.get_all_study_names(storage)
        except ValueError as exc:  # a damaged journal line (JSON or UTF-8)
            raise storage_error(url, exc, kind=True) from exc
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError(
                f"no study {name!r} in {shown} (it holds: {', '.join(sorted(names)) or 'none'})"
                + hint
            )
        study = optuna.load_study(study_name=name, storage=storage)
        if config is None:  # the config the study was created with, where it is readable
            from nasnc._config import from_mapping

            try:
                config = from_mapping(SearchConfig, study.user_attrs.get("config") or {})
            except (ConfigError, TypeError):
                config = None
        proxy_dataset = (
            config.proxy.dataset
            if config is not None
            else (study.user_attrs.get("proxy") or {}).get("dataset", "cifar10")
        )
        dataset = args.dataset or (config.benchmark_dataset if config is not None else None)
        if dataset is None:
            dataset = truth_dataset_for(proxy_dataset).value
        bench = args.benchmark or (config.benchmark if config is not None else None) or "builtin"
        truth = open_benchmark(bench)
        if not truth.supports(dataset, args.metric):
            raise UsageError(f"{bench} has no {args.metric} accuracy on {dataset}")

        cells, skipped = study_cells(study.get_trials(deepcopy=False))
        if not cells:
            raise NasncError(f"study {name!r} in {shown} has no trained cells yet")
        accuracy = []
        missing = 0
        for cell in cells:
            try:
                value = (
                    truth.get(cell.arch, dataset, args.metric) if cell.state == "COMPLETE" else None
                )
            except ArchError as exc:  # a hand-made trial: counted as without ground truth
                print(
                    f"nasnc report: warning: trial {cell.trial}: {exc}; no ground truth for it",
                    file=sys.stderr,
                )
                value = None
            missing += cell.state == "COMPLETE" and value is None
            accuracy.append(math.nan if value is None else float(value))
        completed = [c.cost_s for c in cells if c.state == "COMPLETE"]
        if args.draw_cost is not None:
            draw_cost, draw_from = float(args.draw_cost), "--draw-cost"
        elif completed and statistics.median(completed) > 0:
            draw_cost, draw_from = float(statistics.median(completed)), "median completed cell"
        else:
            raise UsageError(
                f"study {name!r} has no completed cell with a cost to price a random draw; "
                "pass --draw-cost SECONDS"
            )
        screen = study.user_attrs.get(SCREEN_ATTR) or {}
        if args.screen_cost is not None:
            screen_cost, screen_from = float(args.screen_cost), "--screen-cost"
        else:
            screen_cost, screen_from = (_float(screen.get("seconds")) or 0.0), "recorded"

        archs, values = truth.column(dataset, args.metric)
        keep = [i for i, a in enumerate(archs) if not a.is_zero]
        known = int(np.isfinite(values).sum())
        if known < NUM_ARCHS:  # random search and the space's best are those of the table
            print(
                f"nasnc report: warning: {truth.description} holds {dataset} {args.metric} "
                f"accuracy for {known:,} of the space's {NUM_ARCHS:,} cells; random search "
                "draws from those and 'the space's best' is theirs",
                file=sys.stderr,
            )
        best_arch, space_best = truth.best(dataset, args.metric)
        result = anytime_regret(
            [c.cost_s for c in cells],
            accuracy,
            values[keep],
            groups=[archs[i].canonical() for i in keep],
            start_cost=screen_cost,
            draw_cost=draw_cost,
            space_best=space_best,
            n_seeds=args.seeds,
            seed=args.seed,
        )
        rows = [
            {
                "trial": c.trial,
                "state": c.state.lower(),
                "arch": c.arch,
                "cache_hit": c.cache_hit,
                "trial_cost_s": c.cost_s,
                **row,
            }
            for c, row in zip(cells, result.rows())
        ]
        counts = {
            "cells": len(cells),
            "completed": sum(c.state == "COMPLETE" for c in cells),
            "pruned": sum(c.state == "PRUNED" for c in cells),
            "failed": sum(c.state == "FAIL" for c in cells),
            "cache_hits": sum(c.cache_hit for c in cells),
            "cost_from_duration": sum(c.cost_from == "duration" for c in cells),
            "missing_truth": int(missing),
            **{f"skipped_{k}": v for k, v in skipped.items()},
        }
        label = f"{truth.description} {dataset} {args.metric} accuracy"
        if plot is not None:
            plot_anytime(
                result,
                plot,
                title=f"study {name}: anytime best vs random search ({label})",
                ylabel=f"{dataset} {args.metric} accuracy (%)",
            )
            print(f"wrote {plot}", file=sys.stderr)
        payload = {
            "study": name,
            "storage": shown,
            "benchmark": truth.description,
            "dataset": dataset,
            "metric": args.metric,
            "space_best": space_best,
            "space_best_arch": str(best_arch),
            "screen": {
                **screen,
                "cost_s": screen_cost,
                "cost_from": screen_from,
            },
            "draw_cost_s": draw_cost,
            "draw_cost_from": draw_from,
            "n_seeds": args.seeds,
            "seed": args.seed,
            "counts": counts,
            "final": rows[-1],
            "rows": rows,
        }
        if args.format == "json":
            emit([], [], "json", json_payload=payload)
        elif args.format == "csv":
            emit(rows, list(rows[0]), "csv")
        else:
            self._table(payload, rows)
        return 0

    @staticmethod
    def _table(p: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        n = p["counts"]
        skipped = [
            f"{n[k]} {k[len('skipped_') :].replace('_', ' ')}"
            for k in n
            if k.startswith("skipped_") and n[k]
        ]
        print(
            f"study {p['study']} ({p['storage']}): {n['cells']} trained cells "
            f"({n['completed']} completed, {n['pruned']} pruned, {n['failed']} failed; "
            f"{n['cache_hits']} from the cache)"
            + (f"; trials skipped: {', '.join(skipped)}" if skipped else "")
        )
        print(
            f"ground truth: {p['benchmark']} {p['dataset']} {p['metric']} accuracy; best in the "
            f"space {p['space_best']:.2f} %"
        )
        screen = p["screen"]
        if screen.get("size"):
            note = ""
            # a twin served by its first in the same pool costs a cold screen nothing
            cached = int(screen.get("cached") or 0) - int(screen.get("twins") or 0)
            if cached > 0 and screen["cost_from"] == "recorded":
                cells = "1 cell" if cached == 1 else f"{cached} cells"
                note = (
                    f" (the scores of {cells} came from the cache: a cold screen costs "
                    "more; --screen-cost SECONDS charges it)"
                )
            print(f"screen: {screen['size']} cells, {screen['cost_s']:.1f} s charged first{note}")
        print(
            f"random search: {p['n_seeds']} runs of distinct cells, {p['draw_cost_s']:.1f} s "
            f"per draw ({p['draw_cost_from']}); mean ± sd over runs"
        )
        if n["missing_truth"]:
            print(f"{n['missing_truth']} completed cells have no ground truth (not found)")
        table = [
            {
                "cell": r["cell"],
                "trial": r["trial"],
                "state": r["state"],
                "cost_s": r["cost_s"],
                "acc": r["accuracy"] if math.isfinite(r["accuracy"]) else None,
                # before the first found cell there is no best yet: "-" as for acc
                "best": r["best"] if math.isfinite(r["best"]) else None,
                "regret": r["regret"] if math.isfinite(r["regret"]) else None,
                "random_same_cells": _pm(r["random_cells_mean"], r["random_cells_sd"]),
                "draws": r["random_draws"],
                "random_same_seconds": _pm(r["random_cost_mean"], r["random_cost_sd"]),
            }
            for r in rows
        ]
        columns = ["cell", "trial", "state", "cost_s", "acc", "best", "regret"]
        columns += ["random_same_cells", "draws", "random_same_seconds"]
        print()
        print(format_table(table, columns, digits=2))
        f = p["final"]
        found = (
            f"best found {f['best']:.2f} % (regret {f['regret']:.2f} points)"
            if math.isfinite(f["best"])
            else "nothing found (no completed cell with ground truth)"
        )
        print(
            f"\nafter {f['cell']} cells and {f['cost_s']:.1f} s: {found}; random search with "
            f"the same cells {_pm(f['random_cells_mean'], f['random_cells_sd'])} % "
            f"(regret {f['random_cells_regret']:.2f}), with the same seconds "
            f"({f['random_draws']} draws) {_pm(f['random_cost_mean'], f['random_cost_sd'])} %"
            + (
                f" (regret {f['random_cost_regret']:.2f})"
                if math.isfinite(f["random_cost_regret"])
                else ""
            )
        )


def _check_storage_exists(url: str) -> None:
    """A local storage file that does not exist is a usage error (never created empty)."""
    from .._storage import local_file

    if url in ("journal:", "sqlite:///"):
        raise UsageError(f"storage {url!r} names no file")
    path = local_file(url)
    if path is not None and path.is_dir():
        raise UsageError(f"storage {url!r} names a folder; name the study's file")
    if path is not None and not path.is_file():
        raise UsageError(f"no study storage at {path} (from {url})")
