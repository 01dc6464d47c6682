"""Create or resume a study and run its workers.

Storages are made in :mod:`nasnc_search._storage`, the outcome summarised in
:mod:`nasnc_search._summary`.

Interruptions and ``n_trials``
------------------------------
Ctrl-C and SIGTERM stop a run at a safe point (:mod:`nasnc_search._signals`): the
trial in flight is failed with ``fail_reason = "interrupted"``, finished trials
are kept. ``n_trials`` counts the trials that reached a verdict about their
cell: COMPLETE, PRUNED, and FAIL with a reason about the cell (training
diverged, or the objective is undefined for it). Trials failed by an
interruption, a stale heartbeat (a killed worker) or a crash do not count, so
rerunning the same command completes the requested number.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import torch
from optuna.storages import BaseStorage, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from nasnc import ConfigError, NasncError, __version__
from nasnc._process import watch_parent
from nasnc.pipeline import run_precision, threads_per_worker, usable_cores
from nasnc.store import Store
from nasnc.train import resolve_device

from . import _samplers
from ._config import PrunerConfig, SamplerConfig, SearchConfig
from ._objective import (
    WORKER_ATTR,
    WORKER_ID,
    Objective,
    ObjectiveUndefined,
    TrainingDiverged,
)
from ._signals import (
    INTERRUPTED_REASON,
    Interrupted,
    deferred,
    quiet_interrupts,
    raise_if_interrupted,
    stop_on_signals,
)
from ._stages import (
    directions,
    load_study_data,
    make_stage,
    screen_study,
)
from ._storage import (
    counts_toward_n_trials,
    fail_stale_trials,
    fail_trial,
    local_file,
    make_storage,
    n_finished,
    shown_url,
    storage_error,
)

__all__ = [
    "counts_toward_n_trials",
    "make_pruner",
    "make_sampler",
    "n_finished",
    "open_study",
    "run_search",
    "threads_per_worker",
]

logger = logging.getLogger(__name__)


def make_sampler(config: SamplerConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The configured sampler (see :mod:`nasnc_search._samplers`)."""
    return _samplers.make_sampler(config, seed)


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


def _check_run_inputs(config: SearchConfig) -> None:
    """Stop before a study is created when its data is not there (downloads it with
    ``download``) or its cache cannot be used (a file, a folder of something else,
    not writable; a usable one is created): a study made by a run that cannot start
    would keep its config and refuse the corrected rerun."""
    from nasnc.data import locate_dataset

    locate_dataset(config.proxy.dataset, config.data_root, download=config.download)
    Store(config.cache)


def open_study(config: SearchConfig, *, worker: int = 0, to_run: bool = False) -> optuna.Study:
    """Create the study or load it; refuse to resume it under a different proxy, seed,
    screen, or device and precision (``"cpu float32"``, ``"cuda bfloat16"``). A device
    this machine lacks stops before a study is created, and so, with ``to_run`` (the
    study is opened to run it), does a dataset not found under the data root; an
    existing study can still be read here (a run of it fails when it needs the device
    or the data)."""
    return _open_study(config, worker, to_run=to_run)[0]


def _open_study(
    config: SearchConfig, worker: int, *, to_run: bool = False
) -> tuple[optuna.Study, BaseStorage]:
    """The study and the storage object it was opened on (Optuna may wrap the latter)."""
    make_sampler(config.sampler, 0)  # a bad sampler kwarg stops before a study is created,
    pruner = make_pruner(config.pruner)  # and so does a bad pruner kwarg
    # so does a device this machine lacks (its type and precision are in every cache
    # key); a study made elsewhere may still be read here, its runs only fail to start
    run_device: str | None = None
    # and so does a missing dataset: a study is recorded only once its run can start
    lacking: ConfigError | None = None
    local = local_file(config.storage_url)
    no_file = local is not None and not local.exists()  # a file not made yet: no study
    try:
        run_device = _run_device(config)
        if no_file and to_run:
            _check_run_inputs(config)
    except ConfigError as exc:
        if no_file:
            raise
        lacking = exc
    storage = make_storage(
        config.storage_url,
        heartbeat_interval=config.heartbeat_interval,
        grace=config.heartbeat_grace,
    )
    if not no_file and config.study_name not in {s.study_name for s in storage.get_all_studies()}:
        if lacking is not None:
            raise lacking
        if to_run:
            _check_run_inputs(config)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=config.study_name,
            directions=directions(config.objectives),
            pruner=pruner,
            load_if_exists=True,
        )
    except OSError as exc:  # a journal in a folder this process cannot write (its lock file)
        raise storage_error(config.storage_url, exc) from exc
    except ValueError as exc:  # a damaged journal line (JSON or UTF-8)
        raise storage_error(config.storage_url, exc, kind=True) from exc
    # a loaded study keeps its stored directions, whatever create_study was given
    wanted = directions(config.objectives)
    if list(study.directions) != list(wanted):
        shown = ", ".join(d.name.lower() for d in study.directions)
        raise ConfigError(
            f"study {config.study_name!r} in {shown_url(config.storage_url)} was created to "
            f"{shown}, but objectives={list(config.objectives)} need "
            f"{', '.join(d.name.lower() for d in wanted)}; use another --study name."
        )
    if study.metric_names is None:
        with warnings.catch_warnings():  # "experimental" in Optuna; shown by the dashboard
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(config.objectives))
    elif list(study.metric_names) != list(config.objectives):
        raise ConfigError(
            f"study {config.study_name!r} in {shown_url(config.storage_url)} optimises "
            f"{study.metric_names}, but got objectives={list(config.objectives)}; "
            "use another --study name."
        )
    study.sampler = make_sampler(config.sampler, _sampler_seed(config, study, worker))
    stored = study.user_attrs.get("proxy")
    current = config.proxy.to_dict()
    if stored is None:
        study.set_user_attr("proxy", current)
        recorded = config.to_dict()
        if config.storage is not None:  # anyone who reads the study reads its attributes
            recorded["storage"] = shown_url(config.storage)
        study.set_user_attr("config", recorded)
        study.set_user_attr("seed", config.seed)
        if run_device is not None:
            study.set_user_attr("device", run_device)
        study.set_user_attr("nasnc_version", __version__)
        return study, storage
    differ = _differing(stored, current)
    if study.user_attrs.get("seed", config.seed) != config.seed:
        differ.append("seed")
    before = study.user_attrs.get("device", run_device)  # older studies: not recorded
    # bf16 on CUDA, fp32 on the CPU: other runs, other cache keys
    if run_device is not None and before != run_device:
        differ.append(f"device ({before} in the study, {run_device} here)")
    # the screen's pool and scores give every trial its aggregate (a study recorded
    # before the screen existed has none: nothing to compare)
    screen = (study.user_attrs.get("config") or {}).get("screen")
    now = config.to_dict()["screen"]
    if screen is not None:  # a key added since the study was recorded had its default
        screen = {**SearchConfig().to_dict()["screen"], **screen}
    if screen is not None:
        differ += [f"screen.{k}" for k in _differing(screen, now)]
    if differ:
        raise ConfigError(
            f"study {config.study_name!r} in {shown_url(config.storage_url)} was created with a "
            f"different config (differs in: {', '.join(differ)}); trials would not be "
            "comparable. Use another --study name."
        )
    return study, storage


def _run_device(config: SearchConfig) -> str:
    """What the study's runs compute on, e.g. ``"cpu float32"``, ``"cuda bfloat16"``
    (:class:`ConfigError` for a device this machine lacks)."""
    dev = resolve_device(config.device)
    return f"{dev.type} {run_precision(config.proxy, dev)}"


def _differing(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two config sections, sorted."""
    return sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))


def _device_for(worker: int, device: str) -> str:
    if device in ("auto", "cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return f"cuda:{worker % torch.cuda.device_count()}"
    return device


def _sweep_stale(study: optuna.Study, storage: BaseStorage, grace: int) -> None:
    """Fail the trials of dead processes: on a journal file by nasnc's ``heartbeat``
    attribute (Optuna has no heartbeat there), on SQLite/PostgreSQL by Optuna's own
    heartbeat (the database's clock, not this host's). Optuna sweeps only when a
    trial starts, so a study already full at a rerun would keep them RUNNING."""
    if isinstance(storage, JournalStorage):
        fail_stale_trials(storage, study.study_name, grace)
        return
    with warnings.catch_warnings():  # "experimental" in Optuna since 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _run_worker(
    config: SearchConfig,
    worker: int,
    n_threads: int,
    callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    opened: tuple[optuna.Study, BaseStorage] | None = None,
) -> None:
    torch.set_num_threads(n_threads)
    study, storage = opened if opened is not None else _open_study(config, worker)
    _sweep_stale(study, storage, config.heartbeat_grace)
    if n_finished(study) >= config.n_trials:
        return  # a finished study is read on any machine, with its device or not
    device = _device_for(worker, config.device)
    dev = resolve_device(device)  # a device this machine lacks stops the runs here
    if dev.type == "cuda" and dev.index is not None:
        torch.cuda.set_device(dev)  # what asks the "current" device asks this worker's
    store = Store(config.cache, writer_id=f"{os.getpid()}-{worker}")  # unwritable: stop now
    data = load_study_data(config, device)
    objective = Objective(
        config.proxy,
        data,
        store,
        seed=config.seed,
        device=device,
        proxies=config.trial_proxies,
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
    try:
        with deferred():  # a signal in Optuna's bookkeeping waits for the objective or callback
            study.optimize(
                objective,
                timeout=config.timeout,
                catch=(TrainingDiverged, ObjectiveUndefined),
                callbacks=callbacks,
                gc_after_trial=False,
            )
        raise_if_interrupted()  # recorded after the last callback
    except KeyboardInterrupt:
        _fail_interrupted(storage, study.study_name)
        raise


def _fail_interrupted(storage: BaseStorage, study_name: str) -> None:
    """Fail the trials this process left RUNNING when a signal arrived, as ``interrupted``.

    A trial the signal reached inside the objective carries its reason already
    and Optuna has failed it; a signal during Optuna's bookkeeping is deferred
    (:mod:`nasnc_search._signals`). Ours are the trials tagged with this
    process's :data:`WORKER_ID` (the objective's first act); an untagged
    RUNNING trial may be another machine's, just started, and is left to the
    stale-trial sweep.
    """
    study_id = storage.get_study_id_from_name(study_name)
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get(WORKER_ATTR) == WORKER_ID:
            fail_trial(storage, study_id, trial, INTERRUPTED_REASON)


def _stop_with_parent(parent: int, every_s: float = 1.0) -> threading.Thread:
    """SIGTERM this worker once its parent process is gone.

    A parent killed by SIGKILL cannot stop its workers: they would train on
    as orphans, beside the workers of a rerun, past ``n_trials``. The SIGTERM
    goes through :func:`~nasnc_search._signals.stop_on_signals`, which fails
    the trial in flight as ``interrupted``.
    """

    def stop() -> None:
        logger.warning("the search process %d is gone: this worker stops", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    return watch_parent(parent, stop, every_s=every_s)


def _worker_entry(config_dict: dict[str, Any], worker: int, n_threads: int, log_level: int) -> None:
    """Entry point of a spawned worker process (its own interpreter: it sets up logging)."""
    from nasnc._config import from_mapping

    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_interrupts()
    _stop_with_parent(os.getppid())
    config = from_mapping(SearchConfig, config_dict)
    # Ctrl-C reaches every worker, SIGTERM is forwarded by the parent: the worker
    # fails its running trial and exits quietly
    with stop_on_signals(), contextlib.suppress(KeyboardInterrupt):
        _run_worker(config, worker, n_threads)


def run_search(
    config: SearchConfig,
    *,
    progress: Callable[[optuna.Study], None] | None = None,
    screen_progress: Callable[[int, int], None] | None = None,
) -> optuna.Study:
    """Run (or resume) the study to ``config.n_trials`` finished trials.

    With ``workers == 1`` the study runs in this process; otherwise
    ``workers`` processes share the storage and the cores are divided
    between them (torch threads per worker x workers <= cores, unless
    ``threads`` is set or there are more workers than cores: one thread each).
    ``progress(study)`` is called after each finished trial (one worker) or
    about once a second (several); ``screen_progress(done, total)`` after
    each cell of the stage-1 screen.

    Ctrl-C and SIGTERM raise :class:`~nasnc_search._signals.Interrupted` (a
    ``KeyboardInterrupt`` carrying the exit status) once the trials in flight
    are failed and the workers have stopped.
    """
    with stop_on_signals():
        return _run_search(config, progress, screen_progress)


def _run_search(
    config: SearchConfig,
    progress: Callable[[optuna.Study], None] | None,
    screen_progress: Callable[[int, int], None] | None = None,
) -> optuna.Study:
    opened = _open_study(config, 0, to_run=True)
    study = opened[0]
    if config.workers > 1 and config.storage_url.startswith("sqlite"):
        logger.warning(
            "%d workers share the SQLite file %s: SQLite serialises their writes; "
            "a journal file or PostgreSQL scales better (storage:)",
            config.workers,
            config.storage_url,
        )
    cores = usable_cores()
    n_threads = config.threads or threads_per_worker(config.workers, cores)
    if n_finished(study) < config.n_trials:
        # stage 1: free scores (in the study's worker processes), shortlist enqueued
        screen_study(
            config, study, workers=config.workers, threads=n_threads, progress=screen_progress
        )
    if config.workers == 1:
        if progress is not None:
            progress(study)
        _run_worker(
            config,
            0,
            n_threads,
            callback=(lambda s, _t: progress(s)) if progress is not None else None,
            opened=opened,
        )
        return study

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
    # a worker killed meanwhile (an OOM kill, say) left its trial RUNNING: it may be
    # past the grace by now
    _sweep_stale(study, opened[1], config.heartbeat_grace)
    bad = [(p.name, p.exitcode) for p in procs if p.exitcode not in (0, None)]
    if bad:
        what = ", ".join(f"{n} exit status {c}" for n, c in bad)
        killed = all(c is not None and c < 0 for _, c in bad)  # by a signal (an OOM kill)
        if not killed or n_finished(study) < config.n_trials:
            raise NasncError(f"worker(s) failed: {what}")
        # the others finished the study: its summary is what the user ran it for
        logger.warning("worker(s) killed: %s; the others finished the study", what)
    return study
