"""User mistakes exit 2 with one line naming the culprit, never 1 "internal error" (issue 13, item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasnc import ConfigError
from nasnc.models import build_network
from nasnc_search.cli import main

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI; check exit status 2 with one line and no internal error; return stderr."""
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse rejects the option itself
        status = int(exc.code or 0)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "internal error" not in err and "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith(("usage:", " "))]
    assert len(lines) == 1, err  # argparse shows its usage above the one line
    return err


def test_evaluate_sample_larger_than_the_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(capsys, ["evaluate", "sample:99999", "--cache", str(tmp_path / "c")])
    assert "sample:99999" in err and "n=99999" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--channels", "--cells-per-stage"])
@pytest.mark.parametrize("value", ["0", "-2"])
def test_space_show_non_positive_sizes(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(capsys, ["space", "show", ARCH, option, value])
    assert f"argument {option}" in err and repr(value) in err


def _study_yaml(tmp_path: Path, storage: str = "sqlite:///{}/study.db") -> Path:
    """A study config naming only its storage (``{}``: tmp_path)."""
    config = tmp_path / "study.yaml"
    config.write_text(f"storage: {storage.format(tmp_path)}\n")
    return config


@pytest.mark.parametrize("value", ["0", "-1"])
def test_search_top_must_be_positive(
    tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--top -1`` used to drop the last row of the summary without a word."""
    err = usage_error(capsys, ["search", str(_study_yaml(tmp_path)), "--top", value])
    assert "argument --top" in err and repr(value) in err
    assert not (tmp_path / "study.db").exists()  # refused before any study is opened


def test_an_unknown_option_shows_the_commands_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(capsys, ["search", str(tmp_path / "study.yaml"), "--sets", "x=1"])
    assert err.startswith("usage: nasnc search") and "unrecognized arguments: --sets x=1" in err


@pytest.mark.parametrize(
    ("pair", "named"),
    [
        ("scren.top_k=1", "'scren' is not a section"),
        ("n_trials.x=1", "'n_trials' is not a section"),
        ("screen.wieghts=1", "'screen.wieghts'"),
        ("n_trials", "KEY=VALUE"),
        ("screen.weights={a: [}", "not valid YAML"),
        ("n_trials=0", "n_trials=0"),  # the override reaches the config's own check
    ],
)
def test_search_set_names_a_bad_override_before_any_study(
    tmp_path: Path, pair: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(capsys, ["search", str(_study_yaml(tmp_path)), "--set", pair])
    assert named in err
    assert not (tmp_path / "study.db").exists()


@pytest.mark.parametrize("storage", ["sqlite:///{}/study.db", "journal:{}/study.db"])
def test_a_bad_pruner_kwarg_is_named_before_any_storage_is_written(
    tmp_path: Path, storage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to be reported as 'cannot open storage' (exit 1), after the file was made."""
    argv = ["search", str(_study_yaml(tmp_path, storage)), "--set", "pruner.name=hyperband"]
    err = usage_error(capsys, [*argv, "--set", "pruner.kwargs={bogus: 1}"])
    assert "pruner.kwargs.bogus" in err and "cannot open storage" not in err
    assert not (tmp_path / "study.db").exists()


def test_compare_plot_onto_an_existing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "plots.png"
    existing.write_bytes(b"not a folder")
    err = usage_error(
        capsys, ["compare", "--cache", str(tmp_path / "cache"), "--plot", str(existing)]
    )
    assert str(existing) in err and "folder" in err
    assert existing.read_bytes() == b"not a folder"


def test_compare_on_a_missing_cache_makes_no_plot_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plots = tmp_path / "new" / "plots"
    status = main(["compare", "--cache", str(tmp_path / "none"), "--plot", str(plots)])
    err = capsys.readouterr().err
    assert status != 0 and str(tmp_path / "none") in err and "internal error" not in err
    assert not (tmp_path / "new").exists()


def test_bench_import_into_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing" / "table.h5"
    err = usage_error(capsys, ["bench", "import", "builtin", "-o", str(out)])
    assert str(out.parent) in err and "does not exist" in err
    assert not out.parent.exists()


def test_library_raises_the_packages_own_error() -> None:
    with pytest.raises(ConfigError, match="channels=0"):
        build_network(ARCH, channels=0)
    with pytest.raises(ConfigError, match="cells_per_stage=0"):
        build_network(ARCH, cells_per_stage=0)


def test_plot_and_import_refuse_bad_paths_in_the_library(tmp_path: Path) -> None:
    from nasnc.analysis import plot_comparison
    from nasnc.bench import import_table, open_benchmark

    existing = tmp_path / "file"
    existing.write_text("")
    with pytest.raises(ConfigError, match="existing file"):
        plot_comparison({"rows": [], "scores": {}}, existing)
    with pytest.raises(ConfigError, match="does not exist"):
        import_table(open_benchmark("builtin"), tmp_path / "missing" / "t.h5")


def test_closed_stdout_pipe_stops_quietly() -> None:
    """`nasnc ... | head` closing the pipe early is not an internal error."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from nasnc_search.cli import main; sys.exit(main())",
            "space",
            "info",
            "--format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the command writes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "internal error" not in err and "Traceback" not in err, err


def test_a_broken_pipe_elsewhere_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a closed stdout is the quiet 141; a broken pipe inside a command is reported."""
    from nasnc_search.cli._space import SpaceInfo

    def run(self: object, args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe (a worker's)")

    monkeypatch.setattr(SpaceInfo, "run", run)
    assert main(["space", "info"]) == 1
    err = capsys.readouterr().err
    assert "internal error: BrokenPipeError" in err and "a worker's" in err


@pytest.mark.parametrize("value", ["0", "-1"])
def test_scores_top_must_be_positive(
    tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(capsys, ["scores", "--cache", str(tmp_path / "c"), "--top", value])
    assert "argument --top" in err and repr(value) in err
