"""``nasnc bench import`` and ``nasnc bench show``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nasnc import NasncError
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
        if out.is_dir():
            raise UsageError(f"-o {out} is a folder; name a file")
        if out.exists() and not args.force:
            raise UsageError(f"{out} exists; pass --force to overwrite it")
        if out.exists():
            _check_overwritable(out)
        if not out.parent.is_dir():
            what = "is a file, not a folder" if out.parent.exists() else "does not exist"
            raise UsageError(f"-o {out}: {out.parent} {what}; create the folder first")
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
        except OSError as exc:  # a read-only folder, a full disk
            raise NasncError(f"cannot write the table {out}: {exc.strerror or exc}") from exc
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


def _check_overwritable(path: Path) -> None:
    """``--force`` replaces a benchmark table only, never another file (a cache's)."""
    from nasnc.bench import TABLE_FORMAT, is_table

    if not is_table(path):
        raise UsageError(
            f"-o {path} exists and is not a benchmark table ({TABLE_FORMAT!r}); "
            "--force overwrites only a table: name another file"
        )


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
        from nasnc.bench import Dataset, Metric, Schedule, open_benchmark, parse_arch_or_index

        truth = open_benchmark(args.benchmark)
        arch = parse_arch_or_index(args.arch, truth)

        def held(ds: Dataset) -> bool:
            return any(truth.supports(ds, me, schedule=sc) for me in Metric for sc in Schedule)

        lacking = [d for d in args.dataset or () if not held(Dataset.parse(d))]
        if lacking:
            has = [d.value for d in Dataset if held(d)]
            raise UsageError(
                f"{truth.description} has no results for dataset {lacking[0]!r} "
                f"(it has {', '.join(has) or 'none'})"
            )
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
