"""Analysis of cached scores against the ground truth: rank correlations, calibration, plots.

:func:`compare_scores` ranks every score of cached entries (βeff variants,
proxy accuracy, baselines) against a :class:`~nasnc.bench.GroundTruth` with
bootstrap confidence intervals, and optionally calibrates βeff to accuracy;
:func:`plot_comparison` draws its result (matplotlib, imported only when
called). :func:`anytime_regret` sets a search's best-so-far accuracy against
seconds and trained cells beside random search at the same budget
(:func:`plot_anytime` draws it). :func:`pareto_mask` and :func:`pareto_table`
give the cells non-dominated in (score max, cost min) with their ground
truth. Ground truth itself lives in :mod:`nasnc.bench`, which never imports
this package.
"""

from nasnc.analysis._anytime import (
    AnytimeCurve,
    AnytimeRegret,
    RandomSearchCurves,
    anytime_curve,
    anytime_regret,
    best_so_far,
    plot_anytime,
    random_search,
)
from nasnc.analysis._compare import (
    BETA_VARIANTS,
    EntryLike,
    calibrate,
    compare_scores,
    entry_scores,
    truth_dataset_for,
)
from nasnc.analysis._pareto import PARETO_COSTS, pareto_mask, pareto_table
from nasnc.analysis._plot import plot_comparison

__all__ = [
    "BETA_VARIANTS",
    "PARETO_COSTS",
    "AnytimeCurve",
    "AnytimeRegret",
    "EntryLike",
    "RandomSearchCurves",
    "anytime_curve",
    "anytime_regret",
    "best_so_far",
    "calibrate",
    "compare_scores",
    "entry_scores",
    "pareto_mask",
    "pareto_table",
    "plot_anytime",
    "plot_comparison",
    "random_search",
    "truth_dataset_for",
]
