"""``nasnc compare``: cached scores against benchmark ground truth."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from nasnc._config import DEFAULT_CACHE
from nasnc._errors import ConfigError, StoreError

from ._base import (
    CACHE_HELP,
    FORMATS,
    Command,
    UsageError,
    check_writable_folder,
    emit,
    resolve_cache_dataset,
    seed_int,
)
from ._bench import BENCH_DATASETS

__all__ = ["RECOMPUTED_PREFIX", "Compare", "with_recomputed"]

#: Score-name prefix of a βeff variant recomputed from weight snapshots (``--recompute``).
RECOMPUTED_PREFIX = "snapshots."


def with_recomputed(entries: list[Any], variants: list[str]) -> tuple[list[Any], dict[str, int]]:
    """``entries`` with each variant recomputed from their weight snapshots added to their
    scores as ``snapshots.<variant>``: its value at the run's last snapshot (a pruned run's
    where it stopped). An entry without the snapshots a variant needs (none kept, or
    probe snapshots for a whole-network variant) gets NaN; the second value counts them
    per variant."""
    import dataclasses

    from nasnc.pipeline import beta_eff_from_snapshots

    out = []
    lacking = dict.fromkeys(variants, 0)
    for entry in entries:
        extra: dict[str, float] = {}
        for variant in variants:
            try:
                values = beta_eff_from_snapshots(entry, variant)[variant]
                extra[RECOMPUTED_PREFIX + variant] = float(values[-1])
            except ConfigError:  # the variant was checked: these snapshots lack what it needs
                extra[RECOMPUTED_PREFIX + variant] = math.nan
                lacking[variant] += 1
        out.append(dataclasses.replace(entry, scores={**(entry.scores or {}), **extra}))
    return out, lacking


def _listed(option: str, given: list[str] | None, known: Collection[str]) -> list[str]:
    """The names given to a repeatable, comma-separated ``option``, each one of ``known``
    (in order, duplicates dropped); a usage error names the ones that are not."""
    names = [v.strip() for arg in given or [] for v in arg.split(",") if v.strip()]
    bad = [v for v in names if v not in known]
    if bad or (given is not None and not names):
        raise UsageError(
            f"{option} takes {', '.join(known)} (repeated or comma-separated), "
            f"got {','.join(bad or given or [])!r}"
        )
    return list(dict.fromkeys(names))


def _used_line(used: dict[str, int]) -> str:
    parts = [f"{used['complete']} complete", f"{used['pruned']} pruned"]
    parts += [f"{used[k]} {k.replace('_', '-')}" for k in ("diverged", "score_only") if used[k]]
    line = f"entries used: {used['n']} ({', '.join(parts)})"
    if used["pruned"]:
        line += (
            "; pruned runs' βeff and proxy accuracy are where they stopped "
            "(--exclude-pruned leaves them out)"
        )
    if used["excluded_pruned"]:
        line += f"; {used['excluded_pruned']} pruned runs left out (--exclude-pruned)"
    return line


def _ci(pair: Any) -> str:
    lo, hi = pair
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "-"
    return f"[{lo:+.3f}, {hi:+.3f}]"


class Compare(Command):
    name = "compare"
    help = "signed rank correlations of cached scores with benchmark ground truth"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--cache", default=DEFAULT_CACHE, metavar="PATH", help=CACHE_HELP)
        parser.add_argument(
            "--benchmark",
            default="builtin",
            help="'builtin' (default), a table from `nasnc bench import`, or an official file",
        )
        parser.add_argument(
            "--dataset",
            help=(
                "the cache's proxy dataset (cifar10, cifar100, ImageNet16-120); default: the "
                "only one in the cache. A benchmark name such as cifar10-valid also selects "
                "the ground truth"
            ),
        )
        parser.add_argument(
            "--truth-dataset",
            choices=BENCH_DATASETS,
            help="benchmark dataset (default: cifar10 -> cifar10-valid, others the same)",
        )
        parser.add_argument("--metric", choices=("valid", "test"), default="valid")
        parser.add_argument(
            "--config-hash",
            help="proxy configuration (hash prefix) for the main table (default: the largest)",
        )
        parser.add_argument(
            "--plot",
            metavar="DIR",
            help="write PNG figures into DIR (created if missing; a rerun replaces its figures)",
        )
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default="table",
            help="table (default), csv (one row per score) or json (everything)",
        )
        parser.add_argument(
            "--calibrate",
            type=int,
            metavar="N",
            help="fit the capacitance calibrator on N architectures, report error on the rest",
        )
        parser.add_argument(
            "--exclude-pruned",
            action="store_true",
            help="leave out pruned trials' partial runs (summary 'pruned'); by default they "
            "are used, so a study's cache is not biased toward the cells its pruner kept",
        )
        parser.add_argument(
            "--pareto",
            action="append",
            metavar="COST",
            help="also list the cells non-dominated in (score max, COST min) with their "
            "benchmark accuracy; COST: params, flops or latency (cached scores; repeat or "
            "comma-separate for several). With --format csv the front is what is printed",
        )
        parser.add_argument(
            "--pareto-score",
            metavar="NAME",
            help="the front's score (default: aggregate when the entries give it, else beta_eff)",
        )
        parser.add_argument(
            "--recompute",
            action="append",
            metavar="VARIANT",
            help="also rank a βeff variant recomputed from the runs' weight snapshots (proxy "
            "option snapshots) at their last report point, as score snapshots.VARIANT; "
            "repeat or comma-separate. VARIANT: beta_eff_<chain|product>[_sf] (the probe), "
            "beta_eff_probe_dw_* (the probe's W - W0), beta_eff_net_* or beta_eff_dw_* (whole "
            "network, W - W0; network snapshots)",
        )
        parser.add_argument("--top-k", type=int, default=10, help="k of top-k precision")
        parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
        parser.add_argument("--seed", type=seed_int, default=0, help="bootstrap / split seed")

    def run(self, args: argparse.Namespace) -> int:
        from nasnc.analysis import PARETO_COSTS, compare_scores, plot_comparison, truth_dataset_for
        from nasnc.bench import open_benchmark
        from nasnc.capacitance import SNAPSHOT_VARIANTS
        from nasnc.store import ENTRY_KINDS, Store

        variants = _listed("--recompute", args.recompute, SNAPSHOT_VARIANTS)
        costs = _listed("--pareto", args.pareto, PARETO_COSTS)
        if args.pareto_score is not None and not costs:
            raise UsageError("--pareto-score needs --pareto COST")

        if args.top_k < 1:
            raise UsageError(f"--top-k must be positive, got {args.top_k}")
        if args.n_boot < 1:
            raise UsageError(f"--n-boot must be positive, got {args.n_boot}")
        if args.plot is not None and Path(args.plot).exists() and not Path(args.plot).is_dir():
            raise UsageError(f"--plot {args.plot} is an existing file; name a folder for the PNGs")
        store = Store(args.cache, create=False)  # a cache that is not there: no plot folder
        if args.plot is not None:
            check_writable_folder(Path(args.plot), f"--plot {args.plot}", create=True)
        datasets = sorted({info.dataset for info in store.index()})
        cache_ds, truth_ds = args.dataset, args.truth_dataset
        if cache_ds is not None:
            cache_ds, setup = resolve_cache_dataset(cache_ds, datasets, args.cache)
            if setup is not None and truth_ds is not None and truth_ds != setup:
                raise UsageError(
                    f"--dataset {args.dataset} names the ground truth {setup}, but "
                    f"--truth-dataset {truth_ds} another; give one of them"
                )
            truth_ds = truth_ds or setup
        if cache_ds is None:
            if not datasets:
                raise UsageError(f"the cache {args.cache} holds no entries to compare")
            if len(datasets) != 1:
                raise UsageError(
                    f"the cache {args.cache} holds {', '.join(datasets)}; choose one with --dataset"
                )
            cache_ds = datasets[0]
        if truth_ds is None:
            truth_ds = truth_dataset_for(cache_ds).value
        entries = store.entries(dataset=cache_ds)
        if not entries:
            raise StoreError(f"the cache {args.cache} has no entries for dataset {cache_ds!r}")
        n_pruned = sum(e.kind == "pruned" for e in entries)
        if args.exclude_pruned:
            entries = [e for e in entries if e.kind != "pruned"]
            if not entries:
                raise UsageError(
                    f"--exclude-pruned leaves nothing: the cache {args.cache} holds only pruned "
                    f"runs ({n_pruned}) for dataset {cache_ds!r}"
                )
        if variants:
            entries, lacking = with_recomputed(entries, variants)
            for variant, n in lacking.items():
                if n:
                    print(
                        f"--recompute {variant}: {n} of {len(entries)} entries lack the weight "
                        "snapshots it needs (left out of its row)",
                        file=sys.stderr,
                    )
        truth = open_benchmark(args.benchmark)
        result = compare_scores(
            entries,
            truth,
            truth_ds,
            args.metric,
            config_hash=args.config_hash,
            k=args.top_k,
            n_boot=args.n_boot,
            seed=args.seed,
            calibrate_n=args.calibrate,
            return_rows=args.plot is not None,
            pareto=costs,
            pareto_score=args.pareto_score,
        )
        if result["n"] == 0:
            raise UsageError(
                f"{truth.description} has no {truth_ds} {args.metric} accuracy for any of the "
                f"{len(entries)} cached cells compared; nothing to rank"
            )
        if args.top_k >= result["n"]:
            print(
                f"nasnc compare: note: --top-k {args.top_k} is not below the {result['n']} "
                "compared cells, so every top-k precision is undefined (nan)",
                file=sys.stderr,
            )
        used = [e for e in entries if e.config_hash == result.get("config_hash")]
        result["entries_used"] = {
            **{kind: sum(e.kind == kind for e in used) for kind in ENTRY_KINDS},
            "n": len(used),
            "excluded_pruned": n_pruned if args.exclude_pruned else 0,
        }
        if args.plot is not None:
            for path in plot_comparison(result, args.plot):
                print(f"wrote {path}", file=sys.stderr)
            result.pop("rows", None)
        if args.format == "json":
            emit([], [], "json", json_payload=result)
        elif args.format == "csv" and costs:
            rows, columns = self._front_rows(result)
            emit(rows, columns, "csv")
        elif args.format == "csv":
            rows, columns = self._score_rows(result, args.top_k)
            emit(rows, columns, "csv")
        else:
            self._table(result, args.top_k)
            for front in (result.get("pareto_front") or {}).values():
                self._front_table(front)
        return 0

    @staticmethod
    def _front_rows(result: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        """One row per member of each front (for CSV), cost ascending within a front."""
        rows = [
            {
                "cost_name": front["cost"],
                "score_name": front["score"],
                "arch": member["arch"],
                "score": member["score"],
                "cost": member["cost"],
                "true_acc": member["true_acc"],
                "n": front["n"],
                "best_on_front": front["best_on_front"],
                "space_best": front["space_best"],
                "regret": front["regret"],
                "dataset": result["dataset"],
                "metric": result["metric"],
            }
            for front in result["pareto_front"].values()
            for member in front["front"]
        ]
        columns = [
            "cost_name",
            "score_name",
            "arch",
            "score",
            "cost",
            "true_acc",
            "n",
            "best_on_front",
            "space_best",
            "regret",
            "dataset",
            "metric",
        ]
        return rows, columns

    @staticmethod
    def _front_table(front: dict[str, Any]) -> None:
        dropped = f"; {front['n_dropped']} without both left out" if front["n_dropped"] else ""
        print(
            f"\nPareto front of {front['score']} (max) vs {front['cost']} (min): "
            f"{front['n_front']} of {front['n']} cells{dropped}"
        )
        if front["front"]:
            score, cost = front["score"], front["cost"]
            rows = [
                {"arch": m["arch"], score: m["score"], cost: m["cost"], "true_acc": m["true_acc"]}
                for m in front["front"]
            ]
            emit(rows, ["arch", score, cost, "true_acc"], "table")
        best = front["best_on_front"]
        if best is None:
            print("no ground truth for any cell on the front")
            return
        line = f"best on the front: {best:.2f} ({front['best_on_front_arch']})"
        if front["regret"] is not None:
            line += (
                f"; best in the benchmark: {front['space_best']:.2f}; regret {front['regret']:.2f}"
            )
        print(line)

    @staticmethod
    def _score_rows(result: dict[str, Any], k: int) -> tuple[list[dict[str, Any]], list[str]]:
        """One row per score, every number in its own column (for CSV)."""
        from nasnc.store import ENTRY_KINDS

        used = result.get("entries_used") or {}
        rows = []
        for name, s in result["scores"].items():
            tau_lo, tau_hi = s["kendall_ci"]
            rho_lo, rho_hi = s["spearman_ci"]
            rows.append(
                {
                    "score": name,
                    "n": s["n"],
                    "kendall_tau": s["kendall_tau"],
                    "kendall_ci_low": tau_lo,
                    "kendall_ci_high": tau_hi,
                    "spearman": s["spearman"],
                    "spearman_ci_low": rho_lo,
                    "spearman_ci_high": rho_hi,
                    "pearson": s["pearson"],
                    f"top{k}_precision": s[f"top{k}_precision"],
                    "top1_regret": s["top1_regret"],
                    "dataset": result["dataset"],
                    "metric": result["metric"],
                    "cache_dataset": result["cache_dataset"],
                    **{f"n_{kind}": used.get(kind) for kind in ENTRY_KINDS},
                }
            )
        columns = list(rows[0]) if rows else ["score"]
        return rows, columns

    @staticmethod
    def _table(result: dict[str, Any], k: int) -> None:
        plural = "" if result["n"] == 1 else "s"
        print(
            f"{result['n']} architecture{plural} of {result['cache_dataset']} "
            f"({result.get('budget', '-')}) vs {result['dataset']} {result['metric']} "
            f"accuracy from {result['benchmark']}"
        )
        used = result.get("entries_used")
        if used:
            print(_used_line(used))
            others = [b for b in result["budgets"] if b["config_hash"] != result.get("config_hash")]
            if used["n"] and used["score_only"] == used["n"] and others:
                where = ", ".join(
                    f"--config-hash {b['config_hash'][:8]} ({b['n']} cells)" for b in others
                )
                print(f"these are a screen's free scores, nothing trained; other configs: {where}")
        if result["n_missing"]:
            shown = ", ".join(result["missing"][:5])
            more = f", ... (+{result['n_missing'] - 5})" if result["n_missing"] > 5 else ""
            print(f"missing from the benchmark: {result['n_missing']} ({shown}{more})")
        rows = [
            {
                "score": name,
                "n": s["n"],
                "kendall_tau": s["kendall_tau"],
                "tau_95ci": _ci(s["kendall_ci"]),
                "spearman": s["spearman"],
                "rho_95ci": _ci(s["spearman_ci"]),
                "pearson": s["pearson"],
                f"top{k}_prec": s[f"top{k}_precision"],
                "top1_regret": s["top1_regret"],
            }
            for name, s in result["scores"].items()
        ]
        columns = [
            "score",
            "n",
            "kendall_tau",
            "tau_95ci",
            "spearman",
            "rho_95ci",
            "pearson",
            f"top{k}_prec",
            "top1_regret",
        ]
        print()
        emit(rows, columns, "table")
        regret = result.get("regret")
        if regret:
            where = " (over every proxy configuration)" if len(result["budgets"]) > 1 else ""
            print(
                f"\nbest cached{where}: {regret['best_found']:.2f} "
                f"({regret['best_found_arch']}); "
                f"best in the benchmark: {regret['space_best']:.2f}; "
                f"regret {regret['regret']:.2f}"
            )
        if len(result["budgets"]) > 1:
            names = [n for n in result["scores"] if n.startswith("beta_eff")][:2]
            names += [n for n in ("proxy_valid_acc",) if n in result["scores"]]
            print("\nKendall tau per proxy configuration:")
            budget_rows = [
                {"budget": b["label"], "n": b["n"], **{n: b["kendall_tau"].get(n) for n in names}}
                for b in result["budgets"]
            ]
            emit(budget_rows, ["budget", "n", *names], "table")
        cal = result.get("calibration")
        if cal:
            print(
                f"\ncalibration ({' + '.join(cal['features'])} -> accuracy, BRR): trained on "
                f"{cal['n_train']}, tested on {cal['n_test']}: MAE {cal['mae']:.3f}, "
                f"RMSE {cal['rmse']:.3f}, mean predicted std {cal['mean_std']:.3f}, "
                f"95 % interval coverage {cal['coverage_95']:.2f} "
                f"(predicting the training mean: MAE {cal['baseline_mae']:.3f}, "
                f"RMSE {cal['baseline_rmse']:.3f})"
            )
