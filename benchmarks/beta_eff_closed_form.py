"""βeff in closed form vs the explicit line graph + two sparse mat-vecs, same weights, same run.

The chain is the probe of the benchmark network (channels 16 -> 64 pooled
features): 64 -> 256 -> 128 -> 10, random weights from a seeded generator.
For every variant it prints the median time of

* ``beta_eff`` (closed form, torch, on the chosen device),
* ``line_graph`` (building the scipy.sparse P) + ``s_in = P1``, ``s_out = Pᵀ1``,
  ``βeff = s_out·s_in / ΣP`` (what the method needs without the closed form),
* the two mat-vecs alone (P already built),

the ratios, and the relative difference of the two values (float64).

    python benchmarks/beta_eff_closed_form.py              # 1 torch thread, CPU
    python benchmarks/beta_eff_closed_form.py --threads 2 --repeats 50
"""

from __future__ import annotations

import argparse
import functools
import itertools
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse
import torch

from nasnc.capacitance import VARIANTS, beta_eff, beta_eff_variants, line_graph, variant_name

WIDTHS = (64, 256, 128, 10)


def median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up (and cached constants)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matvecs(P: scipy.sparse.csr_matrix, ones: np.ndarray) -> float:
    """βeff = s_out·s_in / ΣP from a built P: two sparse mat-vecs."""
    return float((P.T @ ones) @ (P @ ones)) / float(P.sum())


def graph_and_matvecs(ws: list[torch.Tensor], interaction: str, normalize: bool) -> float:
    """Build the line graph, then the two mat-vecs."""
    P = line_graph(ws, interaction, normalize=normalize)
    return matvecs(P, np.ones(P.shape[0]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=200, help="closed-form repetitions")
    parser.add_argument("--graph-repeats", type=int, default=5, help="line-graph repetitions")
    parser.add_argument("--device", default="cpu", help="device of the closed form (cpu, cuda)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    gen = torch.Generator().manual_seed(0)
    ws = [
        (torch.randn(n_out, n_in, generator=gen) / n_in**0.5).to(device)
        for n_in, n_out in itertools.pairwise(WIDTHS)
    ]
    n_weights = sum(w.numel() for w in ws)
    print(
        f"chain {' -> '.join(map(str, WIDTHS))}: {n_weights} weights; device {device}, "
        f"closed form in {args.dtype}; torch {torch.__version__}, {args.threads} thread(s), "
        f"{platform.processor() or platform.machine()}"
    )
    columns = ("closed form", "graph+2 mv", "2 mat-vecs", "ratio", "ratio mv", "rel. diff")
    widths = (14, 14, 14, 10, 10, 11)
    header = f"{'variant':<22}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths))
    print(header)
    print("-" * len(header))
    for interaction, normalize in VARIANTS:
        closed = functools.partial(beta_eff, ws, interaction, normalize, dtype=dtype)
        full = functools.partial(graph_and_matvecs, ws, interaction, normalize)
        P = line_graph(ws, interaction, normalize=normalize)
        only_mv = functools.partial(matvecs, P, np.ones(P.shape[0]))
        t_closed = median_time(closed, args.repeats, sync)
        t_graph = median_time(full, args.graph_repeats, lambda: None)
        t_mv = median_time(only_mv, max(args.graph_repeats, 20), lambda: None)
        value, ref = float(closed()), full()
        print(
            f"{variant_name(interaction, normalize):<22}{t_closed * 1e3:>11.3f} ms"
            f"{t_graph * 1e3:>11.1f} ms{t_mv * 1e3:>11.2f} ms{t_graph / t_closed:>9.0f}x"
            f"{t_mv / t_closed:>9.1f}x{abs(value - ref) / abs(ref):>11.1e}"
        )
    t_all = median_time(lambda: beta_eff_variants(ws, dtype=dtype), args.repeats, sync)
    print(f"{'all four (one pass)':<22}{t_all * 1e3:>11.3f} ms")
    print(f"line graph P: {P.shape[0]} x {P.shape[1]}, {P.nnz} stored couplings")


if __name__ == "__main__":
    main()
