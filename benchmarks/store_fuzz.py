"""Byte-flip fuzzing of the HDF5 cache: the long version of tests/test_store_damage.py.

Flips one byte per trial in a copy of a small cache (entry files and a packed
shard written by ``Store``), cycling over file kinds (entry, pack) and byte
classes (superblock, metadata, strings, data), then runs every read path as a
reader and as a writer (see ``nasnc.store._fuzz``). Prints the outcome counts
per file kind and class; any crash, corrupt value served or blocked rewrite is
a bug, and the first few are printed with the offset that caused them.

    python benchmarks/store_fuzz.py --flips 2000 --seed 0

Exit status 1 when any flip crashed, served a wrong value, or blocked a rewrite.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from nasnc.store._fuzz import CLASSES, OUTCOMES, flip_fuzz


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=2000, help="single-byte flips (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # one "damaged file" warning per flip and read path
    start = time.perf_counter()
    report = flip_fuzz(args.flips, seed=args.seed)
    elapsed = time.perf_counter() - start
    print(f"{report.flips} flips, seed {args.seed}, {elapsed:.0f} s")
    print(f"{'file':6} {'class':11}" + "".join(f"{o:>10}" for o in OUTCOMES))
    for kind in ("entry", "pack"):
        for cls in CLASSES:
            counts = [report.counts[(kind, cls, o)] for o in OUTCOMES]
            print(f"{kind:6} {cls:11}" + "".join(f"{n:>10d}" for n in counts))
    print(f"{'total':18}" + "".join(f"{report.total(o):>10d}" for o in OUTCOMES))
    for failure in report.failures:
        print("FAIL", failure)
    bad = sum(report.total(o) for o in ("crash", "corrupt", "blocked"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
