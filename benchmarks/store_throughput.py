"""Throughput of the HDF5 trajectory cache: put, get, and top(10) over 10,000 entries.

    .venv/bin/python benchmarks/store_throughput.py            # 10,000 entries
    .venv/bin/python benchmarks/store_throughput.py --n 2000   # quicker

Prints, from one run on one disk: puts/s with and without fsync, gets/s from
entry files and from packed shards, ``top(10)`` and ``rank`` over ``--n``
entries in packed shards (cold: a fresh Store with empty caches; warm: the
same Store again), and the same ``top(10)`` over entry files that were never
compacted (a ``--loose`` sample, extrapolated per entry to ``--n``), with ratios.
Entries are synthetic (:func:`nasnc.testing.make_entry`, 20 report points,
11 trajectory columns, 7 scores). The OS page cache is warm in every case.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nasnc.space import Arch
from nasnc.store import Entry, Store
from nasnc.testing import make_entry


def arch_for(i: int) -> Arch:
    return Arch.from_indices([(i // 5**j) % 5 for j in range(6)])


def entries(start: int, n: int, n_points: int) -> list[Entry]:
    return [make_entry(arch_for(i), seed=i, n_points=n_points) for i in range(start, start + n)]


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="entries in the big cache")
    parser.add_argument("--sample", type=int, default=200, help="puts timed per put mode")
    parser.add_argument("--loose", type=int, default=2_000, help="never-compacted entry files")
    parser.add_argument("--gets", type=int, default=500)
    parser.add_argument("--n-points", type=int, default=20)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to build (default: a temp dir)"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nasnc-bench-", dir=args.dir))
    rng = random.Random(0)
    print(f"cache root {root}  (pid {os.getpid()})")

    # ----------------------------------------------------------- put modes
    batch = entries(10**6, args.sample, args.n_points)
    rates = {}
    for label, kwargs in (
        ("put, fsync (durable=True, default)", {"durable": True}),
        ("put, no fsync (durable=False)", {"durable": False}),
    ):
        store = Store(root / label.split(",")[1].strip().split()[0], compact_every=None, **kwargs)
        rates[label] = args.sample / timed(lambda s=store: [s.put(e) for e in batch])
    # --------------------------------------------------------- the big cache
    big = Store(root / "big", durable=False)  # defaults: compact_every=32, fanout=4
    todo = entries(0, args.n, args.n_points)
    build = timed(lambda: [big.put(e) for e in todo])
    rates[f"put {args.n:,} with auto-compaction (no fsync)"] = args.n / build
    stats = big.stats()
    keys = big.keys()

    # ---------------------------------------------------------------- gets
    sample = rng.sample(keys, min(args.gets, len(keys)))
    cold = Store(root / "big", create=False)
    get_cold = timed(lambda: [cold.get(k) for k in sample])
    get_warm = timed(lambda: [cold.get(k) for k in sample])
    loose_store = Store(root / "loose", durable=False, compact_every=None)
    loose_keys = [loose_store.put(e) for e in entries(0, args.loose, args.n_points)]
    loose_sample = rng.sample(loose_keys, min(args.gets, len(loose_keys)))
    get_loose = timed(lambda: [loose_store.get(k) for k in loose_sample])

    # ------------------------------------------------------------- ranking
    top_cold = timed(lambda: Store(root / "big", create=False).top(10))
    warm_store = Store(root / "big", create=False)
    warm_store.top(10)
    top_warm = statistics.median(timed(lambda: warm_store.top(10)) for _ in range(5))
    rank_cold = timed(lambda: Store(root / "big", create=False).rank("synflow", k=10))
    len_cold = timed(lambda: len(Store(root / "big", create=False)))
    all_cold = timed(lambda: Store(root / "big", create=False).entries())
    top_loose = timed(lambda: Store(root / "loose", create=False).top(10))
    top_loose_est = top_loose / args.loose * args.n

    best = Store(root / "big", create=False).top(10)
    assert len(best) == 10
    assert all(a.summary["beta_eff"] >= b.summary["beta_eff"] for a, b in itertools.pairwise(best))

    print()
    print(f"{'operation':58s} {'figure':>14s}")
    for label, rate in rates.items():
        print(f"{label:58s} {rate:10.0f} /s")
    print(
        f"{'get, cold Store (' + str(len(sample)) + ' random keys, packed)':58s} "
        f"{len(sample) / get_cold:10.0f} /s"
    )
    print(f"{'get, warm Store (packed)':58s} {len(sample) / get_warm:10.0f} /s")
    print(f"{'get, entry files':58s} {len(loose_sample) / get_loose:10.0f} /s")
    print(f"{f'top(10) over {args.n:,}, packed, cold Store':58s} {top_cold * 1e3:11.1f} ms")
    print(f"{f'top(10) over {args.n:,}, packed, warm Store':58s} {top_warm * 1e3:11.1f} ms")
    print(f"{f'rank(synflow, k=10) over {args.n:,}, cold':58s} {rank_cold * 1e3:11.1f} ms")
    print(f"{f'len() over {args.n:,}, cold':58s} {len_cold * 1e3:11.1f} ms")
    print(f"{f'entries() over {args.n:,} (all trajectories), cold':58s} {all_cold * 1e3:11.1f} ms")
    print(f"{f'top(10) over {args.loose:,} entry files, cold':58s} {top_loose * 1e3:11.1f} ms")
    print(
        f"{f'  ... per entry x {args.n:,} (estimate, never compacted)':58s} "
        f"{top_loose_est * 1e3:11.1f} ms"
    )
    print()
    print(
        f"packed cold top(10) is {top_loose_est / top_cold:.0f}x faster than scanning "
        f"{args.n:,} entry files; target < 1000 ms: {'met' if top_cold < 1 else 'MISSED'}"
    )
    ratio = rates["put, no fsync (durable=False)"] / rates["put, fsync (durable=True, default)"]
    print(f"fsync costs {ratio:.1f}x in put throughput")
    print(
        f"big cache: {stats['packs']} shards + {stats['loose_files']} entry files, "
        f"{du(root / 'big') / args.n / 1024:.1f} KiB/entry packed vs "
        f"{du(root / 'loose') / args.loose / 1024:.1f} KiB/entry as entry files"
    )


if __name__ == "__main__":
    main()
