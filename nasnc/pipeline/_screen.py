"""Stage 1 of a search: score many cells with free scores at initialisation, cached.

:func:`screen_archs` builds each cell's proxy network at initialisation (the
same network, seed and batch as :func:`~nasnc.pipeline.evaluate_arch` uses for
its baselines) and computes zero-cost scores on the first 64 training images.
No training: a fraction of a second per cell on one CPU core for NASWOT,
synflow, jacob_cov and FLOPs (measured figures and the command that produces
them: ``docs/benchmarks.md``, "Screen throughput").

Results are cached in the :class:`~nasnc.store.Store` as ordinary entries
(the format is unchanged) marked *score-only*:

* the config is :func:`screen_config` -- only the fields that change a score
  at initialisation (dataset, data selection, network, probe, device type),
  plus ``"stage": "screen"`` -- so score-only entries never share a key with a
  trained run, and every study with the same network reuses them whatever
  its training recipe;
* the trajectory is empty; the summary holds the required scalars as NaN
  (nothing was trained), ``cost_s`` (seconds spent scoring) and
  ``score_only = True``; ``scores`` holds the free scores.

A later screen reads the cached scores from the store's index (no HDF5 file
per cell) and computes only what is missing.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing as mp
import multiprocessing.pool
import multiprocessing.synchronize
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nasnc._errors import ConfigError
from nasnc._process import watch_parent
from nasnc.data import ProxyData
from nasnc.pipeline._config import ProxyConfig
from nasnc.pipeline._evaluate import _baselines, _build, _check_data, resolved_config
from nasnc.space import Arch
from nasnc.store import Entry, Store, config_hash, make_key
from nasnc.train import resolve_device

__all__ = [
    "MIN_PARALLEL",
    "SCREEN_FIELDS",
    "SERIAL_SCORES",
    "ScreenResult",
    "score_only_entry",
    "screen_archs",
    "screen_config",
    "threads_per_worker",
    "usable_cores",
]

logger = logging.getLogger(__name__)

#: Fields of the resolved proxy config that change a score at initialisation.
SCREEN_FIELDS: tuple[str, ...] = (
    "dataset",
    "resolution",
    "train_subset",
    "subset_mode",
    "valid_size",
    "valid_from",
    "channels",
    "cells_per_stage",
    "probe",
    "probe_seed",
    "n_train",
    "n_valid",
    "data_digest",
    "device_type",
)
#: Images of the scoring batch (the first training images, as in evaluate_arch).
SCORE_BATCH = 64


def screen_config(
    config: ProxyConfig, data: ProxyData, *, device: str | torch.device = "auto"
) -> dict[str, Any]:
    """The config stored (and hashed) with score-only entries of ``config`` on ``data``,
    scored on ``device``."""
    full = resolved_config(config, data, device=device)
    out = {name: full[name] for name in SCREEN_FIELDS if name in full}
    out["stage"] = "screen"
    out["score_batch"] = SCORE_BATCH
    return out


def score_only_entry(
    arch: Arch, config: Mapping[str, Any], seed: int, scores: Mapping[str, float], cost_s: float
) -> Entry:
    """A score-only :class:`~nasnc.store.Entry` (see the module docstring)."""
    summary: dict[str, float | bool] = {
        "beta_eff": math.nan,
        "beta_eff_std": math.nan,
        "beta_eff_last": math.nan,
        "proxy_valid_acc": math.nan,
        "cost_s": float(cost_s),
        "diverged": False,
        "score_only": True,
    }
    return Entry(
        arch=str(arch),
        canonical=arch.canonical(),
        dataset=str(config["dataset"]),
        seed=int(seed),
        config=dict(config),
        trajectory={},
        summary=summary,
        scores={k: float(v) for k, v in scores.items()},
    )


@dataclass(frozen=True)
class ScreenResult:
    """Free scores of a pool of cells, one row per cell in the order screened.

    Attributes
    ----------
    archs : list of str
    keys : list of str
        Cache keys of the score-only entries.
    scores : dict of str to ndarray
        One column per score name (NaN where a score is not finite).
    cached : int
        Cells whose scores all came from the cache, ``twins`` included.
    twins : int
        Cells served by a twin earlier in the pool (one network, one cache
        entry): counted in ``cached``, but a cold screen scores them no more.
    seconds : float
        Wall-clock of the screen.
    """

    archs: list[str]
    keys: list[str]
    scores: dict[str, np.ndarray]
    cached: int = 0
    seconds: float = 0.0
    config_hash: str = ""
    twins: int = 0
    per_cell_s: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.archs)


#: Fewest cells to score before ``workers > 1`` starts processes (each takes
#: seconds of CPU to spawn and import torch; below this the serial screen is faster).
MIN_PARALLEL = 64


@dataclass(frozen=True)
class _Job:
    """What scoring one cell needs besides the cell (sent once to each worker)."""

    config: ProxyConfig
    data: ProxyData
    resolved: dict[str, Any]
    seed: int
    device: torch.device
    store: Store | None


#: Scores measured in wall-clock time: several screen processes at once would
#: inflate them (they share the cores), so a screen asking for one runs serially.
SERIAL_SCORES: frozenset[str] = frozenset({"latency"})
#: Seconds :func:`_score_parallel` waits for the spawned processes to finish
#: the cell they are scoring before it terminates them.
STOP_WAIT_S = 10.0


#: One cell to score: row, cell, names missing, scores and cost already cached.
_Task = tuple[int, str, list[str], dict[str, float], float]


def _score_cell(job: _Job, task: _Task) -> tuple[int, dict[str, float], float]:
    """Score the missing names of one cell and cache the entry; (row, scores, seconds)."""
    row, arch_str, missing, have, prior_cost = task
    arch = Arch.parse(arch_str)
    t0 = time.perf_counter()
    model = _build(arch, job.config, job.seed, job.device)
    scores = dict(have)
    scores.update(_baselines(model, job.data, missing, job.seed, job.device))
    cost = time.perf_counter() - t0
    if job.store is not None:
        job.store.put(score_only_entry(arch, job.resolved, job.seed, scores, cost + prior_cost))
    return row, scores, cost


#: What a screen process returns for a chunk: (row, scores, seconds) per cell scored.
_Chunk = list[tuple[int, dict[str, float], float]]

_worker_job: _Job | None = None
_worker_stop: multiprocessing.synchronize.Event | None = None


def _init_worker(job: _Job, threads: int, stop: multiprocessing.synchronize.Event) -> None:
    """Initialiser of a screen process: its torch threads, its job and the stop event."""
    global _worker_job, _worker_stop
    # the parent decides when to stop (and terminates us); Ctrl-C in a terminal
    # reaches the whole process group and would only break the pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(os.getppid(), lambda: os._exit(1))  # SIGKILL leaves no one to stop us
    torch.set_num_threads(threads)
    _worker_job = job
    _worker_stop = stop


def _score_chunk(tasks: list[_Task]) -> _Chunk:
    """Score ``tasks`` in a screen process; fewer once the parent has every cell."""
    if _worker_job is None or _worker_stop is None:  # pragma: no cover - set by _init_worker
        raise RuntimeError("_score_chunk runs in a screen process set up by _init_worker")
    out: _Chunk = []
    for task in tasks:
        if _worker_stop.is_set():
            break
        out.append(_score_cell(_worker_job, task))
    return out


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int) -> int:
    """Torch threads per worker so that threads x workers <= cores (at least one each).

    Measured here: oversubscribing 2 cores slowed training 10-100x.
    """
    return max(1, cores // max(1, workers))


def _worker_data(data: ProxyData) -> ProxyData:
    """Only the scoring batch of ``data``, on the CPU (what a screen process receives)."""
    n = min(SCORE_BATCH, int(data.train_y.shape[0]))
    return dataclasses.replace(
        data,
        train_x=data.train_x[:n].cpu().clone(),
        train_y=data.train_y[:n].cpu().clone(),
        valid_x=data.valid_x[:0].cpu().clone(),
        valid_y=data.valid_y[:0].cpu().clone(),
    )


def _stop(
    pool: multiprocessing.pool.Pool,
    stop: multiprocessing.synchronize.Event,
    pending: Sequence[multiprocessing.pool.AsyncResult[_Chunk]],
) -> None:
    """Stop ``pool`` once its processes finish the cell in flight (at most :data:`STOP_WAIT_S`).

    A process terminated while idle leaves nothing behind; one terminated in
    the middle of a cell may leave a temporary file (``Store.clean_tmp``).
    """
    stop.set()
    deadline = time.monotonic() + STOP_WAIT_S
    for res in pending:
        res.wait(max(0.0, deadline - time.monotonic()))
    pool.terminate()
    pool.join()


def _score_parallel(
    job: _Job,
    tasks: Sequence[_Task],
    workers: int,
    threads: int,
    done: Callable[[int, dict[str, float], float], None],
) -> None:
    """Score ``tasks`` in this process and ``workers - 1`` spawned ones; ``done`` per cell.

    The cells are cut in small chunks. The spawned processes take chunks from
    the front (one queued per process at a time) while this process, busy
    from the first second (a process takes seconds to start), scores chunks
    from the back. When none is left, this process also scores the chunks
    still queued or in flight elsewhere, cell by cell, until their process
    answers (the same scores either way; the spare copy of an entry replaces
    the other). So a short pool costs little more than the serial screen,
    whatever the start-up. On return no spawned process is left: they are
    told to stop after their current cell, then terminated and joined
    (at once when interrupted or when a process failed).
    """
    size = max(1, min(4, len(tasks) // (workers * 8)))
    chunks = [list(tasks[i : i + size]) for i in range(0, len(tasks), size)]
    wjob = dataclasses.replace(job, data=_worker_data(job.data))
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    pool = ctx.Pool(processes=workers - 1, initializer=_init_worker, initargs=(wjob, threads, stop))
    recorded: set[int] = set()
    theirs: dict[multiprocessing.pool.AsyncResult[_Chunk], list[_Task]] = {}
    front, back = 0, len(chunks)

    def record(row: int, scores: dict[str, float], cost: float) -> None:
        if row not in recorded:
            recorded.add(row)
            done(row, scores, cost)

    def harvest() -> None:
        nonlocal front
        for res in [r for r in theirs if r.ready()]:
            del theirs[res]
            for row, scores, cost in res.get():  # re-raises a process's exception
                record(row, scores, cost)
        while len(theirs) < workers - 1 and front < back:
            theirs[pool.apply_async(_score_chunk, (chunks[front],))] = chunks[front]
            front += 1

    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # this process is one of the workers
    try:
        harvest()
        while front < back:
            back -= 1
            for task in chunks[back]:
                record(*_score_cell(job, task))
                harvest()
        for res, chunk in list(theirs.items()):  # what the others have not answered yet
            for task in chunk:
                if res.ready():
                    break
                if task[0] not in recorded:
                    record(*_score_cell(job, task))
            harvest()
        _stop(pool, stop, list(theirs))
    except BaseException:
        # interrupted (Ctrl-C, SIGTERM turned into an exception) or a process failed:
        # the finished cells are cached, those in flight are lost, none half-written
        pool.terminate()
        pool.join()
        raise
    finally:
        torch.set_num_threads(before)


def screen_archs(
    archs: Sequence[Arch | str],
    config: ProxyConfig,
    data: ProxyData,
    *,
    names: Sequence[str],
    seed: int = 0,
    device: str | torch.device = "auto",
    store: Store | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    threads: int | None = None,
) -> ScreenResult:
    """Free scores at initialisation of every cell of ``archs``, from the cache when present.

    Parameters
    ----------
    archs : sequence of Arch or str
        The pool; cells that build the same network (:meth:`Arch.graph_form`)
        share one cache entry and are scored once: a later twin takes the
        first's scores and counts as cached.
    config : ProxyConfig
        The proxy network (width, cells per stage, probe) and data selection.
    data : ProxyData
        Loaded for ``config``; the first 64 training images are the batch.
    names : sequence of str
        Per-network proxies of :data:`nasnc.proxies.PROXIES`.
    seed : int
        Backbone initialisation (as in :func:`~nasnc.pipeline.evaluate_arch`).
    store : Store, optional
        Cache of score-only entries; only missing scores are computed.
    progress : callable, optional
        ``progress(done, total)`` after each cell (in the order cells finish).
    workers : int, default 1
        Processes scoring the cells: this one and ``workers - 1`` spawned
        ones, each writing its own entries to ``store``. Used on the CPU when
        at least :data:`MIN_PARALLEL` cells need scoring; the scores are
        those of the serial screen. No spawned process outlives the call.
        A screen asking for a score of :data:`SERIAL_SCORES` (``latency``, a
        wall-clock time) runs serially. An interrupted screen keeps every
        finished cell cached and loses only the cells in flight.
    threads : int, optional
        Torch threads of each process when ``workers > 1`` (this one's are
        restored afterwards; default: the usable cores divided among the
        workers, at least one).
    """
    from nasnc.proxies import PROXIES

    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in PROXIES]
    if not wanted or unknown:
        raise ConfigError(
            f"screen scores must name proxies of {', '.join(PROXIES)}, but got names={wanted!r}."
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive int, but got {workers=}.")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ConfigError(f"threads must be a positive int or None, but got {threads=}.")
    _check_data(config, data)
    dev = resolve_device(device)
    resolved = screen_config(config, data, device=dev)
    h = config_hash(resolved)
    known = {info.key: info for info in store.index(config_hash=h)} if store is not None else {}
    pool = [Arch.parse(a) for a in archs]
    columns = {n: np.full(len(pool), math.nan) for n in wanted}
    keys: list[str] = []
    per_cell: list[float] = []
    tasks: list[_Task] = []
    cached = 0
    finished = 0
    start = time.perf_counter()

    def record(row: int, have: Mapping[str, float]) -> None:
        nonlocal finished
        for n in wanted:
            columns[n][row] = float(have[n])
        finished += 1
        if progress is not None:
            progress(finished, len(pool))
        if finished % 500 == 0:
            logger.info("screened %d/%d cells (%d from the cache)", finished, len(pool), cached)

    # a pool of canonical cells can hold both of two twins (one network, one key):
    # the first is scored, the second takes its scores
    twins: dict[int, list[int]] = {}
    first_row: dict[str, int] = {}

    def done(row: int, scores: dict[str, float], cost: float) -> None:
        per_cell.append(cost)
        record(row, scores)
        for twin in twins.get(row, ()):
            record(twin, scores)

    for i, arch in enumerate(pool):
        key = make_key(arch, config.dataset, resolved, seed)
        keys.append(key)
        if key in first_row:
            twins.setdefault(first_row[key], []).append(i)
            continue
        first_row[key] = i
        info = known.get(key)
        have: dict[str, float] = dict(info.scores) if info is not None else {}
        missing = [n for n in wanted if n not in have]
        if missing:
            prior = float(info.summary.get("cost_s", 0.0)) if info is not None else 0.0
            tasks.append((i, str(arch), missing, have, prior))
        else:
            cached += 1
            record(i, have)
    scoring = {task[0] for task in tasks}
    n_twins = sum(len(rows) for rows in twins.values())
    cached += n_twins  # served by their first twin's entry: cached
    for row, rows in twins.items():
        if row not in scoring:  # that entry is already in the cache
            for twin in rows:
                record(twin, {n: columns[n][row] for n in wanted})

    job = _Job(config=config, data=data, resolved=resolved, seed=seed, device=dev, store=store)
    timed = sorted(SERIAL_SCORES.intersection(wanted))
    parallel = workers > 1 and dev.type == "cpu" and len(tasks) >= MIN_PARALLEL and not timed
    if parallel:
        n_threads = threads or threads_per_worker(workers, usable_cores())
        logger.info(
            "screen: scoring %d cells in %d processes (this one included), %d torch thread(s) each",
            len(tasks),
            workers,
            n_threads,
        )
        _score_parallel(job, tasks, workers, n_threads, done)
    else:
        if workers > 1 and tasks and dev.type != "cpu":
            logger.info("screen: one process on %s (processes are used on the CPU only)", dev)
        elif workers > 1 and len(tasks) >= MIN_PARALLEL and timed:
            logger.info(
                "screen: one process, not %d: %s is wall-clock time, which processes "
                "sharing the cores would inflate",
                workers,
                ", ".join(timed),
            )
        for task in tasks:
            done(*_score_cell(job, task))
    seconds = time.perf_counter() - start
    logger.info(
        "screen: %d cells, %d from the cache, %.1f s (%.3f s per scored cell)",
        len(pool),
        cached,
        seconds,
        float(np.median(per_cell)) if per_cell else 0.0,
    )
    return ScreenResult(
        archs=[str(a) for a in pool],
        keys=keys,
        scores=columns,
        cached=cached,
        seconds=seconds,
        config_hash=h,
        per_cell_s=per_cell,
        twins=n_twins,
    )
