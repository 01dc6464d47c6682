"""``nasnc scores``: query the cached capacitance scores of an HDF5 cache."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nasnc._config import DEFAULT_CACHE
from nasnc.space import Arch
from nasnc.store import ENTRY_KINDS, EntryInfo, Store

from ._base import (
    ARCH_HELP,
    CACHE_HELP,
    FORMATS,
    Command,
    UsageError,
    emit,
    positive_int,
    resolve_cache_dataset,
)

__all__ = ["Scores"]

#: Columns every row has, in table order (scores follow, then the arch string).
FIXED = (
    "rank",
    "key",
    "dataset",
    "seed",
    "beta_eff",
    "beta_eff_std",
    "proxy_valid_acc",
    "cost_s",
    "diverged",
    "pruned",
    "score_only",
)
#: Extra columns of csv and json output.
DETAILS = ("beta_eff_last", "canonical", "config_hash", "created")


def score_column(name: str) -> str:
    """The row key of a baseline score (prefixed when it collides with a fixed column)."""
    return f"score_{name}" if name in (*FIXED, *DETAILS, "arch") else name


def rows_of(infos: list[EntryInfo]) -> tuple[list[dict[str, Any]], list[str]]:
    """One flat row per entry and the sorted score column names."""
    score_names = sorted({n for i in infos for n in i.scores})
    rows = []
    for rank, info in enumerate(infos, start=1):
        row: dict[str, Any] = {
            "rank": rank,
            "key": info.key,
            "arch": info.arch,
            "dataset": info.dataset,
            "seed": info.seed,
            "canonical": info.canonical,
            "config_hash": info.config_hash,
            "created": info.created,
        }
        for name in ("beta_eff", "beta_eff_std", "beta_eff_last", "proxy_valid_acc", "cost_s"):
            row[name] = info.value(name)
        row["diverged"] = bool(info.summary.get("diverged", False))
        # a pruned run's readings are partial: ranked among the complete ones, it says so
        row["pruned"] = bool(info.summary.get("pruned", False))
        # a screen's free scores: nothing trained, cost_s is the scoring time
        row["score_only"] = bool(info.summary.get("score_only", False))
        for name in score_names:
            row[score_column(name)] = info.scores.get(name, float("nan"))
        rows.append(row)
    return rows, [score_column(n) for n in score_names]


class Scores(Command):
    name = "scores"
    help = "cached βeff and baseline scores, best first (the whole cache, one arch, a dataset)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--cache", default=DEFAULT_CACHE, metavar="PATH", help=CACHE_HELP)
        parser.add_argument(
            "--top", type=positive_int, metavar="K", help="only the K best (default: all)"
        )
        parser.add_argument(
            "--arch",
            help=f"only this cell and its isomorphic twins: {ARCH_HELP}",
        )
        parser.add_argument(
            "--dataset", help="only this dataset (e.g. cifar10); one not in the cache exits 2"
        )
        parser.add_argument(
            "--config-hash",
            help="only entries of this proxy config hash (a unique prefix will do)",
        )
        parser.add_argument(
            "--kind",
            action="append",
            choices=ENTRY_KINDS,
            help="only entries of this kind (repeat for several; default: all): a finished "
            "run, one a pruner stopped, one whose loss diverged, or a screen's free scores",
        )
        parser.add_argument(
            "--by",
            default="beta_eff",
            help="rank by a summary scalar or a baseline score, descending, NaN last "
            "(default: beta_eff)",
        )
        parser.add_argument("--format", choices=FORMATS, default="table")

    def run(self, args: argparse.Namespace) -> int:
        arch = Arch.parse(args.arch) if args.arch is not None else None
        store = Store(args.cache, create=False, warn_damaged=False)  # reported below
        try:
            self._list(store, arch, args)
        finally:  # reported even when the listing stops on an error
            for damage in store.damaged:
                print(f"nasnc scores: warning: skipped damaged file {damage}", file=sys.stderr)
        if store.quarantined:
            print(
                f"nasnc scores: note: {store.path / 'quarantine'} holds "
                f"{len(store.quarantined)} damaged file(s) set aside earlier (their entries "
                "are recomputed when needed; delete them at will)",
                file=sys.stderr,
            )
        return 0

    @staticmethod
    def _list(store: Store, arch: Arch | None, args: argparse.Namespace) -> None:
        """Print the entries the options select, ranked."""
        dataset = args.dataset
        if dataset is not None:
            held = {info.dataset for info in store.index()}
            dataset, _setup = resolve_cache_dataset(dataset, held, args.cache)
        config_hash = args.config_hash
        if config_hash is not None:
            hashes = sorted({info.config_hash for info in store.index()})
            chosen = [h for h in hashes if h.startswith(config_hash)]
            if len(chosen) != 1:
                what = "matches none" if not chosen else f"matches {len(chosen)}"
                raise UsageError(
                    f"--config-hash {config_hash!r} {what} of the hashes in {args.cache} "
                    f"({', '.join(hashes) or 'none'}); give a unique prefix"
                )
            config_hash = chosen[0]
        infos = store.rank(
            args.by,
            k=args.top,
            dataset=dataset,
            arch=arch,
            config_hash=config_hash,
            kinds=args.kind,
        )
        rows, score_columns = rows_of(infos)
        if args.format == "table":
            columns = [*FIXED, *score_columns, "arch"]
        else:
            columns = [*FIXED, *DETAILS, *score_columns, "arch"]
        if args.format == "json":
            emit(rows, columns, "json", json_payload=[{c: r[c] for c in columns} for r in rows])
        else:
            emit(rows, columns, args.format)
