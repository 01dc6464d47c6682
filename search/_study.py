"""Create or resume a study, run workers, and summarise the outcome.

Storage URLs
------------
``sqlite:///runs/<study>.db``  (default, one worker)
    The embedded default; nothing to run.
``journal:PATH``               (default with ``workers > 1``)
    An Optuna journal file: several processes on one machine.
``postgresql+psycopg://user@host/db``
    Several machines: start ``nasnc search`` with the same URL and study name
    on each (``load_if_exists``); each process uses its own device.

Stale trials
------------
A worker killed mid-trial leaves a RUNNING trial. With an RDB storage
(SQLite, PostgreSQL) Optuna's heartbeat fails it once ``heartbeat_grace``
seconds pass without a beat. Journal files have no heartbeat in Optuna, so the
objective writes a ``heartbeat`` user attribute at every report point and
:func:`fail_stale_trials` fails RUNNING trials whose last beat is older than the
grace period when a run starts.

Interruptions and ``n_trials``
------------------------------
Ctrl-C and SIGTERM stop a run at a safe point (:mod:`nasnc_search._signals`): the
trial in flight is failed with ``fail_reason = "interrupted"``, finished trials
are kept. ``n_trials`` counts the trials that reached a verdict about their
cell: COMPLETE, PRUNED, and FAIL with a reason about the cell (training
diverged). Trials failed by an interruption, a stale heartbeat (a killed
worker) or a crash do not count, so rerunning the same command completes the
requested number.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
import signal
import socket
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from nasnc import ConfigError, NasncError, __version__
from nasnc._catalogue import dataset_info
from nasnc.data import ProxyData
from nasnc.pipeline import load_proxy_data
from nasnc.store import Store

from . import _samplers
from ._config import PrunerConfig, SamplerConfig, SearchConfig
from ._objective import (
    FAIL_REASON_ATTR,
    HEARTBEAT_ATTR,
    WORKER_ATTR,
    WORKER_ID,
    Objective,
    TrainingDiverged,
)
from ._screen import SCREEN_ATTR
from ._signals import Interrupted, raise_if_interrupted, stop_on_signals
from ._stages import (
    directions,
    make_stage,
    pareto_front,
    pick,
    screen_study,
    trained_cells,
)

__all__ = [
    "FINISHED_STATES",
    "SearchSummary",
    "counts_toward_n_trials",
    "fail_stale_trials",
    "make_pruner",
    "make_sampler",
    "make_storage",
    "n_finished",
    "open_study",
    "run_search",
    "summarize",
    "threads_per_worker",
]

logger = logging.getLogger(__name__)

#: Trial states that end a trial (see :func:`counts_toward_n_trials` for ``n_trials``).
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
#: ``fail_reason`` of a trial stopped by Ctrl-C or SIGTERM.
INTERRUPTED_REASON = "interrupted"
#: ``fail_reason`` prefix of a RUNNING trial failed for a stale heartbeat.
STALE_REASON = "stale:"


def make_storage(url: str, *, heartbeat_interval: int = 60, grace: int = 300) -> BaseStorage:
    """An Optuna storage for ``url`` (see the module docstring); creates local folders."""
    if url.startswith("journal:"):
        path = Path(url[len("journal:") :])
        if not path.name:
            raise ConfigError(f"journal storage needs a file path, but got storage={url!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        db = url[len("sqlite:///") :]
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
    elif "://" not in url:
        raise ConfigError(
            f"storage must be a URL (sqlite:///FILE, journal:FILE, postgresql+psycopg://...), "
            f"but got storage={url!r}"
        )
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna; we rely on them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace,
                engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
            )
    except Exception as exc:  # SQLAlchemy/driver errors: name the storage
        raise NasncError(f"cannot open storage {url!r}: {type(exc).__name__}: {exc}") from exc


def make_sampler(
    config: SamplerConfig, seed: int, *, workers: int = 1
) -> optuna.samplers.BaseSampler:
    """The configured sampler (see :mod:`nasnc_search._samplers`)."""
    return _samplers.make_sampler(config, seed, workers=workers)


def make_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    """The configured pruner (see :mod:`nasnc_search._samplers`)."""
    return _samplers.make_pruner(config)


def _sampler_seed(config: SearchConfig, study: optuna.Study, worker: int) -> int:
    """A sampler seed that differs between processes and between resumptions.

    A fresh single-process study on a local storage is reproducible for a
    seed; a resumed study (trials already present), each local worker and
    each process joining over a server storage (PostgreSQL) draws another
    stream, so they never sample the same cells in lockstep.
    """
    words = [config.seed, worker, len(study.get_trials(deepcopy=False))]
    url = config.storage_url
    if not (url.startswith("sqlite") or url.startswith("journal:")):
        words += [os.getpid(), zlib.crc32(socket.gethostname().encode())]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def open_study(config: SearchConfig, *, worker: int = 0) -> optuna.Study:
    """Create the study or load it; refuse to resume it under a different proxy config."""
    return _open_study(config, worker)[0]


def _open_study(config: SearchConfig, worker: int) -> tuple[optuna.Study, BaseStorage]:
    """The study and the storage object it was opened on (Optuna may wrap the latter)."""
    storage = make_storage(
        config.storage_url,
        heartbeat_interval=config.heartbeat_interval,
        grace=config.heartbeat_grace,
    )
    study = optuna.create_study(
        storage=storage,
        study_name=config.study_name,
        directions=directions(config.objectives),
        pruner=make_pruner(config.pruner),
        load_if_exists=True,
    )
    if study.metric_names is None:
        with warnings.catch_warnings():  # "experimental" in Optuna; shown by the dashboard
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(config.objectives))
    elif list(study.metric_names) != list(config.objectives):
        raise ConfigError(
            f"study {config.study_name!r} in {config.storage_url} optimises "
            f"{study.metric_names}, but got objectives={list(config.objectives)}; "
            "use another --study name."
        )
    study.sampler = make_sampler(
        config.sampler, _sampler_seed(config, study, worker), workers=config.workers
    )
    stored = study.user_attrs.get("proxy")
    current = config.proxy.to_dict()
    if stored is None:
        study.set_user_attr("proxy", current)
        study.set_user_attr("config", config.to_dict())
        study.set_user_attr("seed", config.seed)
        study.set_user_attr("nasnc_version", __version__)
    elif stored != current or study.user_attrs.get("seed", config.seed) != config.seed:
        differ = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
        if study.user_attrs.get("seed", config.seed) != config.seed:
            differ.append("seed")
        raise ConfigError(
            f"study {config.study_name!r} in {config.storage_url} was created with a different "
            f"proxy config (differs in: {', '.join(differ)}); trials would not be comparable. "
            "Use another --study name."
        )
    return study, storage


def _fail_trial(storage: BaseStorage, study_id: int, trial: FrozenTrial, reason: str) -> bool:
    """Fail a RUNNING trial of another owner through the storage's public API."""
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    try:
        storage.set_trial_user_attr(trial_id, FAIL_REASON_ATTR, reason)
        return storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):  # finished meanwhile
        return False


def fail_stale_trials(storage: BaseStorage, study_name: str, grace: float) -> int:
    """Fail RUNNING trials whose heartbeat is older than ``grace`` seconds; return how many.

    Meant for journal storages, which have no heartbeat of their own in Optuna
    (RDB storages fail stale trials themselves).
    """
    study_id = storage.get_study_id_from_name(study_name)
    now = time.time()
    n = 0
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.user_attrs.get(HEARTBEAT_ATTR)
        last = (
            float(beat)
            if isinstance(beat, (int, float))
            else (trial.datetime_start.timestamp() if trial.datetime_start else now)
        )
        if now - last > grace:
            reason = f"{STALE_REASON} no heartbeat for {now - last:.0f} s"
            n += _fail_trial(storage, study_id, trial, reason)
    if n:
        logger.warning("failed %d stale trial(s) of study %s", n, study_name)
    return n


def _device_for(worker: int, device: str) -> str:
    if device in ("auto", "cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return f"cuda:{worker % torch.cuda.device_count()}"
    return device


def _load_data(config: SearchConfig, device: str) -> ProxyData:
    return load_proxy_data(
        config.proxy, config.data_root, device=device, seed=config.seed, download=config.download
    )


def _run_worker(
    config: SearchConfig,
    worker: int,
    n_threads: int | None,
    callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    opened: tuple[optuna.Study, BaseStorage] | None = None,
) -> None:
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    device = _device_for(worker, config.device)
    study, storage = opened if opened is not None else _open_study(config, worker)
    if isinstance(storage, JournalStorage):  # RDB storages have Optuna's heartbeat
        fail_stale_trials(storage, study.study_name, config.heartbeat_grace)
    if n_finished(study) >= config.n_trials:
        return
    store = Store(config.cache, writer_id=f"{os.getpid()}-{worker}")  # unwritable: stop now
    data = _load_data(config, device)
    objective = Objective(
        config.proxy,
        data,
        store,
        seed=config.seed,
        device=device,
        proxies=config.proxies,
        heartbeat_interval=config.heartbeat_interval,
        stage=make_stage(config, data, store, device),
    )

    def stop_when_done(study: optuna.Study, _trial: FrozenTrial) -> None:
        raise_if_interrupted()  # a signal whose exception was dropped stops here
        if n_finished(study) >= config.n_trials:
            study.stop()

    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = [stop_when_done]
    if callback is not None:
        callbacks.append(callback)
    before = {t.number for t in study.get_trials(deepcopy=False)}
    try:
        study.optimize(
            objective,
            timeout=config.timeout,
            catch=(TrainingDiverged,),
            callbacks=callbacks,
            gc_after_trial=False,
        )
    except KeyboardInterrupt:
        _fail_interrupted(storage, study.study_name, before)
        raise


def _fail_interrupted(storage: BaseStorage, study_name: str, before: set[int]) -> None:
    """Fail the trials this process left RUNNING when a signal arrived, as ``interrupted``.

    Optuna itself fails a trial whose objective the signal went through, before
    an attribute can be added (a finished trial is read-only): a FAIL without a
    ``fail_reason`` does not count toward ``n_trials`` either. A signal during
    sampling or bookkeeping leaves the trial RUNNING: ours are the trials
    tagged with this process's :data:`WORKER_ID`, or untagged ones created
    since this run started.
    """
    study_id = storage.get_study_id_from_name(study_name)
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        tag = trial.user_attrs.get(WORKER_ATTR)
        if tag == WORKER_ID or (tag is None and trial.number not in before):
            _fail_trial(storage, study_id, trial, INTERRUPTED_REASON)


def _worker_entry(config_dict: dict[str, Any], worker: int, n_threads: int, log_level: int) -> None:
    """Entry point of a spawned worker process (its own interpreter: it sets up logging)."""
    from nasnc._config import from_mapping

    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = from_mapping(SearchConfig, config_dict)
    # Ctrl-C reaches every worker, SIGTERM is forwarded by the parent: the worker
    # fails its running trial and exits quietly
    with stop_on_signals(), contextlib.suppress(KeyboardInterrupt):
        _run_worker(config, worker, n_threads)


def counts_toward_n_trials(trial: FrozenTrial) -> bool:
    """Whether ``trial`` reached a verdict about its cell (see the module docstring)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    if trial.state != TrialState.FAIL:
        return False
    reason = trial.user_attrs.get(FAIL_REASON_ATTR)
    return (
        isinstance(reason, str)
        and reason != INTERRUPTED_REASON
        and not reason.startswith(STALE_REASON)
    )


def n_finished(study: optuna.Study) -> int:
    """Trials of ``study`` that count towards ``n_trials`` (:func:`counts_toward_n_trials`)."""
    return sum(map(counts_toward_n_trials, study.get_trials(deepcopy=False)))


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int) -> int:
    """Torch threads per worker so that threads x workers <= cores (at least one each).

    Measured here: oversubscribing 2 cores slowed training 10-100x.
    """
    return max(1, cores // max(1, workers))


def run_search(
    config: SearchConfig,
    *,
    progress: Callable[[optuna.Study], None] | None = None,
) -> optuna.Study:
    """Run (or resume) the study to ``config.n_trials`` finished trials.

    With ``workers == 1`` the study runs in this process; otherwise
    ``workers`` processes share the storage and the cores are divided
    between them (torch threads per worker x workers <= cores).
    ``progress(study)`` is called after each finished trial (one worker) or
    about once a second (several).

    Ctrl-C and SIGTERM raise :class:`~nasnc_search._signals.Interrupted` (a
    ``KeyboardInterrupt`` carrying the exit status) once the trials in flight
    are failed and the workers have stopped.
    """
    with stop_on_signals():
        return _run_search(config, progress)


def _run_search(
    config: SearchConfig, progress: Callable[[optuna.Study], None] | None
) -> optuna.Study:
    opened = _open_study(config, 0)
    study = opened[0]
    if n_finished(study) < config.n_trials:
        screen_study(config, study)  # stage 1: free scores, shortlist enqueued
    if config.workers == 1:
        if progress is not None:
            progress(study)
        _run_worker(
            config,
            0,
            config.threads,
            callback=(lambda s, _t: progress(s)) if progress is not None else None,
            opened=opened,
        )
        return study

    cores = _usable_cores()
    n_threads = config.threads or threads_per_worker(config.workers, cores)
    if config.workers > cores:
        logger.warning(
            "%d workers on %d cores: each gets one thread and they will contend",
            config.workers,
            cores,
        )
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(
            target=_worker_entry,
            args=(config.to_dict(), i, n_threads, logging.getLogger().getEffectiveLevel()),
            name=f"nasnc-worker-{i}",
        )
        for i in range(config.workers)
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            if progress is not None:
                progress(study)
            time.sleep(1.0)
    except KeyboardInterrupt as exc:
        # Ctrl-C in a terminal reaches every worker; SIGTERM reaches only this process
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        for p in procs:
            if p.is_alive() and p.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)
        for p in procs:
            p.join(timeout=30)
        raise
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    if progress is not None:
        progress(study)
    bad = [(p.name, p.exitcode) for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise NasncError("worker(s) failed: " + ", ".join(f"{n} exit status {c}" for n, c in bad))
    return study


@dataclass(frozen=True)
class SearchSummary:
    """What a study found; ``to_dict()`` is the ``--format json`` output.

    ``screened`` counts the cells scored in stage 1, ``trained`` the
    distinct cells trained (completed or pruned) in stage 2. ``best_found``
    is the study's answer, the cell chosen by ``pick`` (its ``arch``,
    ``trial``, combined ``score``, what it was picked ``by`` and, when known,
    its benchmark accuracy ``true_acc``). With a benchmark configured,
    ``regret`` is the space's best accuracy minus that of ``best_found``;
    ``top1_regret`` the same for the top cell by the first objective (βeff);
    ``best_trained`` the best true accuracy among all completed cells and
    ``best_trained_regret`` its regret (what stage 2 trained, whether or not
    the pick chose it); all in accuracy points, like ``true_acc``. A
    multi-objective study lists its non-dominated trials in ``pareto_front``.
    """

    study_name: str
    storage: str
    completed: int
    pruned: int
    failed: int
    running: int
    cache_hits: int
    top: list[dict[str, Any]]
    regret: float | None = None
    top1_regret: float | None = None
    best_found: dict[str, Any] | None = None
    best_in_space: float | None = None
    benchmark: str | None = None
    benchmark_error: str | None = None
    screened: int = 0
    trained: int = 0
    best_trained: float | None = None
    best_trained_regret: float | None = None
    objectives: list[str] | None = None
    pareto_front: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study_name,
            "storage": self.storage,
            "completed": self.completed,
            "pruned": self.pruned,
            "failed": self.failed,
            "running": self.running,
            "cache_hits": self.cache_hits,
            "top": self.top,
            "regret": self.regret,
            "top1_regret": self.top1_regret,
            "best_found": self.best_found,
            "best_in_space": self.best_in_space,
            "benchmark": self.benchmark,
            "benchmark_error": self.benchmark_error,
            "screened": self.screened,
            "trained": self.trained,
            "best_trained": self.best_trained,
            "best_trained_regret": self.best_trained_regret,
            "objectives": self.objectives,
            "pareto_front": self.pareto_front,
        }


def _finite(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def summarize(
    study: optuna.Study, config: SearchConfig, *, top_k: int = 10, truth: Any = None
) -> SearchSummary:
    """Counts by state, cache hits and the top architectures (one per canonical class).

    ``truth`` is an open :class:`nasnc.bench.GroundTruth`; by default the
    config's ``benchmark`` is opened. A ground truth that cannot be opened is
    reported in ``benchmark_error`` (logged), never fatal: the counts and the
    table are what a finished study must always show.
    """
    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    hits = sum(bool(t.user_attrs.get("cache_hit")) for t in trials if t.state in FINISHED_STATES)
    done = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE and _finite(_first(t)) is not None),
        key=lambda t: float(_first(t)),  # type: ignore[arg-type]
        reverse=True,
    )
    seen: set[str] = set()
    ranked: list[dict[str, Any]] = []
    for t in done:
        canonical = str(t.user_attrs.get("canonical", t.user_attrs.get("arch")))
        if canonical in seen:
            continue
        seen.add(canonical)
        ranked.append(
            {
                "trial": t.number,
                "arch": t.user_attrs.get("arch"),
                "beta_eff": _finite(t.user_attrs.get("beta_eff", _first(t))),
                "beta_eff_std": _finite(t.user_attrs.get("beta_eff_std")),
                "proxy_valid_acc": _finite(t.user_attrs.get("proxy_valid_acc")),
                "aggregate": _finite(t.user_attrs.get("aggregate")),
                "cost_s": _finite(t.user_attrs.get("cost_s")),
                "cache_hit": bool(t.user_attrs.get("cache_hit")),
            }
        )
    chosen, pick_by, pick_score = pick(trials, config.pick, fallback=config.objectives[0])
    best_found = None
    if chosen is not None:
        best_found = {
            "trial": chosen.number,
            "arch": chosen.user_attrs.get("arch"),
            "score": _finite(pick_score),
            "by": pick_by,
            "state": chosen.state.name,
            "true_acc": None,
        }
    extra: dict[str, Any] = {}
    if (truth is not None or config.benchmark) and (ranked or best_found):
        try:
            extra = _add_ground_truth(ranked, config, truth, best_found)
        except NasncError as exc:
            logger.warning("no ground truth in the summary: %s", exc)
            extra = {"benchmark_error": str(exc)}
    return SearchSummary(
        study_name=study.study_name,
        storage=config.storage_url,
        completed=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        running=count[TrialState.RUNNING],
        cache_hits=hits,
        top=ranked[:top_k],
        benchmark=config.benchmark,
        best_found=best_found,
        screened=int(study.user_attrs.get(SCREEN_ATTR, {}).get("size", 0)),
        trained=trained_cells(study),
        objectives=list(config.objectives),
        pareto_front=pareto_front(study, config.objectives) or None,
        **extra,
    )


def _first(trial: FrozenTrial) -> float | None:
    """The first objective value (``trial.value`` raises for multi-objective trials)."""
    return trial.values[0] if trial.values else None


def _add_ground_truth(
    ranked: list[dict[str, Any]],
    config: SearchConfig,
    truth: Any,
    best_found: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fill ``true_acc`` (validation accuracy, %) of every ranked row and of
    ``best_found``; return the regrets."""
    from nasnc.bench import open_benchmark
    from nasnc.metrics import regret

    if truth is None:
        assert config.benchmark is not None
        truth = open_benchmark(config.benchmark)
    dataset = config.benchmark_dataset or dataset_info(config.proxy.dataset).benchmark
    for row in ranked:
        row["true_acc"] = truth.get(row["arch"], dataset, "valid")
    _arch, best = truth.best(dataset, "valid")
    found = [float(r["true_acc"]) for r in ranked if r["true_acc"] is not None]
    first = ranked[0]["true_acc"] if ranked else None
    picked = None
    if best_found is not None and best_found["arch"]:
        picked = truth.get(best_found["arch"], dataset, "valid")
        best_found["true_acc"] = None if picked is None else float(picked)
    return {
        "best_in_space": float(best),
        "best_trained": max(found) if found else None,
        "best_trained_regret": float(regret(found, float(best))) if found else None,
        "regret": None if picked is None else float(best) - float(picked),
        "top1_regret": None if first is None else float(best) - float(first),
    }
