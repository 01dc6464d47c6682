"""Search regret: what a two-stage search picks, against random search at the same budget.

Stage 1 (free scores at initialisation on the CPU proxy network, rank
aggregate of NASWOT, synflow, jacob_cov and FLOPs) is run for real over a
union pool (cached: a rerun scores nothing). Each seed draws its own pool of
``--pool`` cells from it, ranks them within that pool and reports, against the
builtin ground truth (cifar10-valid, 200-epoch validation accuracy; the
space's best is 91.61 %):

* ``free pick``: the top-1 cell by the aggregate (the screen's own pick; a
  study picks by aggregate + βeff among its completed cells);
* ``best in top-K``: the best true accuracy inside the shortlist, i.e. what
  stage 2 finds if its in-shortlist signal ranks the top perfectly (an upper
  bound for stage 2);
* ``random search (oracle)``: the best true accuracy among as many random
  cells as the same wall-clock buys at ``--train-s`` seconds per trained cell
  (it assumes random search then picks its best cell without error: an upper
  bound for random search).

With ``--train`` the shortlist of each seed is trained at the proxy budget
(cached; about 40 s per cell on one core) and the picks by proxy accuracy and
by βeff inside it are reported too.

    python benchmarks/search_regret.py                       # 5 seeds, pools of 1000
    python benchmarks/search_regret.py --union 600 --pool 300 --seeds 5
    python benchmarks/search_regret.py --train --top-k 5 --seeds 2

With ``--search CONFIG`` the real study runs instead, once per seed (the
code path of ``nasnc search``: stage 1 screen, top-K enqueued, stage 2 trained
with βeff streaming and pruned), each seed on a cold cache and a fresh
journal storage under ``--out``; stage sizes may be overridden. Each finished
seed is appended to ``--out``/results.jsonl with the code's git revision, and
a rerun with the same config and ``--out`` skips the seeds recorded there,
warning about any recorded by other code (a killed run loses only the study
in flight; delete the file to measure again). It reports the study's pick,
its best trained cell, post-hoc picks among the trained cells (proxy
accuracy, βeff, the aggregate plus proxy accuracy, plus the whole network's or
the probe's βeff of W - W0 after one epoch; βeff among the completed cells of
the screen's shortlist, and, for studies run with ``--set 'proxies=[grad_norm]'``,
aggregate + βeff + the negated grad_norm at initialisation; each of the last two
with its regret gap to the study's pick paired over seeds), and
random search (oracle) with as many cells as each study's measured wall-clock
buys at its median trained-cell cost (pruned runs included, which flatters it)
and, as "full runs", at its median completed-run cost (random search prunes
nothing, so this is what it pays per cell).

    python benchmarks/search_regret.py --search configs/cpu-30min.yaml --seeds 5 \
        --screen-size 1000 --top-k 8 --n-trials 16

With ``--final-stage M`` (and ``--final-seeds K``, default 1) each study's top
M completed cells by its pick score are trained again at K more seeds (the
study's seed + 1000, + 2000, ...: data subset, order and initialisation) after
the study, into its cache, and the picks among them by βeff averaged over the
seeds (and its variants) are reported beside the study's pick, with the
paired regret gap over seeds. The study's row is recorded before its final
stage runs, so a killed final stage is run again from the study's journal.

    python benchmarks/search_regret.py --search configs/cpu-30min.yaml --first-seed 10 \
        --seeds 5 --final-stage 6 --final-seeds 1 --out runs/search-regret-final

``--first-seed N`` starts the seeds at N (a replication on seeds no earlier
measurement used). Stage sizes are scaled to the machine: state them with
the numbers. ``--set KEY=VALUE`` overrides any other config key (dotted into
sections, VALUE read as YAML), e.g. ``--set proxy.epochs=1``.

``--versus OUT`` compares two configs on the same seeds: beside the table it
prints the config keys that differ from the measurement under ``OUT`` and the
regret of this pick minus that one's, per seed and paired over the seeds both
recorded (docs/results.md, "The search test of aggregate + −grad_norm").

    python benchmarks/search_regret.py --search configs/cpu-30min.yaml --first-seed 40 \
        --seeds 5 --set 'screen.scores=[naswot, synflow, jacob_cov, flops, grad_norm]' \
        --set 'screen.weights={grad_norm: -1}' --out runs/search-regret-r7-gn \
        --versus runs/search-regret-r7-base

With ``--signals COLUMN ...`` nothing runs: the distinct cells the studies
under ``--out`` trained are ranked by each trajectory column's first reading,
as a pruner's early signal would rank them, in two disjoint halves (by the
parity of the CRC-32 of the canonical cell): signed Kendall τ with its
bootstrap interval, the share of the half's best 10 % a pruner keeping the
top 75 % would keep, and the paired-bootstrap gap between the first two
columns' τ.

    python benchmarks/search_regret.py --out runs/search-regret-1ep \
        --signals beta_eff_probe_dw_chain_sf beta_eff_chain_sf

With ``--within SCORE ...`` nothing runs either: per study under ``--out``,
signed Kendall τ of each trial score (``aggregate``, ``beta_eff``,
``proxy_valid_acc``, ``beta_eff_probe_dw_chain_sf``, a free score) against the
truth, within its completed cells: how well a score ranks the cells a search
actually trains.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from nasnc import ConfigError
from nasnc.bench import open_benchmark
from nasnc.data import ProxyData
from nasnc.metrics import STATISTICS, bootstrap_ci, kendall_tau
from nasnc.pipeline import ProxyConfig, evaluate_arch, load_proxy_data, screen_archs
from nasnc.proxies import AGGREGATES, rank_aggregate
from nasnc.space import Arch, sample_archs
from nasnc.store import Store
from nasnc_search import READING_SCORES


def _ms(values: list[float]) -> str:
    arr = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if not arr.size:
        return "-"
    return f"{arr.mean():6.2f} ± {arr.std(ddof=1) if arr.size > 1 else 0.0:4.2f}"


# ------------------------------------------------------------ --search mode
#: Streamed readings whose first value (after epoch 1) a post-hoc pick adds to the
#: aggregate: the whole network's βeff of W - W0 and the probe's (issue 11, line 3).
DW_COLUMN, PROBE_DW_COLUMN = READING_SCORES
#: A free score a post-hoc pick adds to the pick score negated, when the studies record
#: it (``--set 'proxies=[grad_norm]'``): it ranks the top of the screen backwards
#: (docs/results.md, "Free scores inside the top of the screen").
NEGATED_SCORE = "grad_norm"
NEGATED_PICK = f"aggregate + beta_eff + −{NEGATED_SCORE}"


#: Picks a study's cells also allow, each printed paired against the study's own
#: pick: label -> key of a row's ``by``. The first is the candidate of docs/results.md,
#: "The pick with proxy accuracy" (R10/R11).
ALTERNATIVE_PICKS: dict[str, str] = {
    "aggregate + proxy accuracy among the completed cells": "aggregate + proxy_valid_acc",
    "beta_eff among the completed shortlisted cells": "shortlist: beta_eff",
    f"{NEGATED_PICK} among the completed cells": NEGATED_PICK,
}


def _first_finite(column: np.ndarray | None) -> float:
    if column is None:
        return math.nan
    arr = np.asarray(column, dtype=float)
    good = arr[np.isfinite(arr)]
    return float(good[0]) if good.size else math.nan


def shortlist_pick(col: dict[str, np.ndarray], done: np.ndarray) -> float:
    """True accuracy of the completed shortlisted cell with the highest βeff (NaN: none).

    The candidate pick of docs/capacitance-study.md ("The shortlist pick, in a
    search"): βeff ranks the top of the screen better than the aggregate and the
    pick score, but picked badly among cells TPE proposes outside it.
    """
    if not done.any():
        return math.nan
    keep = done & (col.get("shortlisted", np.zeros_like(done, dtype=float)) == 1.0)
    beta = np.where(keep, col.get("beta_eff", np.full(done.shape, np.nan)), np.nan)
    if not np.isfinite(beta).any():
        return math.nan
    return float(col["acc"][int(np.nanargmax(beta))])


def paired_regret_gap(
    base: list[float], other: list[float], n_boot: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean regret of ``other`` minus ``base`` over seeds (accuracies given), 95 % interval.

    The seeds are resampled with replacement, pairs kept together; negative
    means ``other`` picked better. NaN with fewer than 2 seeds where both exist.
    """
    a, b = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    both = np.isfinite(a) & np.isfinite(b)
    diff = a[both] - b[both]  # regret(other) - regret(base) = acc(base) - acc(other)
    if diff.size < 2:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(n_boot, diff.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(lo), float(hi)


def negated_pick(col: dict[str, np.ndarray], done: np.ndarray, acc: np.ndarray) -> float:
    """True accuracy of the completed cell that aggregate + βeff + −:data:`NEGATED_SCORE`
    ranks first (equal weights); NaN when the study recorded no such score.

    A study whose screen already weighs −grad_norm (the CPU configs since
    2026-12-05) counts it twice here: not comparable with seeds 30–39."""
    score = col.get(NEGATED_SCORE)
    if score is None or not np.isfinite(score[done]).any():
        return math.nan
    values = {"a": col["aggregate"], "b": col["beta_eff"], "g": score}
    weights = {"a": 1.0, "b": 1.0, "g": -1.0}  # a negative weight: lower ranks first
    return _pick_among({k: v[done] for k, v in values.items()}, acc[done], weights)


def _pick_among(
    values: dict[str, np.ndarray], acc: np.ndarray, weights: dict[str, float] | None = None
) -> float:
    """True accuracy of the cell with the best rank aggregate of ``values``."""
    if not acc.size:
        return math.nan
    combined = rank_aggregate(values, weights=weights)
    if not np.isfinite(combined).any():
        return math.nan
    return float(acc[int(np.nanargmax(combined))])


#: Config keys that differ between the seeds of one measurement by construction.
_PER_SEED = ("seed", "study_name", "storage", "cache", "data_root")


def seed_config(args: argparse.Namespace, seed: int):
    """The study config of one seed: ``--search``'s file with the overrides applied."""
    from nasnc_search import apply_overrides, load_config, parse_overrides

    study_name, storage = seed_study(Path(args.out), seed)
    overrides = {
        "seed": seed,
        "study_name": study_name,
        "storage": storage,
        "cache": str(Path(args.out) / f"seed{seed}" / "cache"),
        "data_root": args.data_root,
        "screen.size": args.screen_size,
        "screen.top_k": args.top_k,
        "n_trials": args.n_trials,
        "workers": args.workers,
        "timeout": args.timeout,
    }
    config = load_config(args.search)
    try:  # --set after the rest, null unsetting a key (as nasnc search --set does)
        config = apply_overrides(config, overrides)
        return apply_overrides(config, parse_overrides(args.set or ()), keep_none=True)
    except ConfigError as exc:  # a bad --set: named, without a traceback
        raise SystemExit(f"{args.search} with --set {args.set}: {exc}") from None


def study_key(config) -> str:
    """What makes two seeds' studies one measurement: the config less its per-seed keys."""
    data = {k: v for k, v in config.to_dict().items() if k not in _PER_SEED}
    if data["proxy"].get("crop_padding", 0) is None:  # the default: keys from before it stand
        del data["proxy"]["crop_padding"]
    return json.dumps(data, sort_keys=True, default=str)


def _result_rows(path: Path) -> Iterator[dict]:
    """The rows of ``path`` (results.jsonl), in order; a line that is not a JSON
    object (a torn last line of a killed run) is skipped with a warning."""
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            logging.getLogger(__name__).warning("%s:%d: not a JSON object, skipped", path, lineno)
            continue
        yield row


def recorded_seeds(path: Path, key: str) -> dict[int, dict]:
    """The seeds ``path`` (results.jsonl) already holds for the study ``key``.

    A line written under another config is ignored (that seed runs again);
    a torn last line (a killed run) is skipped with a warning; a later line
    for a seed replaces an earlier one.
    """
    if not path.exists():
        return {}
    return {
        int(row["seed"]): row
        for row in _result_rows(path)
        if row.get("study_key") == key and "seed" in row
    }


def versus_picks(path: Path, seeds: range) -> tuple[dict[int, float], str | None]:
    """The study picks another measurement (``path``: its results.jsonl) recorded for
    ``seeds``, by seed, and its study key; its lines must be one study key."""
    if not path.exists():
        raise SystemExit(f"--versus: no {path}: run that measurement first")
    rows = {
        row["seed"]: row
        for row in _result_rows(path)
        if isinstance(row.get("seed"), int) and row["seed"] in seeds
    }
    keys = {r.get("study_key") for r in rows.values()}
    if len(keys) > 1:
        raise SystemExit(f"--versus: {path} holds {len(keys)} configs for these seeds, need one")
    picks = {s: _float(r.get("pick")) for s, r in sorted(rows.items())}
    return picks, keys.pop() if keys else None


def key_changes(mine: str, theirs: str) -> list[str]:
    """The dotted config keys whose values differ between two study keys (JSON)."""

    def walk(a: object, b: object, prefix: str) -> list[str]:
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return [prefix.rstrip(".")] if a != b else []
        out: list[str] = []
        for name in sorted(set(a) | set(b)):
            if name not in a or name not in b:
                out.append(prefix + name)
            elif a[name] != b[name]:
                out.extend(walk(a[name], b[name], f"{prefix}{name}."))
        return out

    return walk(json.loads(mine), json.loads(theirs), "")


def code_revision() -> str:
    """The checkout's git commit, ``+dirty`` when tracked files differ from it; nasnc's
    version where this is not a git checkout."""
    root = Path(__file__).resolve().parents[1]

    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *argv], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        from nasnc import __version__

        return f"nasnc {__version__}"
    return commit + ("+dirty" if dirty else "")


def other_revisions(done: dict[int, dict], revision: str) -> dict[int, str]:
    """The recorded seeds measured by other code than ``revision`` (seed -> its
    revision; ``unknown`` for a line written before revisions were recorded)."""
    return {
        seed: str(row.get("revision", "unknown"))
        for seed, row in sorted(done.items())
        if row.get("revision") != revision
    }


def append_line(path: Path, row: dict) -> None:
    """Append ``row`` as one JSON line, after ending a torn last line (a killed run)."""
    with open(path, "a+b") as fh:
        fh.seek(0, 2)
        if fh.tell():
            fh.seek(-1, 2)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
        fh.write((json.dumps(row) + "\n").encode())


def cell_runs(study) -> dict:
    """The trial that stands for each distinct cell a study trained, by graph form (as
    the cache keys runs): its first completed run, else its first pruned one (a later
    completed run of the same cell replays the cache at no cost; a failed trial
    trained nothing)."""
    from optuna.trial import TrialState

    from nasnc_search import trial_cell

    runs: dict = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        cell = trial_cell(t)
        if cell is None:
            continue  # made by hand: no cell
        held = runs.get(cell)
        if held is None or (held.state != TrialState.COMPLETE and t.state == TrialState.COMPLETE):
            runs[cell] = t
    return runs


def study_cells(study, config) -> tuple[list[str], dict[str, np.ndarray]]:
    """The distinct cells a study trained (completed or pruned): each one's arch as
    trained and its columns (``acc``, ``complete``, ``shortlisted``, the trial scores,
    the first W - W0 readings, ``cost_s``). A completed run of a cell wins over a
    pruned one, and the first completed run over later ones (cache hits: no cost)."""
    from optuna.trial import TrialState

    screen = study.user_attrs.get("screen") or {}
    store = Store(config.cache)
    shortlist = {Arch.parse(str(a)).graph_form() for a in screen.get("shortlist") or ()}
    rows: dict[str, dict[str, float]] = {}
    archs: dict[str, str] = {}
    for cell, t in cell_runs(study).items():
        entry = store.get(str(t.user_attrs.get("key")))
        traj = entry.trajectory if entry is not None else {}
        archs[cell] = str(t.user_attrs.get("arch"))
        rows[cell] = {
            "acc": _float(t.user_attrs.get("true_acc")),
            "complete": float(t.state == TrialState.COMPLETE),
            "shortlisted": float(cell in shortlist),
            "aggregate": _float(t.user_attrs.get("aggregate")),
            "proxy_valid_acc": _float(t.user_attrs.get("proxy_valid_acc")),
            "beta_eff": _float(t.user_attrs.get("beta_eff")),
            "dw_ep1": _first_finite(traj.get(DW_COLUMN)),
            "probe_dw_ep1": _first_finite(traj.get(PROBE_DW_COLUMN)),
            NEGATED_SCORE: _float(entry.scores.get(NEGATED_SCORE)) if entry else math.nan,
            "cost_s": _float(t.user_attrs.get("cost_s")),
        }
    col = {k: np.array([r[k] for r in rows.values()]) for k in next(iter(rows.values()), {})}
    return list(archs.values()), col


def completed_cost(col: dict[str, np.ndarray]) -> float:
    """The median cost (s) of the completed runs among :func:`study_cells`' columns."""
    done = col.get("complete", np.array([])) == 1.0
    return float(np.nanmedian(col["cost_s"][done])) if done.any() else math.nan


def seed_study(out: Path, seed: int) -> tuple[str, str]:
    """A seed's study name and its journal storage under ``--out``."""
    return f"regret-seed{seed}", f"journal:{out / f'seed{seed}' / 'study.journal'}"


def recorded_study(out: Path, seed: int):
    """A seed's study from its journal under ``--out`` (:func:`seed_study`), or None
    when it is gone."""
    import optuna

    from nasnc_search import make_storage

    name, storage = seed_study(out, seed)
    if not Path(storage.removeprefix("journal:")).exists():
        return None
    return optuna.load_study(study_name=name, storage=make_storage(storage))


def search_seed(
    args: argparse.Namespace, seed: int, truth, space_best: float, revision: str
) -> dict:
    """One real two-stage study (the CLI's code path) on a cold cache; its figures."""
    from nasnc_search import run_search, summarize

    config = seed_config(args, seed)
    run_dir = Path(args.out) / f"seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # each seed is a cold start: no cache hits from earlier seeds
    run_dir.mkdir(parents=True)
    start = time.perf_counter()
    study = run_search(config)
    wall = time.perf_counter() - start
    summary = summarize(study, config, truth=truth).to_dict()
    screen = study.user_attrs.get("screen") or {}
    _archs, col = study_cells(study, config)
    acc = col.get("acc", np.array([]))
    # trained readings are compared among the completed runs only (a pruned run has
    # no epoch-8 reading); the aggregate, known before training, among every trained cell
    done = col.get("complete", np.array([])) == 1.0

    def among_done(values: dict[str, np.ndarray]) -> float:
        return _pick_among({k: v[done] for k, v in values.items()}, acc[done])

    by = {
        "aggregate": _pick_among({"a": col.get("aggregate", acc)}, acc),
        "proxy_valid_acc": among_done({"p": col.get("proxy_valid_acc", acc)}),
        "beta_eff": among_done({"b": col.get("beta_eff", acc)}),
        "aggregate + beta_eff": among_done(
            {"a": col.get("aggregate", acc), "b": col.get("beta_eff", acc)}
        ),
        "aggregate + proxy_valid_acc": among_done(
            {"a": col.get("aggregate", acc), "p": col.get("proxy_valid_acc", acc)}
        ),
        "aggregate + dW": among_done({"a": col.get("aggregate", acc), "d": col.get("dw_ep1", acc)}),
        "aggregate + probe dW": among_done(
            {"a": col.get("aggregate", acc), "d": col.get("probe_dw_ep1", acc)}
        ),
        "shortlist: beta_eff": shortlist_pick(col, done),
        NEGATED_PICK: negated_pick(col, done, acc),
    }
    if math.isnan(by["shortlist: beta_eff"]):  # no shortlisted cell completed
        by["shortlist: beta_eff"] = _float((summary.get("best_found") or {}).get("true_acc"))
    train_s = float(np.nanmedian(col["cost_s"])) if acc.size else math.nan
    best_found = summary.get("best_found") or {}
    return {
        "seed": seed,
        "wall_s": wall,
        "screen_s": float(screen.get("seconds", math.nan)),
        "screened": summary["screened"],
        "trained": summary["trained"],
        "completed": summary["completed"],
        "pruned": summary["pruned"],
        "train_s_median": train_s,
        "train_s_complete": completed_cost(col),
        "pick": best_found.get("true_acc"),
        "pick_arch": best_found.get("arch"),
        "best_trained": summary.get("best_trained"),
        "by": by,
        "pick_weights": dict(config.pick.weights),
        "space_best": space_best,
        "study_key": study_key(config),
        "revision": revision,
        "config": {
            "screen_size": config.screen.size,
            "top_k": config.screen.top_k,
            "n_trials": config.n_trials,
            "workers": config.workers,
            "timeout": config.timeout,
            "epochs": config.proxy.epochs,
        },
    }


# ------------------------------------------------------------ final stage (post hoc)
#: The final stage's extra training seeds are the study's seed plus multiples of this.
FINAL_SEED_OFFSET = 1000


def final_seeds(seed: int, extra: int) -> list[int]:
    """The study's seed and the final stage's ``extra`` training seeds after it."""
    return [seed, *(seed + FINAL_SEED_OFFSET * j for j in range(1, extra + 1))]


def finalists(col: dict[str, np.ndarray], weights: dict[str, float], m: int) -> np.ndarray:
    """Indices of the ``m`` completed cells ranked first by the study's pick score (the
    rank aggregate of the pick's weighted columns over the completed cells), best first."""
    done = np.flatnonzero(col.get("complete", np.array([])) == 1.0)
    if not done.size:
        return done
    combined = rank_aggregate({k: col[k][done] for k in weights}, weights=weights)
    order = np.argsort(-np.nan_to_num(combined, nan=-np.inf), kind="stable")
    return done[order[:m]]


#: The final-stage rules :func:`final_picks` reads, the pre-registered candidate first.
FINAL_ROWS = (
    "mean beta_eff",
    "aggregate + mean beta_eff",
    "beta_eff, study seed",
    "beta_eff, extra seed",
    "finalists' best (oracle)",
)


def final_picks(acc: np.ndarray, aggregate: np.ndarray, beta: np.ndarray) -> dict[str, float]:
    """What each final-stage rule picks among the finalists (true accuracy).

    ``beta`` holds one column per training seed (the study's first). The
    pre-registered candidate is the finalist with the highest βeff averaged
    over the seeds; the others are read beside it.
    """
    if not acc.size:
        return {}
    finite = np.isfinite(beta)
    counts = finite.sum(axis=1)
    mean = np.where(
        counts > 0, np.where(finite, beta, 0.0).sum(axis=1) / np.maximum(counts, 1), np.nan
    )

    def best(values: np.ndarray) -> float:
        if not np.isfinite(values).any():
            return math.nan
        return float(acc[int(np.nanargmax(values))])

    picks = (
        best(mean),
        _pick_among({"a": aggregate, "b": mean}, acc),
        best(beta[:, 0]),
        best(beta[:, 1]) if beta.shape[1] > 1 else math.nan,
        float(np.nanmax(acc)) if np.isfinite(acc).any() else math.nan,
    )
    return dict(zip(FINAL_ROWS, picks, strict=True))


def has_final(row: dict, args: argparse.Namespace) -> bool:
    """Whether a recorded seed holds the final stage ``args`` asks for."""
    final = row.get("final") or {}
    return final.get("m") == args.final_stage and final.get("extra_seeds") == args.final_seeds


#: Per worker process: the proxy data of each (seed, proxy config) it trained at.
_FINAL_DATA: dict[tuple[int, str], ProxyData] = {}


def _final_run(task: tuple[str, dict, int, str | None, str]) -> float:
    """One finalist trained at one seed in a worker process: its βeff."""
    arch, proxy, seed, data_root, cache = task
    config = ProxyConfig.from_mapping(proxy)
    key = (seed, json.dumps(proxy, sort_keys=True))
    if key not in _FINAL_DATA:
        _FINAL_DATA[key] = load_proxy_data(config, data_root, device="cpu", seed=seed)
    store = Store(cache, writer_id=f"final-{os.getpid()}")
    result = evaluate_arch(arch, config, _FINAL_DATA[key], seed=seed, device="cpu", store=store)
    return _float(result.entry.summary.get("beta_eff"))


def final_stage(args: argparse.Namespace, seed: int) -> dict | None:
    """Retrain a recorded study's finalists at extra seeds and read each final pick.

    The finalists are the study's top ``--final-stage`` completed cells by its
    pick score; each is trained again at ``--final-seeds`` extra seeds (data
    order, subset and initialisation, as a study at that seed would), over the
    study's worker count, into the seed's cache (a rerun trains nothing twice).
    None when the seed's study is gone from ``--out``.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    config = seed_config(args, seed)
    study = recorded_study(Path(args.out), seed)
    if study is None:
        return None
    archs, col = study_cells(study, config)
    weights = {k: float(w) for k, w in config.pick.weights.items() if float(w) != 0.0}
    chosen = finalists(col, weights, args.final_stage)
    seeds = final_seeds(seed, args.final_seeds)
    column = {k: col.get(k, np.array([]))[chosen] for k in ("acc", "aggregate", "beta_eff")}
    beta = np.full((chosen.size, len(seeds)), math.nan)
    beta[:, 0] = column["beta_eff"]
    tasks = [
        (archs[i], config.proxy.to_dict(), s, config.data_root, config.cache)
        for s in seeds[1:]
        for i in chosen
    ]
    start = time.perf_counter()
    workers = max(1, min(config.workers, len(tasks)))
    if workers == 1:
        results = [_final_run(t) for t in tasks]
    else:  # one torch thread per process, as the study's workers on this config
        with cf.ProcessPoolExecutor(
            workers,
            mp_context=mp.get_context("spawn"),
            initializer=torch.set_num_threads,
            initargs=(config.threads or 1,),
        ) as pool:
            results = list(pool.map(_final_run, tasks))
    seconds = time.perf_counter() - start
    for j, b in enumerate(results):
        beta[j % chosen.size, 1 + j // chosen.size] = b
    return {
        "m": args.final_stage,
        "extra_seeds": args.final_seeds,
        "seeds": seeds,
        "seconds": seconds,
        "finalists": [archs[i] for i in chosen],
        "acc": column["acc"].tolist(),
        "beta_eff": beta.tolist(),
        "by": final_picks(column["acc"], column["aggregate"], beta),
    }


# ------------------------------------------------------------ --signals mode
#: Share of a half's cells, best by true accuracy, whose survival --signals reports.
TOP_SHARE = 0.10
#: Percentage of cells a pruner keeps by the signal (CapacitancePruner's percentile).
KEEP_PERCENT = 75.0


def trained_readings(out: Path, columns: list[str], truth) -> dict[str, dict[str, float]]:
    """Per distinct cell (graph form) trained by the studies under ``out``
    (``seed*/cache``): the first finite reading of each column, its cifar10-valid
    accuracy (``acc``) and its ``half`` (:func:`half_of` its run's canonical form, as
    the halves were drawn before cells were told apart by graph form). A cell
    trained by several studies keeps its first run."""
    cells: dict[str, dict[str, float]] = {}
    for cache in sorted(out.glob("seed*/cache")):
        for entry in Store(cache).entries():
            cell = Arch.from_str(entry.arch).graph_form()
            if cell in cells or not len(entry.trajectory.get("step", ())):
                continue
            acc = truth.get(entry.arch, "cifar10-valid", "valid")
            row = {c: _first_finite(entry.trajectory.get(c)) for c in columns}
            cells[cell] = {
                **row,
                "acc": math.nan if acc is None else float(acc),
                "half": float(half_of(entry.canonical)),
            }
    return cells


def half_of(canonical: str) -> int:
    """Which of two disjoint halves a cell falls in: the parity of its CRC-32."""
    return zlib.crc32(canonical.encode()) % 2


def kept_share(signal: np.ndarray, acc: np.ndarray) -> float:
    """Share of the top :data:`TOP_SHARE` cells by ``acc`` that a pruner keeping the
    top :data:`KEEP_PERCENT` % by ``signal`` keeps (a NaN signal is pruned)."""
    n_top = max(1, math.ceil(TOP_SHARE * acc.size))
    top = np.argsort(-acc, kind="stable")[:n_top]
    finite = signal[np.isfinite(signal)]
    if not finite.size:
        return 0.0
    threshold = np.percentile(finite, 100.0 - KEEP_PERCENT)
    return float(np.mean(np.nan_to_num(signal[top], nan=-np.inf) >= threshold))


def paired_tau_gap(a: np.ndarray, b: np.ndarray, acc: np.ndarray, n_boot: int = 1000):
    """τ(a) − τ(b) against ``acc`` and its paired percentile-bootstrap 95 % interval
    (the same resampled cells for both, over the cells where all three are finite)."""
    ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(acc)
    a, b, acc = a[ok], b[ok], acc[ok]
    gap = kendall_tau(a, acc) - kendall_tau(b, acc)
    idx = np.random.default_rng(0).integers(0, acc.size, size=(n_boot, acc.size))
    tau = STATISTICS["kendall"]  # τ-b of each resample, as bootstrap_ci computes it
    gaps = tau(a[idx], acc[idx]) - tau(b[idx], acc[idx])
    low, high = np.nanpercentile(gaps, [2.5, 97.5])
    return gap, float(low), float(high)


def run_signals_mode(args: argparse.Namespace) -> int:
    """The early-signal table over the cells the studies under ``--out`` trained."""
    truth = open_benchmark("builtin")
    columns = list(args.signals)
    cells = trained_readings(Path(args.out), columns, truth)
    if not cells:
        raise SystemExit(f"no trained cells under {args.out}/seed*/cache")
    print(
        f"{len(cells)} distinct cells trained by the studies under {args.out}; first "
        f"reading of each signal; a pruner keeps the top {KEEP_PERCENT:g} %; 'top kept' is "
        f"the share of the half's best {TOP_SHARE:.0%} (cifar10-valid) it keeps\n"
    )
    for half in (0, 1):
        rows = [r for r in cells.values() if r["half"] == half]
        acc = np.array([r["acc"] for r in rows])
        print(f"half {half} (CRC-32 parity), n = {len(rows)}")
        values = {c: np.array([r[c] for r in rows]) for c in columns}
        for c in columns:
            low, high = bootstrap_ci(values[c], acc)
            tau = kendall_tau(values[c], acc)
            share = kept_share(values[c], acc)
            print(f"  {c:34s} tau {tau:+.3f} [{low:+.2f}, {high:+.2f}]  top kept {share:.2f}")
        if len(columns) >= 2:
            gap, low, high = paired_tau_gap(values[columns[0]], values[columns[1]], acc)
            print(f"  tau({columns[0]}) - tau({columns[1]}): {gap:+.3f} [{low:+.2f}, {high:+.2f}]")
    return 0


def within_study_taus(out: Path, scores: list[str]) -> dict[int, dict[str, float]]:
    """Per study under ``out`` (``seed*/study.journal``): signed Kendall τ of each trial
    score (a user attribute) against ``true_acc`` over its completed trials, one per
    distinct cell, and their number as ``n``."""
    from optuna.trial import TrialState

    taus: dict[int, dict[str, float]] = {}
    for journal in sorted(out.glob("seed*/study.journal")):
        seed = int(journal.parent.name[len("seed") :])
        study = recorded_study(out, seed)
        cells = [t.user_attrs for t in cell_runs(study).values() if t.state == TrialState.COMPLETE]
        acc = np.array([_float(a.get("true_acc")) for a in cells])
        row = {"n": float(len(cells))}
        for name in scores:
            row[name] = kendall_tau(np.array([_float(a.get(name)) for a in cells]), acc)
        taus[seed] = row
    return taus


def seed_range(first: int, count: int) -> range:
    """The seeds of one ``--search`` measurement: ``count`` of them from ``first``."""
    if first < 0 or count < 1:
        raise SystemExit(f"--first-seed {first} --seeds {count}: need first >= 0 and count >= 1")
    return range(first, first + count)


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _weights_label(results: list[dict]) -> str:
    """The pick weights of the studies; ``mixed`` when the config changed between seeds."""
    seen = {json.dumps(r.get("pick_weights"), sort_keys=True) for r in results}
    return seen.pop() if len(seen) == 1 else "mixed: " + " / ".join(sorted(seen))


def random_oracle(
    row: dict, wall_s: float, truth, per_cell: float | None = None
) -> tuple[int, float]:
    """Random search on a recorded seed's budget: the cells ``wall_s`` seconds buy on
    its workers at ``per_cell`` seconds each (default its median trained-cell cost,
    pruned runs included), and the best true accuracy among them."""
    cost = row["train_s_median"] if per_cell is None else per_cell
    if not (isinstance(cost, (int, float)) and math.isfinite(cost) and cost > 0):
        return 0, math.nan
    n = max(1, int(wall_s * row["config"]["workers"] // cost))
    rand = sample_archs(n, seed=1000 + row["seed"], unique=True, exclude_zero=True)
    accs = [truth.get(str(a), "cifar10-valid", "valid") for a in rand]
    return n, float(np.nanmax([math.nan if a is None else a for a in accs]))


def complete_cost(args: argparse.Namespace, row: dict) -> float:
    """A seed's median completed-run cost (s): what random search, which prunes
    nothing, pays per cell. Recorded since the fourteenth session; for an older row,
    read from the seed's study under ``--out`` when it is still there (NaN if not)."""
    if "train_s_complete" in row:
        return _float(row["train_s_complete"])
    config = seed_config(args, int(row["seed"]))
    study = recorded_study(Path(args.out), int(row["seed"]))
    return math.nan if study is None else completed_cost(study_cells(study, config)[1])


def run_search_mode(args: argparse.Namespace) -> int:
    truth = open_benchmark("builtin")
    _best, space_best = truth.best("cifar10-valid", "valid")
    log = Path(args.out) / "results.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    done = recorded_seeds(log, study_key(seed_config(args, 0)))
    revision = code_revision()  # once: the code this process loaded, whatever HEAD does later
    seeds = seed_range(args.first_seed, args.seeds)
    stale = other_revisions({s: r for s, r in done.items() if s in seeds}, revision)
    if stale:  # kept (the config is the same), but the reader should know
        listed = ", ".join(f"seed {s} at {r}" for s, r in stale.items())
        print(
            f"warning: {log} holds seeds measured by other code than this checkout "
            f"({revision}): {listed}; delete the file to measure them again",
            file=sys.stderr,
        )
    results = []
    for seed in seeds:
        if seed in done:  # a rerun resumes: a finished seed is not run again
            got = done[seed]
            print(f"seed {seed}: recorded in {log}, not run again", file=sys.stderr)
        else:
            got = search_seed(args, seed, truth, space_best, revision)
            append_line(log, got)
        if args.final_stage and not has_final(got, args):
            final = final_stage(args, seed)
            if final is None:
                print(
                    f"seed {seed}: its study is gone from {args.out}; no final stage",
                    file=sys.stderr,
                )
            else:
                got = {**got, "final": final}
                append_line(log, got)  # a later line for the seed replaces the earlier one
        if got.get("final", {}).get("finalists") and got.get("pick_arch"):
            first = Arch.parse(got["final"]["finalists"][0]).graph_form()
            if first != Arch.parse(str(got["pick_arch"])).graph_form():
                print(
                    f"warning: seed {seed}: the first finalist {first} is not the study's "
                    f"pick {got['pick_arch']} (a tie in the pick score?)",
                    file=sys.stderr,
                )
        results.append(got)
        print(
            f"seed {seed}: {got['wall_s']:.0f} s (screen {got['screen_s']:.0f} s, "
            f"{got['screened']} cells; {got['trained']} trained, {got['pruned']} pruned); "
            f"pick {got['pick']} % ({got['pick_arch']})",
            file=sys.stderr,
        )
    # baselines at each seed's measured wall-clock
    table: dict[str, list[float]] = {
        f"two-stage search: the pick ({_weights_label(results)})": [r["pick"] for r in results],
        "  its best trained cell (oracle)": [r["best_trained"] for r in results],
        "  trained cells picked by the free aggregate": [r["by"]["aggregate"] for r in results],
        "  completed cells picked by proxy accuracy": [r["by"]["proxy_valid_acc"] for r in results],
        "  completed cells picked by beta_eff": [r["by"]["beta_eff"] for r in results],
        "  completed cells picked by aggregate + beta_eff": [
            r["by"]["aggregate + beta_eff"] for r in results
        ],
        "  completed cells picked by aggregate + proxy accuracy": [
            r["by"].get("aggregate + proxy_valid_acc", math.nan) for r in results
        ],
        "  completed cells picked by aggregate + dW ep1": [
            r["by"]["aggregate + dW"] for r in results
        ],
        "  completed cells picked by aggregate + probe dW ep1": [
            r["by"].get("aggregate + probe dW", math.nan) for r in results
        ],
        "  completed shortlisted cells picked by beta_eff": [
            r["by"].get("shortlist: beta_eff", math.nan) for r in results
        ],
        f"  completed cells picked by {NEGATED_PICK}": [
            r["by"].get(NEGATED_PICK, math.nan) for r in results
        ],
        "random search, same wall-clock (oracle)": [],
        "random search, same wall-clock, full runs (oracle)": [],
    }
    n_random, n_full = [], []
    for r in results:
        n, best = random_oracle(r, r["wall_s"], truth)
        n_random.append(n)
        table["random search, same wall-clock (oracle)"].append(best)
        n, best = random_oracle(r, r["wall_s"], truth, complete_cost(args, r))
        n_full.append(n)
        table["random search, same wall-clock, full runs (oracle)"].append(best)
    finals = [r.get("final") for r in results]
    if args.final_stage:
        m, k = args.final_stage, args.final_seeds
        for name in FINAL_ROWS:
            table[f"  final stage (top {m}, +{k} seed{'s' if k > 1 else ''}): {name}"] = [
                _float((f or {}).get("by", {}).get(name)) for f in finals
            ]
        table["random search, wall-clock + final stage (oracle)"] = [
            random_oracle(r, r["wall_s"] + _float((f or {}).get("seconds")), truth)[1]
            for r, f in zip(results, finals, strict=True)
        ]
    walls = [r["wall_s"] for r in results]
    c = results[0]["config"]
    print(
        f"\n{len(results)} seeds ({seeds.start}-{seeds.stop - 1}) of `{args.search}`: "
        f"screen {c['screen_size']} cells, "
        f"top-{c['top_k']} enqueued, {c['n_trials']} trials, {c['workers']} workers, "
        f"{c['epochs']} epochs, timeout {c['timeout']} s; "
        f"wall-clock {_ms(walls)} s per study (screen {_ms([r['screen_s'] for r in results])} s); "
        f"random search gets {min(n_random)}-{max(n_random)} cells at the median trained-cell "
        f"cost (pruned runs included), {min(n_full)}-{max(n_full)} at the median completed-run "
        f"cost (full runs: it prunes nothing); space best {space_best:.2f} % (cifar10-valid)\n"
    )
    width = max(48, *(len(name) for name in table))
    print(f"{'method':{width}s} {'cifar10-valid %':>16s} {'regret':>14s}")
    for name, values in table.items():
        vals = [math.nan if v is None else float(v) for v in values]
        print(f"{name:{width}s} {_ms(vals):>16s} {_ms([space_best - v for v in vals]):>14s}")
    picks = [math.nan if r["pick"] is None else float(r["pick"]) for r in results]
    print(
        "\nregret of each pick below minus the study's pick, paired over seeds "
        "(95 % bootstrap of seeds; negative: that pick is better):"
    )
    for label, key in ALTERNATIVE_PICKS.items():
        other = [_float(r["by"].get(key)) for r in results]
        if any(math.isfinite(v) for v in other):
            mean, lo, hi = paired_regret_gap(picks, other)
            print(f"  {label:58s} {mean:+.2f} [{lo:+.2f}, {hi:+.2f}] points")
    if args.versus:
        report_versus(Path(args.versus), seeds, results, space_best)
    if args.final_stage:
        seconds = [_float((f or {}).get("seconds")) for f in finals]
        print(
            f"\nfinal stage (top {args.final_stage}): {_ms(seconds)} s per study; regret of "
            "each final pick minus the study's pick, paired over seeds (95 % bootstrap; "
            f"negative: the final pick is better; {FINAL_ROWS[0]!r} is the candidate)"
        )
        for name in FINAL_ROWS:
            final = [_float((f or {}).get("by", {}).get(name)) for f in finals]
            mean, lo, hi = paired_regret_gap(picks, final)
            print(f"  {name:32s} {mean:+.2f} [{lo:+.2f}, {hi:+.2f}] points")
    return 0


def report_versus(path: Path, seeds: range, results: list[dict], space_best: float) -> None:
    """Print this measurement's pick regret minus the one under ``path``, per seed and
    paired over the seeds both recorded (a 95 % bootstrap of seeds)."""
    other, key = versus_picks(path / "results.jsonl", seeds)
    mine = {int(r["seed"]): _float(r["pick"]) for r in results}
    both = [s for s in mine if s in other]
    missing = [s for s in mine if s not in other]
    if key is None or not results:
        differs = "unknown: no rows for these seeds"
    else:
        differs = ", ".join(key_changes(results[0]["study_key"], key)) or "nothing"
    print(
        f"\nversus {path} (config differs in: {differs}): {len(both)} paired seeds",
        end="",
    )
    print(f"; not recorded there: {missing}" if missing else "")
    if not both:
        return
    theirs = [other[s] for s in both]
    print(
        f"  its regret {_ms([space_best - v for v in theirs])}; per seed (this - that): "
        + ", ".join(f"{s}: {other[s] - mine[s]:+.2f}" for s in both)
    )
    mean, lo, hi = paired_regret_gap(theirs, [mine[s] for s in both])
    print(
        f"  regret of this pick minus that pick, paired over seeds: {mean:+.2f} "
        f"[{lo:+.2f}, {hi:+.2f}] points (95 % bootstrap; negative: this config is better)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--union", type=int, default=2000, help="cells screened in all")
    parser.add_argument("--pool", type=int, default=1000, help="stage-1 pool per seed")
    parser.add_argument(
        "--top-k", type=int, default=None, help="stage-2 shortlist (default 10; the config's)"
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=1800.0, help="wall-clock per search")
    parser.add_argument(
        "--train-s", type=float, default=41.6, help="seconds per trained cell (DESIGN: 41.6)"
    )
    parser.add_argument("--train", action="store_true", help="train each shortlist (slow)")
    parser.add_argument(
        "--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--cache", default="runs/search-regret")
    parser.add_argument("--threads", type=int, default=None)
    real = parser.add_argument_group("--search: run the real two-stage study per seed")
    real.add_argument(
        "--search", metavar="CONFIG", help="a study config, e.g. configs/cpu-30min.yaml"
    )
    real.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="the first study seed (--seeds counts from it; e.g. 5 for a replication on 5-9)",
    )
    real.add_argument("--screen-size", type=int, default=None, help="override screen.size")
    real.add_argument("--n-trials", type=int, default=None, help="override n_trials")
    real.add_argument("--workers", type=int, default=None, help="override workers")
    real.add_argument("--timeout", type=float, default=None, help="override timeout (s)")
    real.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any config key, dotted into sections, VALUE read as YAML "
        "(e.g. --set proxy.epochs=1; repeatable)",
    )
    real.add_argument(
        "--final-stage",
        type=int,
        default=0,
        metavar="M",
        help="after each study, train its top M completed cells by the pick score again at "
        "--final-seeds more seeds and report the picks by their mean beta_eff (post hoc; "
        "a recorded study gets its final stage on a rerun)",
    )
    real.add_argument(
        "--final-seeds", type=int, default=1, metavar="K", help="extra seeds of --final-stage"
    )
    real.add_argument("--out", default="runs/search-regret-real", help="one cold run per seed")
    real.add_argument(
        "--versus",
        metavar="OUT",
        help="another measurement's --out (another config, the same seeds): report this "
        "config's pick regret minus that one's, paired over seeds",
    )
    real.add_argument(
        "--signals",
        nargs="+",
        metavar="COLUMN",
        help="instead of running: rank the cells the studies under --out trained by each "
        "trajectory column's first reading, as a pruner's early signal, in two disjoint "
        "halves (the first two columns compared pairwise)",
    )
    real.add_argument(
        "--within",
        nargs="+",
        metavar="SCORE",
        help="instead of running: per study under --out, Kendall tau of each trial score "
        "(aggregate, beta_eff, proxy_valid_acc, ...) against the truth, within its "
        "completed cells",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.within:
        taus = within_study_taus(Path(args.out), list(args.within))
        if not taus:
            raise SystemExit(f"no studies under {args.out}/seed*/study.journal")
        print("signed Kendall tau against cifar10-valid within each study's completed cells")
        print(f"{'seed':>4s} {'n':>4s} " + " ".join(f"{n:>28s}" for n in args.within))
        for seed, row in taus.items():
            cells = " ".join(f"{row[n]:+28.3f}" for n in args.within)
            print(f"{seed:4d} {int(row['n']):4d} {cells}")
        return 0
    if args.final_stage < 0 or args.final_seeds < 1:
        parser.error(
            f"need --final-stage >= 0 and --final-seeds >= 1, but got "
            f"{args.final_stage} and {args.final_seeds}"
        )
    if args.final_stage and not args.search:
        parser.error("--final-stage retrains a study's finalists: it needs --search")
    if args.signals:
        return run_signals_mode(args)
    if args.search:
        return run_search_mode(args)
    if args.top_k is None:
        args.top_k = 10
    if not 0 < args.top_k <= args.pool <= args.union:
        parser.error("need 0 < --top-k <= --pool <= --union")

    proxy = ProxyConfig()
    data = load_proxy_data(proxy, args.data_root, device="cpu")
    store = Store(args.cache, durable=False)
    truth = open_benchmark("builtin")
    _best_arch, space_best = truth.best("cifar10-valid", "valid")
    union = sample_archs(args.union, seed=12345, unique=True, exclude_zero=True)
    names = AGGREGATES["aggregate"]
    start = time.perf_counter()
    screen = screen_archs(union, proxy, data, names=names, store=store, device="cpu")
    per_cell = float(np.median(screen.per_cell_s)) if screen.per_cell_s else math.nan
    print(
        f"stage 1: {len(union)} cells screened in {time.perf_counter() - start:.1f} s "
        f"({screen.cached} from the cache; median {per_cell:.3f} s per scored cell)",
        file=sys.stderr,
    )
    acc = np.array([truth.get(a, "cifar10-valid", "valid") or math.nan for a in screen.archs])
    screen_s = args.pool * (per_cell if math.isfinite(per_cell) else 0.1)
    n_random = max(1, int(args.budget_s // args.train_s))

    rows: dict[str, list[float]] = {
        "free pick (aggregate top-1)": [],
        f"best in top-{args.top_k} (stage-2 bound)": [],
        f"random search oracle ({n_random} cells)": [],
    }
    if args.train:
        rows[f"top-{args.top_k} picked by proxy accuracy"] = []
        rows[f"top-{args.top_k} picked by beta_eff"] = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(union), size=args.pool, replace=False)
        agg = rank_aggregate({n: screen.scores[n][idx] for n in names})
        order = idx[np.argsort(-agg, kind="stable")]
        short = order[: args.top_k]
        rows["free pick (aggregate top-1)"].append(float(acc[order[0]]))
        rows[f"best in top-{args.top_k} (stage-2 bound)"].append(float(np.nanmax(acc[short])))
        rand = sample_archs(n_random, seed=1000 + seed, unique=True, exclude_zero=True)
        rand_acc = [truth.get(str(a), "cifar10-valid", "valid") or math.nan for a in rand]
        rows[f"random search oracle ({n_random} cells)"].append(float(np.nanmax(rand_acc)))
        if args.train:
            trained = [
                evaluate_arch(screen.archs[i], proxy, data, device="cpu", store=store).entry
                for i in short
            ]
            by_acc = int(np.nanargmax([e.summary["proxy_valid_acc"] for e in trained]))
            by_beta = int(np.nanargmax([e.summary["beta_eff"] for e in trained]))
            rows[f"top-{args.top_k} picked by proxy accuracy"].append(float(acc[short[by_acc]]))
            rows[f"top-{args.top_k} picked by beta_eff"].append(float(acc[short[by_beta]]))

    print(
        f"\n{args.seeds} seeds; pool {args.pool} cells per seed (of a screened union of "
        f"{args.union}), shortlist {args.top_k}; budget {args.budget_s:.0f} s at "
        f"{args.train_s:g} s per trained cell; stage 1 of a pool ≈ {screen_s:.0f} s here; "
        f"space best {space_best:.2f} % (cifar10-valid)\n"
    )
    print(f"{'method':44s} {'cifar10-valid %':>16s} {'regret':>14s}")
    for name, values in rows.items():
        regrets = [space_best - v for v in values]
        print(f"{name:44s} {_ms(values):>16s} {_ms(regrets):>14s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
