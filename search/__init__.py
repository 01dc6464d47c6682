"""The Optuna layer of nasnc: config, objective, CapacitancePruner, study runner, CLI.

This is the only package that imports Optuna; the core library :mod:`nasnc`
never does. Names are imported lazily so that ``nasnc --help`` does not pay
for torch and Optuna.

>>> from search import load_config, run_search, summarize   # doctest: +SKIP
>>> config = load_config("configs/quickstart.yaml")          # doctest: +SKIP
>>> print(summarize(run_search(config), config).to_dict())   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "CapacitancePruner": "search._pruner",
    "Objective": "search._objective",
    "TrainingDiverged": "search._objective",
    "trial_arch": "search._objective",
    "PrunerConfig": "search._config",
    "SamplerConfig": "search._config",
    "SearchConfig": "search._config",
    "apply_overrides": "search._config",
    "load_config": "search._config",
    "SearchSummary": "search._study",
    "fail_stale_trials": "search._study",
    "make_storage": "search._study",
    "open_study": "search._study",
    "run_search": "search._study",
    "summarize": "search._study",
    "threads_per_worker": "search._study",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
