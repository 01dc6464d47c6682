"""``nasnc search CONFIG``: run or resume an Optuna study."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._base import CACHE_HELP, FORMATS, Command, emit, positive_int, progress_wanted, seed_int

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from .._config import SearchConfig


def trial_progress(
    trials: Sequence[FrozenTrial], objectives: Sequence[str]
) -> tuple[int, dict[str, Any]]:
    """The trials bar's count and postfix.

    The count is what the study runner counts toward ``n_trials``
    (:func:`~nasnc_search._storage.counts_toward_n_trials`: an interrupted or
    stale trial's failure is not), the postfix the pruned and failed trials
    and the best value of a single objective.
    """
    from optuna.trial import TrialState

    from .._stages import better_sign
    from .._storage import counts_toward_n_trials

    states = [t.state for t in trials]
    postfix: dict[str, Any] = {
        "pruned": states.count(TrialState.PRUNED),
        "failed": states.count(TrialState.FAIL),
    }
    best = [t.values[0] for t in trials if t.state == TrialState.COMPLETE and t.values]
    if best and len(objectives) == 1:
        value = max(best, key=lambda v: better_sign(objectives[0]) * v)
        postfix[f"best {objectives[0]}"] = f"{value:.4g}"
    return sum(map(counts_toward_n_trials, trials)), postfix


def search_config(args: argparse.Namespace) -> SearchConfig:
    """The study config of ``nasnc search``: the file, then the options, then ``--set``
    (a null there unsets a key)."""
    from .._config import apply_overrides, load_config, parse_overrides

    config = load_config(args.config)
    config = apply_overrides(
        config,
        {
            "storage": args.storage,
            "study_name": args.study_name,
            "n_trials": args.n_trials,
            "workers": args.workers,
            "device": args.device,
            "cache": args.cache,
            "data_root": args.data_root,
            "seed": args.seed,
            "benchmark": args.benchmark,
            "timeout": args.timeout,
            "threads": args.threads,
            "download": args.download,
        },
    )
    return apply_overrides(config, parse_overrides(args.set), keep_none=True)


class Search(Command):
    name = "search"
    help = "run or resume a search study (options override the config file)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", help="study config, e.g. configs/quickstart.yaml")
        parser.add_argument(
            "--storage", help="sqlite:///FILE, journal:FILE or postgresql+psycopg://..."
        )
        parser.add_argument("--study", dest="study_name", help="study name")
        parser.add_argument("--n-trials", type=int, help="total trials of the study")
        parser.add_argument("--workers", type=int, help="worker processes on this machine")
        parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
        parser.add_argument("--cache", metavar="PATH", help=CACHE_HELP)
        parser.add_argument("--data-root", help="folder holding the dataset (else $NASNC_DATA_DIR)")
        parser.add_argument("--seed", type=seed_int)
        parser.add_argument("--benchmark", help="ground truth for the summary: builtin or FILE")
        parser.add_argument("--threads", type=int, help="torch threads per worker")
        parser.add_argument(
            "--download",
            action="store_true",
            default=None,
            help="download CIFAR into --data-root when missing",
        )
        parser.add_argument("--timeout", type=float, help="stop starting trials after SECONDS")
        parser.add_argument(
            "--top", type=positive_int, default=10, help="rows of the summary table"
        )
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default="table",
            help="table (default), csv (the ranked trials, all their fields) or json",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument(
            "--set",
            metavar="KEY=VALUE",
            action="append",
            default=[],
            help="override any config key, dotted into sections, VALUE read as YAML, e.g. "
            "--set screen.top_k=16 --set 'pick.weights={aggregate: 1}' (repeatable; "
            "applied after the options above; a mapping replaces the file's mapping, "
            "and a warning names the keys it drops)",
        )

    def run(self, args: argparse.Namespace) -> int:
        # heavy imports (torch, optuna) only when the command runs: `nasnc --help` stays fast
        import optuna
        from tqdm import tqdm

        from .._signals import quiet_interrupts
        from .._study import n_finished, open_study, run_search
        from .._summary import summarize

        config = search_config(args)
        truth = None
        if config.benchmark:  # fail before hours of search, not after
            from nasnc.bench import open_benchmark

            truth = open_benchmark(config.benchmark)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        quiet_interrupts()  # a Ctrl-C is one line, not Optuna's traceback
        # bars only on a terminal; each made when its stage starts, so the screen's
        # (stage 1) is drawn and closed before the trials' (stage 2)
        show = progress_wanted(args.no_progress) and args.format == "table"
        bars: dict[str, Any] = {}

        def screen_progress(done: int, total: int) -> None:
            bar = bars.get("screen")
            if bar is None:
                bar = bars["screen"] = tqdm(
                    total=total,
                    desc=f"screen {config.study_name}",
                    unit="cell",
                    file=sys.stderr,
                    dynamic_ncols=True,
                )
            bar.update(done - bar.n)
            if done >= total:
                bar.close()

        def progress(study: optuna.Study) -> None:
            if not show:
                return
            bar = bars.get("trials")
            if bar is None:
                bar = bars["trials"] = tqdm(
                    total=config.n_trials,
                    desc=f"study {config.study_name}",
                    unit="trial",
                    file=sys.stderr,
                    dynamic_ncols=True,
                )
            done, postfix = trial_progress(study.get_trials(deepcopy=False), config.objectives)
            bar.n = min(done, config.n_trials)
            bar.set_postfix(postfix, refresh=False)
            bar.refresh()

        already = n_finished(open_study(config, to_run=True))
        if already >= config.n_trials:
            print(
                f"study {config.study_name} already has {already} finished trials "
                f"(n_trials {config.n_trials}): nothing to run; raise --n-trials to continue "
                "or use another --study",
                file=sys.stderr,
            )
        interrupted = 0
        try:
            study = run_search(
                config, progress=progress, screen_progress=screen_progress if show else None
            )
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (nasnc_search._signals.Interrupted)
            interrupted = getattr(exc, "exit_status", 130)
            study = open_study(config)
        finally:
            for bar in bars.values():
                bar.close()
        summary = summarize(study, config, top_k=args.top, truth=truth)
        if args.format == "json":
            emit([], [], "json", json_payload=summary.to_dict())
        elif args.format == "csv":  # the ranked trials with every field of their rows
            emit(summary.top, list(dict.fromkeys(k for row in summary.top for k in row)), "csv")
        else:
            print(
                f"study {summary.study_name} ({summary.storage}): {summary.completed} completed, "
                f"{summary.pruned} pruned, {summary.failed} failed, "
                f"{summary.cache_hits} served from the cache"
                + (f", {summary.running} still running" if summary.running else "")
            )
            columns = ["trial", "arch", "beta_eff", "beta_eff_std", "proxy_valid_acc", "cost_s"]
            if summary.screened:
                columns.insert(2, "aggregate")
                print(
                    f"stage 1 screened {summary.screened} cells; stage 2 trained {summary.trained}"
                )
            if summary.best_in_space is not None:
                columns.append("true_acc")
            if summary.top:
                emit(summary.top, columns, "table")
            if summary.pareto_front:
                print(f"Pareto front ({', '.join(summary.objectives or [])}):")
                emit(
                    [{**r, **r["values"]} for r in summary.pareto_front],
                    ["trial", "arch", *(summary.objectives or []), "true_acc"],
                    "table",
                )
            found = summary.best_found
            if found is not None:
                acc = found.get("true_acc")
                regret = summary.regret
                print(
                    f"pick (by {found['by']}): trial {found['trial']} {found['arch']}"
                    + (f", {acc:.2f} %" if acc is not None else "")
                    + (f" (regret {regret:.2f} points)" if regret is not None else "")
                )
            if summary.best_in_space is not None:
                best = summary.best_in_space
                if summary.top1_regret is not None:
                    print(
                        f"ground truth ({summary.benchmark}): best in the space {best:.2f} %; "
                        f"top-1 by {(summary.objectives or ['beta_eff'])[0]} "
                        f"{best - summary.top1_regret:.2f} % "
                        f"(regret {summary.top1_regret:.2f} points)"
                    )
                if summary.best_trained_regret is not None and summary.best_trained is not None:
                    print(
                        f"best completed cell {summary.best_trained:.2f} % "
                        f"(regret {summary.best_trained_regret:.2f} points)"
                    )
            if summary.benchmark_error:
                print(f"no ground truth: {summary.benchmark_error}", file=sys.stderr)
            print(f"cache: {config.cache}")
        if interrupted:
            print(
                "interrupted: completed trials are kept; rerun the same command to resume",
                file=sys.stderr,
            )
            return interrupted
        return 0
