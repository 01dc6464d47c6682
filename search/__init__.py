"""The Optuna layer of nasnc: config, objective, CapacitancePruner, study runner, CLI.

This is the only package that imports Optuna; the core library :mod:`nasnc`
never does.

>>> from search import load_config, run_search, summarize   # doctest: +SKIP
>>> config = load_config("configs/quickstart.yaml")          # doctest: +SKIP
>>> print(summarize(run_search(config), config).to_dict())   # doctest: +SKIP
"""

from __future__ import annotations

from search._config import (
    PrunerConfig,
    SamplerConfig,
    SearchConfig,
    apply_overrides,
    load_config,
)
from search._objective import Objective, TrainingDiverged, trial_arch
from search._pruner import CapacitancePruner
from search._study import (
    SearchSummary,
    fail_stale_trials,
    make_storage,
    open_study,
    run_search,
    summarize,
    threads_per_worker,
)

__all__ = [
    "CapacitancePruner",
    "Objective",
    "PrunerConfig",
    "SamplerConfig",
    "SearchConfig",
    "SearchSummary",
    "TrainingDiverged",
    "apply_overrides",
    "fail_stale_trials",
    "load_config",
    "make_storage",
    "open_study",
    "run_search",
    "summarize",
    "threads_per_worker",
    "trial_arch",
]
