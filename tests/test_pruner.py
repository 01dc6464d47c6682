from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nasnc_search import CapacitancePruner
from nasnc_search._pruner import STD_ATTR


def _study(
    pruner: CapacitancePruner,
    finished: list[dict[int, float]],
    *,
    direction: str = "maximize",
    stds: list[dict[int, float]] | None = None,
) -> optuna.Study:
    study = optuna.create_study(direction=direction, pruner=pruner)
    for i, values in enumerate(finished):
        attrs = {}
        if stds is not None:
            attrs[STD_ATTR] = {str(s): v for s, v in stds[i].items()}
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=values[max(values)],
                intermediate_values=values,
                user_attrs=attrs,
            )
        )
    return study


def _should_prune(
    study: optuna.Study, reports: dict[int, float], std: dict[int, float] | None = None
) -> bool:
    trial = study.ask()
    if std is not None:
        trial.set_user_attr(STD_ATTR, {str(s): v for s, v in std.items()})
    for step, value in reports.items():
        trial.report(value, step)
    return trial.should_prune()


PEERS = [{1: v, 2: v + 1} for v in (1.0, 2.0, 3.0, 4.0, 5.0)]


def test_prunes_below_percentile_and_keeps_above() -> None:
    pruner = CapacitancePruner(percentile=50.0, n_startup_trials=5)
    assert _should_prune(_study(pruner, PEERS), {1: 2.5})
    assert not _should_prune(_study(pruner, PEERS), {1: 3.5})


def test_startup_trials_protect() -> None:
    pruner = CapacitancePruner(percentile=50.0, n_startup_trials=6)
    assert not _should_prune(_study(pruner, PEERS), {1: 0.0})


def test_warmup_steps_protect() -> None:
    pruner = CapacitancePruner(percentile=50.0, n_startup_trials=1, n_warmup_steps=2)
    assert not _should_prune(_study(pruner, PEERS), {1: 0.0})
    assert _should_prune(_study(pruner, PEERS), {2: 0.0})


def test_interval_steps() -> None:
    pruner = CapacitancePruner(percentile=50.0, n_startup_trials=1, interval_steps=2)
    peers = [{s: v for s in range(4)} for v in (1.0, 2.0, 3.0)]
    assert _should_prune(_study(pruner, peers), {0: 0.0})
    assert not _should_prune(_study(pruner, peers), {0: 0.0, 1: 0.0})  # 1 shares 0's interval
    assert _should_prune(_study(pruner, peers), {0: 0.0, 1: 0.0, 2: 0.0})
    # reports at sparse steps: each is the first of its interval, so each is checked
    assert _should_prune(_study(pruner, peers), {1: 0.0})


@pytest.mark.parametrize(
    "steps", [(0,), (1,), (0, 1), (0, 1, 2), (0, 5), (0, 5, 10), (3, 4), (2, 3, 7), (0, 2, 4)]
)
@pytest.mark.parametrize(("warmup", "interval"), [(0, 2), (0, 3), (1, 3), (2, 1)])
def test_which_steps_are_checked_matches_optunas_percentile_pruner(
    steps: tuple[int, ...], warmup: int, interval: int
) -> None:
    """A trial that reports 0.0, below every peer, is pruned exactly when the step is
    checked: at each step, the two pruners must agree on it."""
    options = {"n_startup_trials": 1, "n_warmup_steps": warmup, "interval_steps": interval}
    peers = [{s: v for s in range(12)} for v in (1.0, 2.0, 3.0)]
    ours = _study(CapacitancePruner(50.0, **options), peers)
    theirs = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.PercentilePruner(50.0, **options)
    )
    for trial in ours.get_trials():
        theirs.add_trial(trial)
    for last in range(1, len(steps) + 1):
        reports = dict.fromkeys(steps[:last], 0.0)
        assert _should_prune(ours, reports) == _should_prune(theirs, reports), reports


def test_needs_peers_at_the_same_step() -> None:
    pruner = CapacitancePruner(percentile=50.0, n_startup_trials=1, n_min_trials=2)
    assert not _should_prune(_study(pruner, PEERS), {7: -100.0})  # nobody reported step 7
    peers = [{1: 1.0}, {1: 2.0, 3: 5.0}]
    assert not _should_prune(_study(pruner, peers), {3: 0.0})  # only one peer at step 3


def test_non_finite_value_is_pruned() -> None:
    pruner = CapacitancePruner(percentile=0.0, n_startup_trials=1)
    assert _should_prune(_study(pruner, PEERS), {1: math.nan})


def test_minimize_direction_flips_the_rule() -> None:
    pruner = CapacitancePruner(percentile=75.0, n_startup_trials=1)
    assert _should_prune(_study(pruner, PEERS, direction="minimize"), {1: 4.9})
    assert not _should_prune(_study(pruner, PEERS, direction="minimize"), {1: 1.5})


@pytest.mark.parametrize("percentile", [10.0, 25.0, 40.0, 75.0, 90.0])
@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_percentile_means_what_it_means_in_optuna(percentile: float, direction: str) -> None:
    """``percentile`` keeps the top p %, exactly as ``optuna.pruners.PercentilePruner``.

    With one report per trial Optuna's best-so-far value is the reported value,
    so both pruners must take the same decision for every candidate value.
    """
    peers = [{0: float(v)} for v in range(1, 11)]
    for value in [0.5 * i for i in range(23)]:
        ours = CapacitancePruner(percentile, n_startup_trials=1)
        theirs = optuna.pruners.PercentilePruner(percentile, n_startup_trials=1)
        decisions = {
            _should_prune(_study(pruner, peers, direction=direction), {0: value})
            for pruner in (ours, theirs)
        }
        assert len(decisions) == 1, f"{value=}: ours and Optuna's disagree"


def test_keeps_the_top_percentile_not_the_bottom() -> None:
    keep_top_quarter = CapacitancePruner(percentile=25.0, n_startup_trials=5)
    assert _should_prune(_study(keep_top_quarter, PEERS), {1: 3.5})  # below the top 25 %
    assert not _should_prune(_study(keep_top_quarter, PEERS), {1: 4.5})


def test_uncertainty_guard_keeps_overlapping_trials() -> None:
    pruner = CapacitancePruner(percentile=50.0, n_startup_trials=1, use_uncertainty=True, z=1.0)
    stds = [{1: 0.5, 2: 0.5}] * 5
    # 2.5 is below the median 3.0; upper bound 2.5 + 0.5 = 3.0 < best lower bound 5 - 0.5: prune
    assert _should_prune(_study(pruner, PEERS, stds=stds), {1: 2.5}, {1: 0.5})
    # with a wide std the upper bound 2.5 + 3 reaches the best lower bound 4.5: keep
    assert not _should_prune(_study(pruner, PEERS, stds=stds), {1: 2.5}, {1: 3.0})


def test_uncertainty_guard_uses_the_kth_best_bound() -> None:
    stds = [{1: 0.0}] * 5
    strict = CapacitancePruner(percentile=50.0, n_startup_trials=1, use_uncertainty=True, k=1)
    loose = CapacitancePruner(percentile=50.0, n_startup_trials=1, use_uncertainty=True, k=4)
    # upper bound 2.9 + 0.5 = 3.4: below the best (5.0), above the 4th best (2.0)
    assert _should_prune(_study(strict, PEERS, stds=stds), {1: 2.9}, {1: 0.5})
    assert not _should_prune(_study(loose, PEERS, stds=stds), {1: 2.9}, {1: 0.5})


def test_percentile_rule_alone_ignores_std() -> None:
    pruner = CapacitancePruner(percentile=50.0, n_startup_trials=1)
    assert _should_prune(_study(pruner, PEERS), {1: 2.5}, {1: 100.0})


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"percentile": 101.0}, "percentile=101.0"),
        ({"percentile": -1.0}, "percentile=-1.0"),
        ({"n_startup_trials": -1}, "n_startup_trials=-1"),
        ({"n_warmup_steps": -2}, "n_warmup_steps=-2"),
        ({"interval_steps": 0}, "interval_steps=0"),
        ({"n_min_trials": 0}, "n_min_trials=0"),
        ({"k": 0}, "k=0"),
        ({"z": -1.0}, "z=-1.0"),
    ],
)
def test_arguments_are_checked(kwargs: dict[str, float], culprit: str) -> None:
    with pytest.raises(ValueError, match=culprit):
        CapacitancePruner(**kwargs)  # type: ignore[arg-type]


def test_works_in_a_real_optimize_loop() -> None:
    pruner = CapacitancePruner(percentile=50.0, n_startup_trials=3)
    study = optuna.create_study(direction="maximize", pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(3):
            trial.report(x * (step + 1), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x * 3

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=30)
    states = [t.state for t in study.trials]
    assert TrialState.PRUNED in states
    assert states.count(TrialState.COMPLETE) >= 3


@pytest.mark.parametrize(
    "optuna_pruner", [optuna.pruners.PercentilePruner, optuna.pruners.MedianPruner]
)
def test_startup_warmup_and_interval_default_as_in_optuna(optuna_pruner: type) -> None:
    """A config that names only the pruner gets the defaults Optuna's own pruner has."""
    import inspect

    from nasnc_search import PrunerConfig

    theirs = inspect.signature(optuna_pruner).parameters
    ours = inspect.signature(CapacitancePruner).parameters
    config = PrunerConfig()
    for name in ("n_startup_trials", "n_warmup_steps", "interval_steps"):
        assert getattr(config, name) == theirs[name].default, name
        assert ours[name].default == theirs[name].default, name
