"""Analysis of cached scores against the ground truth: rank correlations, calibration, plots.

:func:`compare_scores` ranks every score of cached entries (βeff variants,
proxy accuracy, baselines) against a :class:`~nasnc.bench.GroundTruth` with
bootstrap confidence intervals, and optionally calibrates βeff to accuracy;
:func:`plot_comparison` draws its result (matplotlib, imported only when
called). Ground truth itself lives in :mod:`nasnc.bench`, which never imports
this package.
"""

from nasnc.analysis._compare import (
    BETA_VARIANTS,
    EntryLike,
    calibrate,
    compare_scores,
    entry_scores,
    truth_dataset_for,
)
from nasnc.analysis._plot import plot_comparison

__all__ = [
    "BETA_VARIANTS",
    "EntryLike",
    "calibrate",
    "compare_scores",
    "entry_scores",
    "plot_comparison",
    "truth_dataset_for",
]
