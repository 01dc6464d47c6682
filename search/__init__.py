"""The Optuna layer of nasnc: config, objective, CapacitancePruner, study runner, CLI.

This is the only package that imports Optuna; the core library :mod:`nasnc`
never does.
"""

from __future__ import annotations

from search._pruner import CapacitancePruner

__all__ = ["CapacitancePruner"]
