"""``CapacitancePruner``: prune trials whose βeff is low relative to their peers.

The pruner is stateless and follows Optuna's ``BasePruner`` contract, so it can
be used in any study that reports a score with ``trial.report(value, step)``.
At a report step it compares the trial's value with the values that finished
trials reported *at the same step*:

1. **percentile rule** — keep the top ``percentile`` % of the finished
   trials' values at that step and prune the rest, with Optuna's meaning of
   the word (``PercentilePruner(25.0)`` keeps the top 25 %): for a maximising
   study a trial is pruned when its value lies below the ``100 − percentile``-th
   percentile of its peers' values (above the ``percentile``-th for a
   minimising one), after ``n_startup_trials`` finished trials and
   ``n_warmup_steps`` steps, checked every ``interval_steps``;
2. **uncertainty guard** (``use_uncertainty=True``) — additionally require the
   trial's upper bound ``mean + z·std`` to lie below the ``k``-th best lower
   bound ``mean − z·std`` among the finished trials at that step. The standard
   deviations are read from the user attribute :data:`STD_ATTR` (a mapping
   ``str(step) -> std``) that the nasnc objective writes at each report (the
   std of the BRR estimate of the converged βeff, around the reported
   reading); a trial without it counts as having no uncertainty (std 0).

A non-finite reported value is always pruned (after startup and warm-up).

Unlike Optuna's ``PercentilePruner``, which compares the trial's *best*
intermediate value so far, the rule compares the value reported at this step:
the nasnc objective reports the latest βeff reading of a run that is still
learning, which supersedes the earlier ones. Startup, warm-up and interval
follow Optuna's pruners: a step is checked when it is the trial's first report
in its interval, so reports at sparse steps (0, 5, 10 with ``interval_steps=3``)
are each checked, as ``PercentilePruner`` checks them (Optuna's helper for it is
private, so the rule is written out here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = ["STD_ATTR", "CapacitancePruner"]

#: User attribute holding ``{str(step): std}`` of the reported estimate.
STD_ATTR = "beta_eff_std_at"


def _std_at(trial: FrozenTrial, step: int) -> float:
    table = trial.user_attrs.get(STD_ATTR)
    if not isinstance(table, Mapping):
        return 0.0
    value = table.get(str(step))
    try:
        std = float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0
    return std if math.isfinite(std) and std > 0 else 0.0


def _first_in_interval(trial: FrozenTrial, step: int, warmup: int, interval: int) -> bool:
    """Whether ``step`` is the trial's first report in its interval: no earlier report
    of the trial lies in the interval of ``interval`` steps (counted from ``warmup``)
    that holds ``step``. With a report at every step: ``(step - warmup) % interval == 0``."""
    start = warmup + (step - warmup) // interval * interval
    return not any(start <= s < step for s in trial.intermediate_values)


class CapacitancePruner(BasePruner):
    """Prune a trial whose reported βeff is low among the finished trials at that step.

    Parameters
    ----------
    percentile : float, default 75.0
        Percentage (0–100) of the finished trials' values at the same step to
        keep, as in Optuna's ``PercentilePruner``: 75 keeps the top 75 % and
        prunes a trial in the bottom 25 %; 0 keeps only trials level with the
        best peer, 100 prunes only trials below all of them.
    n_startup_trials : int, default 5
        No pruning until this many trials have finished (COMPLETE).
    n_warmup_steps : int, default 0
        No pruning at steps below this.
    interval_steps : int, default 1
        Check only the first report in each run of ``interval_steps`` steps
        after the warm-up (every step when the trial reports every step).
    n_min_trials : int, default 1
        Minimum number of finished trials that reported at this step.
    use_uncertainty : bool, default False
        Also require ``mean + z·std`` to be below the ``k``-th best
        ``mean − z·std`` of the finished trials at that step.
    k : int, default 1
        Which best lower bound the uncertainty guard compares with.
    z : float, default 1.0
        Width of the bounds in standard deviations.

    Examples
    --------
    >>> import optuna
    >>> pruner = CapacitancePruner(percentile=70.0, n_startup_trials=3)  # keep the top 70 %
    >>> study = optuna.create_study(direction="maximize", pruner=pruner)
    """

    def __init__(
        self,
        percentile: float = 75.0,
        *,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        n_min_trials: int = 1,
        use_uncertainty: bool = False,
        k: int = 1,
        z: float = 1.0,
    ) -> None:
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], but got {percentile=}.")
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, but got {n_startup_trials=}.")
        if n_warmup_steps < 0:
            raise ValueError(f"n_warmup_steps must be >= 0, but got {n_warmup_steps=}.")
        if interval_steps < 1:
            raise ValueError(f"interval_steps must be >= 1, but got {interval_steps=}.")
        if n_min_trials < 1:
            raise ValueError(f"n_min_trials must be >= 1, but got {n_min_trials=}.")
        if k < 1:
            raise ValueError(f"k must be >= 1, but got {k=}.")
        if not (math.isfinite(z) and z >= 0):
            raise ValueError(f"z must be finite and >= 0, but got {z=}.")
        self._percentile = float(percentile)
        self._n_startup_trials = int(n_startup_trials)
        self._n_warmup_steps = int(n_warmup_steps)
        self._interval_steps = int(interval_steps)
        self._n_min_trials = int(n_min_trials)
        self._use_uncertainty = bool(use_uncertainty)
        self._k = int(k)
        self._z = float(z)

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(finished) < self._n_startup_trials:
            return False
        if step < self._n_warmup_steps:
            return False
        if not _first_in_interval(trial, step, self._n_warmup_steps, self._interval_steps):
            return False

        value = float(trial.intermediate_values[step])
        if not math.isfinite(value):
            return True

        peers = [t for t in finished if step in t.intermediate_values]
        values = np.array([t.intermediate_values[step] for t in peers], dtype=float)
        keep = np.isfinite(values)
        peers = [t for t, ok in zip(peers, keep) if ok]
        values = values[keep]
        if len(values) < self._n_min_trials:
            return False

        maximize = study.direction == StudyDirection.MAXIMIZE
        if maximize:
            threshold = float(np.percentile(values, 100.0 - self._percentile))
            below = value < threshold
        else:
            threshold = float(np.percentile(values, self._percentile))
            below = value > threshold
        if not below:
            return False
        if not self._use_uncertainty:
            return True

        own = self._z * _std_at(trial, step)
        spreads = np.array([self._z * _std_at(t, step) for t in peers])
        if maximize:
            bounds = np.sort(values - spreads)[::-1]  # lower bounds, best first
            kth = bounds[min(self._k, len(bounds)) - 1]
            return value + own < kth
        bounds = np.sort(values + spreads)  # upper bounds, best (lowest) first
        kth = bounds[min(self._k, len(bounds)) - 1]
        return value - own > kth
