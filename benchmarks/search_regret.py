"""Search regret: what a two-stage search picks, against random search at the same budget.

Stage 1 (free scores at initialisation on the CPU proxy network, rank
aggregate of NASWOT, synflow, jacob_cov and FLOPs) is run for real over a
union pool (cached: a rerun scores nothing). Each seed draws its own pool of
``--pool`` cells from it, ranks them within that pool and reports, against the
builtin ground truth (cifar10-valid, 200-epoch validation accuracy; the
space's best is 91.61 %):

* ``free pick``: the top-1 cell by the aggregate (the search's default pick);
* ``best in top-K``: the best true accuracy inside the shortlist, i.e. what
  stage 2 finds if its in-shortlist signal ranks the top perfectly (an upper
  bound for stage 2);
* ``random search (oracle)``: the best true accuracy among as many random
  cells as the same wall-clock buys at ``--train-s`` seconds per trained cell
  (it assumes random search then picks its best cell without error: an upper
  bound for random search).

With ``--train`` the shortlist of each seed is trained at the proxy budget
(cached; about 40 s per cell on one core) and the picks by proxy accuracy and
by βeff inside it are reported too.

    python benchmarks/search_regret.py                       # 5 seeds, pools of 1000
    python benchmarks/search_regret.py --union 600 --pool 300 --seeds 5
    python benchmarks/search_regret.py --train --top-k 5 --seeds 2

Stage sizes are scaled to the machine: state them with the numbers.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nasnc.bench import open_benchmark
from nasnc.pipeline import ProxyConfig, evaluate_arch, load_proxy_data, screen_archs
from nasnc.proxies import AGGREGATES, rank_aggregate
from nasnc.space import sample_archs
from nasnc.store import Store


def _ms(values: list[float]) -> str:
    arr = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if not arr.size:
        return "-"
    return f"{arr.mean():6.2f} ± {arr.std(ddof=1) if arr.size > 1 else 0.0:4.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--union", type=int, default=2000, help="cells screened in all")
    parser.add_argument("--pool", type=int, default=1000, help="stage-1 pool per seed")
    parser.add_argument("--top-k", type=int, default=10, help="stage-2 shortlist")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=1800.0, help="wall-clock per search")
    parser.add_argument(
        "--train-s", type=float, default=41.6, help="seconds per trained cell (DESIGN: 41.6)"
    )
    parser.add_argument("--train", action="store_true", help="train each shortlist (slow)")
    parser.add_argument(
        "--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--cache", default="runs/search-regret")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not 0 < args.top_k <= args.pool <= args.union:
        parser.error("need 0 < --top-k <= --pool <= --union")

    proxy = ProxyConfig()
    data = load_proxy_data(proxy, args.data_root, device="cpu")
    store = Store(args.cache, durable=False)
    truth = open_benchmark("builtin")
    _best_arch, space_best = truth.best("cifar10-valid", "valid")
    union = sample_archs(args.union, seed=12345, unique=True, exclude_zero=True)
    names = AGGREGATES["aggregate"]
    start = time.perf_counter()
    screen = screen_archs(union, proxy, data, names=names, store=store, device="cpu")
    per_cell = float(np.median(screen.per_cell_s)) if screen.per_cell_s else math.nan
    print(
        f"stage 1: {len(union)} cells screened in {time.perf_counter() - start:.1f} s "
        f"({screen.cached} from the cache; median {per_cell:.3f} s per scored cell)",
        file=sys.stderr,
    )
    acc = np.array([truth.get(a, "cifar10-valid", "valid") or math.nan for a in screen.archs])
    screen_s = args.pool * (per_cell if math.isfinite(per_cell) else 0.1)
    n_random = max(1, int(args.budget_s // args.train_s))

    rows: dict[str, list[float]] = {
        "free pick (aggregate top-1)": [],
        f"best in top-{args.top_k} (stage-2 bound)": [],
        f"random search oracle ({n_random} cells)": [],
    }
    if args.train:
        rows[f"top-{args.top_k} picked by proxy accuracy"] = []
        rows[f"top-{args.top_k} picked by beta_eff"] = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(union), size=args.pool, replace=False)
        agg = rank_aggregate({n: screen.scores[n][idx] for n in names})
        order = idx[np.argsort(-agg, kind="stable")]
        short = order[: args.top_k]
        rows["free pick (aggregate top-1)"].append(float(acc[order[0]]))
        rows[f"best in top-{args.top_k} (stage-2 bound)"].append(float(np.nanmax(acc[short])))
        rand = sample_archs(n_random, seed=1000 + seed, unique=True, exclude_zero=True)
        rand_acc = [truth.get(str(a), "cifar10-valid", "valid") or math.nan for a in rand]
        rows[f"random search oracle ({n_random} cells)"].append(float(np.nanmax(rand_acc)))
        if args.train:
            trained = [
                evaluate_arch(screen.archs[i], proxy, data, device="cpu", store=store).entry
                for i in short
            ]
            by_acc = int(np.nanargmax([e.summary["proxy_valid_acc"] for e in trained]))
            by_beta = int(np.nanargmax([e.summary["beta_eff"] for e in trained]))
            rows[f"top-{args.top_k} picked by proxy accuracy"].append(float(acc[short[by_acc]]))
            rows[f"top-{args.top_k} picked by beta_eff"].append(float(acc[short[by_beta]]))

    print(
        f"\n{args.seeds} seeds; pool {args.pool} cells per seed (of a screened union of "
        f"{args.union}), shortlist {args.top_k}; budget {args.budget_s:.0f} s at "
        f"{args.train_s:g} s per trained cell; stage 1 of a pool ≈ {screen_s:.0f} s here; "
        f"space best {space_best:.2f} % (cifar10-valid)\n"
    )
    print(f"{'method':44s} {'cifar10-valid %':>16s} {'regret':>14s}")
    for name, values in rows.items():
        regrets = [space_best - v for v in values]
        print(f"{name:44s} {_ms(values):>16s} {_ms(regrets):>14s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
