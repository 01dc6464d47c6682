"""The Optuna objective: sample a cell, reuse the cache or train it, report βeff."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import optuna
import torch

from nasnc import ArchError, NasncError
from nasnc.data import ProxyData
from nasnc.pipeline import ProxyConfig, ReportPoint, evaluate_arch
from nasnc.space import EDGES, OPS, Arch
from nasnc.store import Entry, Store

from ._config import HEARTBEAT_INTERVAL_S, READING_SCORES
from ._pruner import STD_ATTR

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from ._stages import TrialStage
from ._signals import INTERRUPTED_REASON, deferred, interruptible, raise_if_interrupted

__all__ = [
    "FAIL_REASON_ATTR",
    "HEARTBEAT_ATTR",
    "WORKER_ATTR",
    "WORKER_ID",
    "Objective",
    "ObjectiveUndefined",
    "TrainingDiverged",
    "param_name",
    "trial_arch",
    "trial_cell",
]

logger = logging.getLogger(__name__)

#: User attribute saying why a trial failed (absent when Optuna failed it on an exception).
FAIL_REASON_ATTR = "fail_reason"
#: User attribute with the wall time of the trial's last sign of life.
HEARTBEAT_ATTR = "heartbeat"
#: User attribute naming the process running the trial (``host:pid``).
WORKER_ATTR = "worker"
#: This process, as written in :data:`WORKER_ATTR`.
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


class TrainingDiverged(NasncError):
    """The proxy training hit a non-finite loss; the trial is recorded as FAIL."""


class ObjectiveUndefined(NasncError):
    """An objective has no finite value for the trial's cell (the message names it);
    the trial is recorded as FAIL and the study goes on."""


def _why_undefined(name: str, entry: Entry) -> str:
    """Why objective ``name`` has no finite value for ``entry``."""
    if name in READING_SCORES and name not in entry.trajectory:
        return (
            f"objective {name!r} is undefined: the cached run {entry.key} has no {name!r} "
            "column (it was stored before that reading existed); use another cache "
            "file or another objective"
        )
    return f"objective {name!r} is not finite for this cell"


def finite_or_none(value: Any) -> float | None:
    """``value`` as a user attribute: a float, or None where it is missing, not a
    number or not finite (JSON, and so every Optuna storage, holds no NaN)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def param_name(target: int, source: int) -> str:
    """Optuna parameter name of an edge, e.g. ``edge_3_1`` for node 1 -> node 3."""
    return f"edge_{target}_{source}"


def trial_arch(params: dict[str, Any]) -> Arch:
    """The cell a trial's parameters describe."""
    return Arch(tuple(str(params[param_name(t, s)]) for t, s in EDGES))


def trial_cell(trial: FrozenTrial) -> str | None:
    """What makes two trials one cell: the graph form of the trial's ``arch``
    attribute, as the cache keys runs (None without one; an arch that does not
    parse, from a hand-made trial, stands for itself)."""
    arch = trial.user_attrs.get("arch")
    if not arch:
        return None
    try:
        return Arch.parse(str(arch)).graph_form()
    except ArchError:
        return str(arch)


def last_reading(entry: Entry, column: str) -> float:
    """The last value of a trajectory column (NaN when absent or empty)."""
    values = entry.trajectory.get(column)
    return float(values[-1]) if values is not None and len(values) else math.nan


def pruner_value(point: ReportPoint, objective: str = "beta_eff") -> float | None:
    """What a trial reports to the pruner at ``point``: the proxy accuracy when it is
    the first objective, a streamed reading's value at ``point`` when that is
    (:data:`READING_SCORES`; None, nothing to report, for a cached run stored
    before the column existed: its trial fails naming the objective), else the
    latest βeff reading (docs/capacitance-study.md, "Sample F": it ranks cells far
    better than the BRR estimate before the end)."""
    if objective == "proxy_valid_acc":
        return point.valid_acc
    if objective in READING_SCORES:
        return point.readings.get(objective)
    return point.beta_eff_last


class _Heartbeat:
    """Writes :data:`HEARTBEAT_ATTR` every ``interval`` seconds from a daemon thread.

    Report points can be minutes apart (a GPU-scale epoch on a CPU); the beat
    keeps a live trial from looking stale to :func:`nasnc_search.fail_stale_trials`.
    """

    def __init__(self, trial: optuna.Trial, interval: float) -> None:
        self._trial = trial
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nasnc-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._trial.set_user_attr(HEARTBEAT_ATTR, time.time())
            except Exception:  # storage hiccup or finished trial: the next beat retries
                logger.debug("heartbeat of trial %d failed", self._trial.number, exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Objective:
    """Callable objective for ``study.optimize``.

    Samples the six edges as categorical parameters, then runs
    :func:`nasnc.pipeline.evaluate_arch`: a cache hit replays the cached
    trajectory (no training), a miss trains with the capacitance observer. At
    each report point it reports :func:`pruner_value` (the latest βeff reading
    by default; nothing when the stage's objectives are not trained online),
    records the standard deviation of the BRR estimate (for
    :class:`~nasnc_search.CapacitancePruner`'s uncertainty guard) and a
    heartbeat, and prunes on ``trial.should_prune()``.
    The returned value is the estimated converged βeff (maximise), unless a ``stage``
    (:class:`nasnc_search._stages.TrialStage`) names other or several objectives; it
    also records the cell's screen ``aggregate`` and benchmark accuracy.
    """

    def __init__(
        self,
        proxy: ProxyConfig,
        data: ProxyData,
        store: Store,
        *,
        seed: int = 0,
        device: str | torch.device = "auto",
        proxies: tuple[str, ...] = (),
        heartbeat_interval: float = HEARTBEAT_INTERVAL_S,
        stage: TrialStage | None = None,
    ) -> None:
        self.stage = stage
        if stage is not None:
            proxies = stage.proxies(proxies)
        self.heartbeat_interval = heartbeat_interval
        self.proxy = proxy
        self.data = data
        self.store = store
        self.seed = seed
        self.device = device
        self.proxies = proxies

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        # Under nasnc's search a signal raises only while the cell trains (and at its
        # report points): one raised inside a storage call of the trial (a database
        # write) can leave the session unusable, and Optuna's own tell then fails,
        # replacing the interruption with "Should not reach". Elsewhere it waits.
        try:
            return self._run(trial)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: Optuna fails the trial, say why
            with deferred(), contextlib.suppress(Exception):
                trial.set_user_attr(FAIL_REASON_ATTR, INTERRUPTED_REASON)
            raise

    def _run(self, trial: optuna.Trial) -> float | list[float]:
        trial.set_user_attr(WORKER_ATTR, WORKER_ID)  # first: an interruption fails only ours
        trial.set_user_attr(HEARTBEAT_ATTR, time.time())
        ops = [trial.suggest_categorical(param_name(t, s), OPS) for t, s in EDGES]
        arch = Arch(tuple(str(op) for op in ops))
        trial.set_user_attr("arch", str(arch))
        trial.set_user_attr("canonical", arch.canonical())
        stage = self.stage
        if stage is not None:
            stage.before(trial, arch)
        stds: dict[str, float] = {}

        def on_report(point: ReportPoint) -> str | None:
            raise_if_interrupted()
            with deferred():  # the trial's storage calls: see __call__
                reports = stage is None or stage.reports  # Optuna cannot prune multi-objective
                if reports:
                    value = stage.report_value(point) if stage else pruner_value(point)
                    reports = value is not None
                    if value is not None:
                        trial.report(value, point.index)
                std = point.beta_eff_std
                stds[str(point.index)] = std if math.isfinite(std) else 0.0
                trial.set_user_attr(STD_ATTR, dict(stds))
                trial.set_user_attr(HEARTBEAT_ATTR, time.time())
                if reports and trial.should_prune():
                    return "stop"
            return None

        with _Heartbeat(trial, self.heartbeat_interval), interruptible():
            result = evaluate_arch(
                arch,
                self.proxy,
                self.data,
                seed=self.seed,
                device=self.device,
                store=self.store,
                proxies=self.proxies,
                on_report=on_report,
            )
        entry = result.entry
        summary = entry.summary
        trial.set_user_attr("key", entry.key)
        trial.set_user_attr("cache_hit", result.cache_hit)
        for name in ("beta_eff", "beta_eff_std", "beta_eff_last", "proxy_valid_acc", "cost_s"):
            trial.set_user_attr(name, finite_or_none(summary.get(name)))
        for name in READING_SCORES:
            trial.set_user_attr(name, finite_or_none(last_reading(entry, name)))
        for name, score in entry.scores.items():  # baselines at initialisation: a pick can use them
            trial.set_user_attr(name, finite_or_none(score))
        if result.diverged:
            reason = "training diverged (non-finite loss)"
            trial.set_user_attr(FAIL_REASON_ATTR, reason)
            raise TrainingDiverged(f"{arch}: {reason}")
        if result.stopped:
            reported = stage.objectives[0] if stage is not None else "beta_eff"
            raise optuna.TrialPruned(f"{reported} low at report {len(stds) - 1}")
        value = float(summary["beta_eff"])
        if not math.isfinite(value):
            reason = f"non-finite beta_eff estimate {value}"
            trial.set_user_attr(FAIL_REASON_ATTR, reason)
            raise TrainingDiverged(f"{arch}: {reason}")
        if stage is None:
            return value
        values = stage.values(trial, entry, value)
        listed = values if isinstance(values, list) else [values]
        for name, got in zip(stage.objectives, listed):
            if not math.isfinite(got):
                reason = _why_undefined(name, entry)
                trial.set_user_attr(FAIL_REASON_ATTR, reason)
                raise ObjectiveUndefined(f"{arch}: {reason}")
        return values
