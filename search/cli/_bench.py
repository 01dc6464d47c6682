"""``nasnc bench import`` and ``nasnc bench show``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nasnc._catalogue import BENCHMARK_DATASETS

from ._base import ARCH_HELP, FORMATS, Command, UsageError, emit, progress_wanted

__all__ = ["BENCH_DATASETS", "BenchImport", "BenchShow"]

#: nasnc.bench.Dataset values, from the catalogue (so that `nasnc --help` need not import scipy).
BENCH_DATASETS: tuple[str, ...] = tuple(BENCHMARK_DATASETS)

_SOURCE_HELP = (
    "'builtin', a table from `nasnc bench import` (.h5), the NAS-Bench-201 .pth, or a "
    "NATS-Bench tss directory/.pickle.pbz2 (.pth and .pbz2 are pickles, which can run "
    "code when loaded: name only files you trust)"
)


class BenchImport(Command):
    name = "bench import"
    help = "convert a benchmark file into a compact HDF5 table (no pickle, fast reload)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("source", help=_SOURCE_HELP)
        parser.add_argument("-o", "--output", required=True, help="table to write (.h5)")
        parser.add_argument(
            "--curves",
            action="store_true",
            help="also store seed-mean per-epoch accuracies (about 70 MB for a full file)",
        )
        parser.add_argument("--force", action="store_true", help="overwrite an existing table")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(self, args: argparse.Namespace) -> int:
        out = Path(args.output)
        if out.suffix.lower() not in (".h5", ".hdf5"):
            raise UsageError(f"the output table must end in .h5 or .hdf5, got {str(out)!r}")
        if out.exists() and not args.force:
            raise UsageError(f"{out} exists; pass --force to overwrite it")
        if not out.parent.is_dir():
            raise UsageError(f"-o {out}: the folder {out.parent} does not exist; create it first")
        from nasnc.bench import import_table, open_benchmark

        start = time.perf_counter()
        source = open_benchmark(args.source)
        bar = None
        progress = None
        if progress_wanted(args.no_progress):
            from tqdm import tqdm

            bar = tqdm(total=len(source.archs()), unit="arch", file=sys.stderr)

            def progress(done: int, total: int) -> None:
                assert bar is not None
                bar.update(done - bar.n)

        try:
            path = import_table(source, out, curves=args.curves, progress=progress)
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - start
        size = path.stat().st_size / 2**20
        print(
            f"wrote {path} ({len(source.archs())} architectures with results, "
            f"{size:.1f} MiB) in {seconds:.1f} s"
        )
        return 0


class BenchShow(Command):
    name = "bench show"
    help = "everything a benchmark knows about one architecture"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("arch", help=f"{ARCH_HELP}, or '#N' for the benchmark's index N")
        parser.add_argument("--benchmark", default="builtin", help=_SOURCE_HELP)
        parser.add_argument(
            "--dataset",
            choices=BENCH_DATASETS,
            action="append",
            help="only this dataset (repeatable; default: all)",
        )
        parser.add_argument("--format", choices=FORMATS, default="table")

    def run(self, args: argparse.Namespace) -> int:
        from nasnc.bench import open_benchmark, parse_arch_or_index

        truth = open_benchmark(args.benchmark)
        arch = parse_arch_or_index(args.arch, truth)
        info = truth.describe(arch, datasets=args.dataset)
        if args.format == "json":
            emit([], [], "json", json_payload=info)
            return 0
        if args.format == "csv":  # one row per result, the cell's identity on each
            rows = [
                {
                    "arch": info["arch"],
                    "index": info["index"],
                    "dataset": r["dataset"],
                    "schedule_epochs": r["schedule"],
                    "metric": r["metric"],
                    "value": r["value"],
                    "seeds": " ".join(f"{s}:{v}" for s, v in r["seeds"].items()),
                }
                for r in info["results"]
            ]
            columns = ["arch", "index", "dataset", "schedule_epochs", "metric", "value", "seeds"]
            emit(rows, columns, "csv")
            return 0
        for key in ("arch", "code", "canonical", "index", "source"):
            value = info[key]
            print(f"{key:<9}  {'-' if value is None else value}")
        rows = [
            {
                "dataset": r["dataset"],
                "schedule": f"{r['schedule']} ep",
                "metric": r["metric"],
                "value": r["value"],
                "seeds": " ".join(f"{s}:{v:.2f}" for s, v in r["seeds"].items()),
            }
            for r in info["results"]
        ]
        if not rows:
            print("no results for this architecture in this source")
            return 0
        print()
        emit(rows, ["dataset", "schedule", "metric", "value", "seeds"], "table")
        return 0
