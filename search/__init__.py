"""The Optuna layer of nasnc: config, objective, CapacitancePruner, study runner, CLI.

Installed as ``nasnc_search`` (the source folder is ``search/``; a user's own
``search.py`` cannot shadow it), so imports inside the package are relative.
This is the only package that imports Optuna; the core library :mod:`nasnc`
never does. Names are imported lazily so that ``nasnc --help`` does not pay
for torch and Optuna.

>>> from nasnc_search import load_config, run_search, summarize   # doctest: +SKIP
>>> config = load_config("configs/quickstart.yaml")          # doctest: +SKIP
>>> print(summarize(run_search(config), config).to_dict())   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import (
        READING_SCORES,
        PrunerConfig,
        SamplerConfig,
        SearchConfig,
        apply_overrides,
        load_config,
        parse_overrides,
    )
    from ._objective import (
        Objective,
        ObjectiveUndefined,
        TrainingDiverged,
        trial_arch,
        trial_cell,
    )
    from ._pruner import CapacitancePruner
    from ._storage import fail_stale_trials, make_storage
    from ._study import open_study, run_search, threads_per_worker
    from ._summary import SearchSummary, summarize

_WHERE = {
    "CapacitancePruner": "._pruner",
    "Objective": "._objective",
    "ObjectiveUndefined": "._objective",
    "TrainingDiverged": "._objective",
    "trial_arch": "._objective",
    "trial_cell": "._objective",
    "PrunerConfig": "._config",
    "READING_SCORES": "._config",
    "SamplerConfig": "._config",
    "SearchConfig": "._config",
    "apply_overrides": "._config",
    "load_config": "._config",
    "parse_overrides": "._config",
    "SearchSummary": "._summary",
    "fail_stale_trials": "._storage",
    "make_storage": "._storage",
    "open_study": "._study",
    "run_search": "._study",
    "summarize": "._summary",
    "threads_per_worker": "._study",
}

__all__ = [
    "READING_SCORES",
    "CapacitancePruner",
    "Objective",
    "ObjectiveUndefined",
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
    "parse_overrides",
    "run_search",
    "summarize",
    "threads_per_worker",
    "trial_arch",
    "trial_cell",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
