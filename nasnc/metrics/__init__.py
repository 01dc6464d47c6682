"""Agreement between cheap scores and ground truth: rank correlations, top-k, regret.

All measures are signed and drop NaN pairs; see :mod:`nasnc.metrics._correlation`
for the conventions (tau-b, average ranks, percentile bootstrap).
"""

from nasnc.metrics._correlation import (
    STATISTICS,
    bootstrap_ci,
    correlation_summary,
    drop_nan_pairs,
    kendall_tau,
    pearson,
    regret,
    spearman,
    top_k_precision,
)

__all__ = [
    "STATISTICS",
    "bootstrap_ci",
    "correlation_summary",
    "drop_nan_pairs",
    "kendall_tau",
    "pearson",
    "regret",
    "spearman",
    "top_k_precision",
]
