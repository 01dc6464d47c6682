"""Free scores on two fresh samples: which belong in the screen's rank aggregate?

Samples **C** (seed 5) and **D** (seed 6): ``--n`` cells each (default 500),
distinct, non-zero, none isomorphic to a cell of the capacitance study's
samples A and B (``benchmarks/capacitance_study.py``, 150 cells each) or of
the other fresh sample. Sample **E** (seed 7) is the third sample of the
proxy's runs (``benchmarks/proxy_budget.py --sample E``, 150 cells), disjoint
from A, B, C and D; a smaller sample is a prefix of a larger one, so
``--sample E --n 150`` scores exactly its cells. Every zero-cost score of
``nasnc.proxies`` but grasp and latency (:data:`SCORES`) is computed by the product's own stage 1,
``nasnc.pipeline.screen_archs``, on the default CPU proxy network
(``ProxyConfig()``) and its first 64 training images, and cached as
score-only entries in ``--cache`` (resumable: rerun to continue).

``--table`` ranks every score and every candidate aggregate of
:data:`CANDIDATES` against the builtin 200-epoch validation accuracy
(``--truth``, default cifar10-valid): Kendall τ and Spearman ρ with bootstrap
95 % intervals, top-10 precision, the partial τ of each added score given the
project's ``aggregate``, and the pick that matters to a search: over
``--draws`` random pools of ``--pool`` cells, how far below the pool's best
the top-1 of each aggregate lies, and the best cell of its top 10. The rule
deciding from these tables was written down before they were first printed
(docs/results.md, "ZiCo and MeCo on two fresh samples"; for the gradient βeff,
docs/capacitance-study.md, "Line 3 at initialisation").

    nice -n 19 python benchmarks/free_scores.py --sample C
    nice -n 19 python benchmarks/free_scores.py --sample D
    python benchmarks/free_scores.py --sample C --table

Samples **S1** and **S2** are the odd and even ranks of the space's 300 best
distinct cells by the free aggregate (``benchmarks/proxy_budget.py --top --n 300
--half odd|even``: where a search's shortlist comes from; the first run screens
the whole space into ``--cache``, minutes on both cores); **T1** and **T2** the
odd and even ranks 301-600. Their ``--table`` ranks each score (and the
negated gradient scores, :data:`NEGATED`) inside the sample against the
aggregate over the whole space (what a search reads), with the paired bootstrap
95 % interval of the τ gap (docs/results.md, "Free scores inside the top of the
screen"):

    python benchmarks/free_scores.py --sample S1 --table
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nasnc.bench import open_benchmark
from nasnc.metrics import correlation_summary
from nasnc.pipeline import ProxyConfig, load_proxy_data, screen_archs
from nasnc.proxies import AGGREGATES, BETA_EFF_GRAD, rank_aggregate
from nasnc.space import Arch, sample_archs
from nasnc.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
# a sibling script: samples A and B, and the same statistics
from capacitance_study import _fmt_ci, partial_tau, partial_tau_ci, study_sample

#: The fresh samples by name: their seeds. C and D score the free scores (500 cells
#: each); E is the third sample of the proxy's runs (``benchmarks/proxy_budget.py
#: --sample E``, 150 cells), drawn after the other four; F (150 cells) tests the
#: pruner's score (docs/capacitance-study.md, "Sample E").
SAMPLES = {"C": 5, "D": 6, "E": 7, "F": 8}
#: The samples at the top of the screen: how many of the space's best cells by the
#: free aggregate come before each one's :data:`TOP_N` ranks, and which half (by
#: rank) of those it is. S1 and S2 are the top 300; T1 and T2 the next 300.
TOP_SAMPLES = {"S1": (0, "odd"), "S2": (0, "even"), "T1": (300, "odd"), "T2": (300, "even")}
TOP_N = 300
#: Sizes at which an earlier fresh sample is left out of a later one (C and D were
#: drawn at 500, E at 150); one not listed is left out at the later sample's own size.
DRAWN = {"C": 500, "D": 500, "E": 150}
#: Samples A and B of the capacitance study, left out of every fresh sample:
#: (n, seed, disjoint from).
STUDIED = ((150, 1, None), (150, 2, 1))
#: Scores computed per cell (grasp: three times the cost, ranked below the others in
#: docs/results.md; latency: a wall-clock time, meaningless on a shared machine).
SCORES = (
    "params",
    "flops",
    "synflow",
    "snip",
    "grad_norm",
    "fisher",
    "jacob_cov",
    "naswot",
    "zico",
    "meco",
    BETA_EFF_GRAD,
)
#: Scores read negated inside the top of the screen: each ranked it backwards on S1 and
#: S2 (docs/results.md, "Free scores inside the top of the screen").
NEGATED = ("snip", "grad_norm", "fisher")
BASE = AGGREGATES["aggregate"]
#: The aggregates the rules choose among, each named before its first table (the
#: gradient βeff after it passed on samples A and B: docs/capacitance-study.md).
CANDIDATES: dict[str, tuple[str, ...]] = {
    "aggregate": BASE,
    "aggregate + zico": (*BASE, "zico"),
    "aggregate + meco": (*BASE, "meco"),
    "aggregate + zico + meco": (*BASE, "zico", "meco"),
    f"aggregate + {BETA_EFF_GRAD}": (*BASE, BETA_EFF_GRAD),
    "aggregate + −grad_norm": (*BASE, "−grad_norm"),
}


def with_negated(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``cols`` plus ``−name`` for each score of :data:`NEGATED` (a candidate's member)."""
    return {**cols, **{f"−{k}": -np.asarray(cols[k], dtype=float) for k in NEGATED}}


def fresh_sample(name: str, n: int) -> list[Arch]:
    """Sample ``name`` of :data:`SAMPLES`: the first ``n`` cells of its seed's draw
    not isomorphic to a cell of samples A and B or of an earlier fresh sample (each
    earlier one at its size in :data:`DRAWN`: D leaves out C's 500 cells, E leaves
    out C's and D's)."""
    taken = {a.canonical() for spec in STUDIED for a in study_sample(*spec)}
    for other, seed in SAMPLES.items():
        size = n if other == name else DRAWN.get(other, n)
        draw = sample_archs(4 * size, seed=seed, unique=True, exclude_zero=True)
        cells = [a for a in draw if a.canonical() not in taken][:size]
        if len(cells) < size:
            raise SystemExit(f"could not draw {size} fresh cells for sample {other}")
        if other == name:
            return cells
        taken |= {a.canonical() for a in cells}
    raise SystemExit(f"unknown sample {name!r}; known: {', '.join(SAMPLES)}")


def top_sample(name: str, cache: str, data_root: str) -> tuple[list[Arch], np.ndarray]:
    """Sample ``name`` of :data:`TOP_SAMPLES` and each cell's free aggregate over the
    whole space (screened into ``cache`` on first use)."""
    from proxy_budget import half_of, top_of_space  # a sibling that imports this module

    skip, half = TOP_SAMPLES[name]
    ranked = top_of_space(skip + TOP_N, cache, data_root)[skip:]
    cells = half_of(list(ranked), half)
    return [a for a, _ in cells], np.array([v for _, v in cells], dtype=float)


def score(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Every score of :data:`SCORES` for each cell of the sample (from the cache when there)."""
    config = ProxyConfig()
    if args.sample in TOP_SAMPLES:
        archs, space_aggregate = top_sample(args.sample, args.cache, args.data_root)
    else:
        archs, space_aggregate = fresh_sample(args.sample, args.n), None
    data = load_proxy_data(config, args.data_root, device="cpu", seed=0)
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            rate = (time.perf_counter() - t0) / done
            print(f"[{done}/{total}] {rate:.2f} s/cell", flush=True)

    result = screen_archs(
        archs,
        config,
        data,
        names=SCORES,
        seed=0,
        device="cpu",
        store=Store(args.cache),
        progress=progress,
    )
    print(
        f"sample {args.sample}: {len(result)} cells, {result.cached} from the cache, "
        f"{result.seconds:.0f} s",
        flush=True,
    )
    cols = {"arch": np.asarray(result.archs), **result.scores}
    if space_aggregate is not None:
        cols["space aggregate"] = space_aggregate
    return cols


def pool_picks(
    cols: dict[str, np.ndarray], gt: np.ndarray, *, pool: int, draws: int, top_k: int = 10
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per candidate aggregate, over ``draws`` random pools of ``pool`` cells: the
    points between each pool's best cell and (its top-1, the best of its top ``top_k``)."""
    rng = np.random.default_rng(0)
    out: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in CANDIDATES}
    for _ in range(draws):
        idx = rng.choice(gt.size, size=pool, replace=False)
        best = float(np.max(gt[idx]))
        for name, members in CANDIDATES.items():
            agg = rank_aggregate({k: cols[k][idx] for k in members}, names=members)
            order = idx[np.argsort(-agg, kind="stable")]
            out[name][0].append(best - float(gt[order[0]]))
            out[name][1].append(best - float(np.max(gt[order[:top_k]])))
    return {k: (np.asarray(a), np.asarray(b)) for k, (a, b) in out.items()}


def table(args: argparse.Namespace, cols: dict[str, np.ndarray]) -> str:
    truth = open_benchmark("builtin")
    gt = np.array([truth.get(a, args.truth, "valid_acc") for a in cols["arch"]], dtype=float)
    seed = SAMPLES[args.sample]
    lines = [
        f"sample {args.sample} (seed {seed}): {gt.size} cells disjoint from A, B and the other "
        f"fresh samples drawn before it; ground truth builtin {args.truth} 200-epoch "
        "validation accuracy; free scores of the default proxy network at initialisation",
        "",
        "| score | Kendall τ [95 % CI] | Spearman ρ [95 % CI] | top-10 | NaN | "
        "partial τ given aggregate [95 % CI] |",
        "|---|---|---|---|---|---|",
    ]
    cols = with_negated(cols)
    base = rank_aggregate({k: cols[k] for k in BASE}, names=BASE)
    for name in SCORES:
        x = cols[name]
        s = correlation_summary(x, gt, n_boot=1000, seed=0)
        ok = np.isfinite(x)
        partial = "–"
        if name not in BASE:
            pt = partial_tau(x[ok], gt[ok], base[ok])
            partial = f"{pt:+.3f} {_fmt_ci(partial_tau_ci(x[ok], gt[ok], base[ok]))}"
        lines.append(
            f"| {name} | {s['kendall_tau']:+.3f} {_fmt_ci(s['kendall_ci'])} | "
            f"{s['spearman']:+.3f} {_fmt_ci(s['spearman_ci'])} | {s['top10_precision']:.1f} | "
            f"{int((~ok).sum())} | {partial} |"
        )
    lines += [
        "",
        f"| aggregate | Kendall τ [95 % CI] | Δτ | Spearman ρ | top-10 | top-1 gap, pools of "
        f"{args.pool} (mean ± sd) | best-of-top-10 gap | top-1 worse / better than the "
        "aggregate's (share of pools) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    picks = pool_picks(cols, gt, pool=args.pool, draws=args.draws)
    t0 = math.nan
    for name, members in CANDIDATES.items():
        agg = rank_aggregate({k: cols[k] for k in members}, names=members)
        s = correlation_summary(agg, gt, n_boot=1000, seed=0)
        t0 = s["kendall_tau"] if name == "aggregate" else t0
        top1, top10 = picks[name]
        base1 = picks["aggregate"][0]
        lines.append(
            f"| {name} | {s['kendall_tau']:+.3f} {_fmt_ci(s['kendall_ci'])} | "
            f"{s['kendall_tau'] - t0:+.3f} | {s['spearman']:+.3f} | {s['top10_precision']:.1f} | "
            f"{top1.mean():.2f} ± {top1.std():.2f} | {top10.mean():.2f} ± {top10.std():.2f} | "
            f"{np.mean(top1 > base1):.2f} / {np.mean(top1 < base1):.2f} |"
        )
    lines += [
        "",
        f"gaps in points of {args.truth} accuracy below the pool's best cell, "
        f"{args.draws} random pools (seed 0) of {args.pool} of the sample's {gt.size} cells: the "
        "pools overlap, so the gaps of one sample rest on its few best cells (± is the spread "
        "over pools, not an interval of the mean)",
    ]
    return "\n".join(lines)


def top_table(args: argparse.Namespace, cols: dict[str, np.ndarray]) -> str:
    """Inside a top-of-screen sample: each score's τ, the regret of its top-1, and the
    paired bootstrap gap of its τ over the free aggregate's (over the whole space)."""
    from proxy_budget import tau_rows
    from search_regret import paired_tau_gap

    truth = open_benchmark("builtin")
    gt = np.array([truth.get(a, args.truth, "valid_acc") for a in cols["arch"]], dtype=float)
    best = truth.best(args.truth, "valid_acc")[1]
    agg = cols["space aggregate"]
    rows = {"the free aggregate (over the whole space)": agg, **{k: cols[k] for k in SCORES}}
    rows.update({k: v for k, v in with_negated(cols).items() if k.startswith("−")})

    def gap(name: str, col: np.ndarray) -> str:
        if col is agg or not np.isfinite(col).any():
            return "–"
        g, low, high = paired_tau_gap(col, agg, gt)
        return f"{g:+.3f} [{low:+.3f}, {high:+.3f}]"

    skip, half = TOP_SAMPLES[args.sample]
    lines = [
        f"sample {args.sample}: the {half} ranks of ranks {skip + 1}-{skip + TOP_N} of the "
        f"space by the free aggregate ({gt.size} cells; {args.truth} 200-epoch "
        f"validation accuracy spans {np.nanmin(gt):.2f}-{np.nanmax(gt):.2f} %, the space's "
        f"best {best:.2f}); free scores of the default proxy network at initialisation",
        "",
        "| score | Kendall τ [95 % CI] | regret of its top-1 | τ(score) − τ(aggregate) [95 % CI] |",
        "|---|---|---|---|",
    ]
    return "\n".join(lines + tau_rows(rows, gt, best, gap))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sample", choices=sorted(SAMPLES) + sorted(TOP_SAMPLES), required=True)
    parser.add_argument("--n", type=int, default=500, help="cells per sample (default 500)")
    parser.add_argument("--cache", default="runs/free-scores")
    parser.add_argument(
        "--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--table", action="store_true", help="print the tables")
    parser.add_argument(
        "--truth", default="cifar10-valid", choices=["cifar10-valid", "cifar100", "ImageNet16-120"]
    )
    parser.add_argument("--pool", type=int, default=100, help="cells per random pool")
    parser.add_argument("--draws", type=int, default=2000, help="random pools")
    args = parser.parse_args(argv)
    if args.table and args.sample not in TOP_SAMPLES and args.pool > args.n:
        parser.error(f"--pool {args.pool} is larger than the sample (--n {args.n})")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cols = score(args)
    if args.table:
        print(top_table(args, cols) if args.sample in TOP_SAMPLES else table(args, cols))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
