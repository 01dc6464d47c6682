"""PNG figures of a :func:`~nasnc.analysis.compare_scores` result (matplotlib, Agg canvas).

Figures are drawn on ``matplotlib.figure.Figure`` with an Agg canvas: no
pyplot, no global backend switch, safe in worker processes and notebooks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasnc._errors import ConfigError

__all__ = ["plot_comparison"]

_BETA_COLUMNS = (
    "beta_eff",
    "beta_eff_last",
    "beta_eff_chain",
    "beta_eff_product",
    "beta_eff_chain_sf",
    "beta_eff_product_sf",
)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _fmt(value: Any) -> str:
    return "nan" if value is None or not math.isfinite(float(value)) else f"{float(value):+.3f}"


def _scatter(result: Mapping[str, Any], out: Path) -> Path | None:
    rows: Sequence[Mapping[str, Any]] = result["rows"]
    names = [n for n in _BETA_COLUMNS if n in result["scores"]]
    if not names:
        return None
    cols = min(3, len(names))
    nrows = math.ceil(len(names) / cols)
    fig = _figure(4.2 * cols, 3.6 * nrows)
    truth = np.array([r["truth"] for r in rows], dtype=np.float64)
    ylabel = f"{result['dataset']} {result['metric']} acc. (%)"
    for i, name in enumerate(names):
        ax = fig.add_subplot(nrows, cols, i + 1)
        x = np.array([r.get(name, math.nan) for r in rows], dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(truth)
        ax.scatter(x[ok], truth[ok], s=14, alpha=0.75, edgecolors="none")
        s = result["scores"][name]
        lo, hi = s["kendall_ci"]
        ax.set_title(
            f"{name}: τ = {_fmt(s['kendall_tau'])} [{_fmt(lo)}, {_fmt(hi)}], n = {s['n']}",
            fontsize=9,
        )
        ax.set_xlabel(name)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle(f"βeff vs ground truth ({result.get('budget', '')})", fontsize=10)
    fig.tight_layout()
    path = out / "scatter_beta_eff.png"
    fig.savefig(path)
    return path


def _bars(result: Mapping[str, Any], out: Path) -> Path | None:
    scores: Mapping[str, Mapping[str, Any]] = result["scores"]
    if not scores:
        return None
    names = list(scores)
    tau = np.array([_num(scores[n]["kendall_tau"]) for n in names])
    lo = np.array([_num(scores[n]["kendall_ci"][0]) for n in names])
    hi = np.array([_num(scores[n]["kendall_ci"][1]) for n in names])
    fig = _figure(6.5, 0.35 * len(names) + 1.4)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(names))
    ax.barh(y, np.nan_to_num(tau), color="tab:blue", alpha=0.6)
    ok = np.isfinite(lo) & np.isfinite(hi)
    # a percentile interval need not straddle the estimate: draw it as it is
    ax.hlines(y[ok], lo[ok], hi[ok], color="k", lw=1.2)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"Kendall τ vs {result['dataset']} {result['metric']} (95 % bootstrap CI)")
    ax.set_xlim(-1, 1)
    ax.set_title(f"n = {result['n']} architectures, {result.get('budget', '')}", fontsize=9)
    fig.tight_layout()
    path = out / "kendall_tau.png"
    fig.savefig(path)
    return path


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _budgets(result: Mapping[str, Any], out: Path) -> Path | None:
    budgets: Sequence[Mapping[str, Any]] = result.get("budgets") or []
    if len(budgets) < 2:
        return None
    numeric = all(b.get("epochs") is not None for b in budgets) and len(
        {b["epochs"] for b in budgets}
    ) == len(budgets)
    xs = [float(b["epochs"]) for b in budgets] if numeric else list(range(len(budgets)))
    names: list[str] = []
    for b in budgets:
        for name in b["kendall_tau"]:
            if name not in names:
                names.append(name)
    fig = _figure(9.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for name in names:
        ys = [_num(b["kendall_tau"].get(name)) for b in budgets]
        if sum(math.isfinite(v) for v in ys) < 2:
            continue
        style = "-o" if name.startswith("beta_eff") else "--."
        ax.plot(xs, ys, style, label=name, lw=1.4 if name.startswith("beta_eff") else 1.0)
    ax.axhline(0.0, color="k", lw=0.8)
    if numeric:
        ax.set_xlabel("proxy budget (epochs)")
    else:
        ax.set_xticks(xs, [b["label"] for b in budgets], rotation=20, fontsize=7)
        ax.set_xlabel("proxy configuration")
    ax.set_ylabel(f"Kendall τ vs {result['dataset']} {result['metric']}")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "tau_vs_budget.png"
    fig.savefig(path)
    return path


def _by_epoch(result: Mapping[str, Any], out: Path) -> Path | None:
    by_epoch = result.get("by_epoch")
    if not by_epoch:
        return None
    fig = _figure(9.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for name, taus in by_epoch["kendall_tau"].items():
        ax.plot(by_epoch["epoch"], [_num(t) for t in taus], "-o", ms=3, label=name)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("proxy epoch (within one run)")
    ax.set_ylabel(f"Kendall τ vs {result['dataset']} {result['metric']}")
    ax.set_title(f"value at each report point, {result.get('budget', '')}", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "tau_vs_epoch.png"
    fig.savefig(path)
    return path


def plot_comparison(result: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write the comparison figures into ``out_dir`` (created if needed).

    ``result`` must come from ``compare_scores(..., return_rows=True)``.
    Written, when the data allow: ``scatter_beta_eff.png`` (each βeff column
    vs ground truth, τ with its CI in the titles), ``kendall_tau.png`` (τ of
    every score with CIs), ``tau_vs_budget.png`` (τ per score across proxy
    configurations, when the cache holds several) and ``tau_vs_epoch.png``
    (τ of the trajectory columns at each report point of one configuration).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    if "rows" not in result:
        raise ConfigError("plot_comparison needs compare_scores(..., return_rows=True)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"the plot folder {str(out)!r} is an existing file; name a folder")
    out.mkdir(parents=True, exist_ok=True)
    written = [f(result, out) for f in (_scatter, _bars, _budgets, _by_epoch)]
    return [p for p in written if p is not None]
