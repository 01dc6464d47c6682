"""Files and values that are not what the command expects: refused by name, nothing written.

Each case came from an audit of the CLI: a storage file of something else, a
failed start that left a study behind, ``--force`` onto a cache, a ``--set``
that did nothing, a hash prefix that matched silently nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import optuna
import pytest

from nasnc import ConfigError, DataError, StoreError
from nasnc.space import sample_archs
from nasnc.store import Store
from nasnc.testing import make_entry
from nasnc_search._config import SearchConfig, apply_overrides, load_config
from nasnc_search._storage import make_storage
from nasnc_search._study import open_study, run_search
from nasnc_search.cli import main
from tests.test_cli_errors import usage_error


def _config(tmp_path: Path, storage: str, **more: str) -> Path:
    path = tmp_path / "study.yaml"
    lines = [f"storage: {storage}", f"data_root: {tmp_path / 'no-data'}", *more.values()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _foreign_database(path: Path) -> Path:
    """An SQLite database of something else than Optuna (one table, foo)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE foo (x)")
        db.commit()
    return path


# ------------------------------------------------------------------ journal storages
def test_a_file_that_is_not_a_journal_is_refused_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("TODO: buy milk\n")  # one line: Optuna would take it for a torn write
    binary = _foreign_database(tmp_path / "study.db")
    for path in (notes, binary):
        before = path.read_bytes()
        err = usage_error(capsys, ["search", str(_config(tmp_path, f"journal:{path}"))])
        assert f"{path} is not an Optuna journal" in err
        err = usage_error(capsys, ["report", "--storage", f"journal:{path}", "--study", "s"])
        assert f"{path} is not an Optuna journal" in err
        assert path.read_bytes() == before


def test_a_journal_with_a_damaged_line_names_the_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "j.log"
    study = optuna.create_study(study_name="s", storage=make_storage(f"journal:{path}"))
    study.enqueue_trial({"x": 1})
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    status = main(["report", "--storage", f"journal:{path}", "--study", "s"])
    err = capsys.readouterr().err
    assert status == 1 and "internal error" not in err
    assert f"cannot open storage 'journal:{path}'" in err
    assert f"line 2 of {path} is not a journal record" in err  # the file's line, not JSON's


def test_a_journal_torn_mid_line_is_mended_at_the_next_append(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer killed mid-line leaves a last line without its newline: the next record,
    of a new run or of a worker still running, must not be glued onto it (that made the
    whole study unreadable)."""
    monkeypatch.chdir(tmp_path)  # a relative path: Optuna's lock must still find the file
    path = Path("runs") / "study.journal"
    running = make_storage(f"journal:{path}")  # a worker that keeps running
    study = optuna.create_study(study_name="s", storage=running)
    study.add_trial(optuna.trial.create_trial(value=1.0, distributions={}, params={}))
    whole = path.read_bytes()
    torn = b'{"op_code":5,"worker_id":"49b4a590-4bf8'
    with path.open("ab") as f:  # another worker, killed mid-write
        f.write(torn)
    # a reader skips the torn line and changes nothing
    reader = make_storage(f"journal:{path}", read_only=True)
    assert len(optuna.load_study(study_name="s", storage=reader).trials) == 1
    assert path.read_bytes() == whole + torn
    with caplog.at_level("WARNING", logger="nasnc_search._storage"):
        study.add_trial(optuna.trial.create_trial(value=2.0, distributions={}, params={}))
    kept = path.with_name(path.name + ".torn")
    assert kept.read_bytes() == torn + b"\n"  # the torn bytes are kept, not lost
    assert str(kept) in caplog.text and "cut off mid-write" in caplog.text
    assert path.read_bytes().startswith(whole) and path.read_bytes().endswith(b"\n")
    fresh = optuna.load_study(study_name="s", storage=make_storage(f"journal:{path}"))
    assert [t.value for t in fresh.trials] == [1.0, 2.0]
    assert not Path(f"{path}.lock").exists()  # Optuna's lock released
    # a journal whose only line was torn is a journal, not a foreign file
    lone = Path("lone.journal")
    lone.write_bytes(whole.split(b"\n")[0][:30])
    optuna.create_study(study_name="t", storage=make_storage(f"journal:{lone}"))
    assert optuna.get_all_study_names(make_storage(f"journal:{lone}")) == ["t"]


# ------------------------------------------------------------------ SQLite storages
def test_report_never_writes_into_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _foreign_database(tmp_path / "other.db")
    empty = tmp_path / "empty.db"
    empty.touch()
    for path, why in ((other, "without Optuna's tables (it holds: foo)"), (empty, "empty file")):
        before = path.read_bytes()
        err = usage_error(capsys, ["report", "--storage", f"sqlite:///{path}", "--study", "s"])
        assert str(path) in err and why in err
        assert path.read_bytes() == before


def test_search_refuses_a_database_of_something_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _foreign_database(tmp_path / "other.db")
    before = other.read_bytes()
    err = usage_error(capsys, ["search", str(_config(tmp_path, f"sqlite:///{other}"))])
    assert f"{other} is an SQLite database without Optuna's tables" in err
    assert other.read_bytes() == before
    text = tmp_path / "text.db"
    text.write_text("not a database at all, just some words to fill a page\n" * 20)
    err = usage_error(capsys, ["search", str(_config(tmp_path, f"sqlite:///{text}"))])
    assert f"{text} is not an SQLite database" in err


def test_an_empty_sqlite_file_is_a_new_storage(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    path.touch()
    study = optuna.create_study(study_name="s", storage=make_storage(f"sqlite:///{path}"))
    assert study.study_name in optuna.get_all_study_names(f"sqlite:///{path}")


# ------------------------------------------------------------------ a start that cannot run
def test_missing_data_stops_a_search_before_its_study_exists(
    tmp_path: Path, synthetic_root: Path
) -> None:
    journal = tmp_path / "q.log"
    config = load_config(_config(tmp_path, f"journal:{journal}"))
    with pytest.raises(DataError, match="no-data"):
        run_search(config)
    assert not journal.exists()
    # a storage that exists with another study in it: no study is added either
    optuna.create_study(study_name="other", storage=make_storage(f"journal:{journal}"))
    with pytest.raises(DataError, match="no-data"):
        open_study(config, to_run=True)
    assert optuna.get_all_study_names(make_storage(f"journal:{journal}")) == ["other"]
    # the corrected rerun, with another seed, is not blocked by a recorded config
    fixed = apply_overrides(config, {"data_root": str(synthetic_root), "seed": 3})
    assert open_study(fixed, to_run=True).user_attrs["config"]["seed"] == 3
    # opened only to read it, a study needs no data (its summary, its report)
    assert open_study(apply_overrides(config, {"study_name": "read"})).study_name == "read"


def test_an_unusable_cache_stops_a_search_before_its_study_exists(
    tmp_path: Path, synthetic_root: Path
) -> None:
    """A cache path that is a file used to be refused only by the workers, after the
    study and its config (with the bad path) were recorded."""
    journal = tmp_path / "q.log"
    a_file = tmp_path / "b.h5"
    a_file.write_bytes(b"not a cache")
    config = apply_overrides(
        load_config(_config(tmp_path, f"journal:{journal}")),
        {"data_root": str(synthetic_root), "cache": str(a_file)},
    )
    with pytest.raises(StoreError, match=f"cache path {a_file} is a file"):
        open_study(config, to_run=True)
    assert not journal.exists()
    optuna.create_study(study_name="other", storage=make_storage(f"journal:{journal}"))
    with pytest.raises(StoreError, match="is a file"):
        open_study(config, to_run=True)
    assert optuna.get_all_study_names(make_storage(f"journal:{journal}")) == ["other"]
    assert a_file.read_bytes() == b"not a cache"
    # a new cache folder is fine: it is created for the run
    fresh = apply_overrides(config, {"cache": str(tmp_path / "new-cache")})
    assert open_study(fresh, to_run=True).study_name == config.study_name


# ------------------------------------------------------------------ train --set
def test_set_null_sets_none_and_a_field_that_needs_a_value_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = SearchConfig()
    assert base.proxy.resolution is not None
    assert apply_overrides(base, {"proxy.resolution": None}).proxy == base.proxy  # not given
    native = apply_overrides(base, {"proxy.resolution": None}, keep_none=True)
    assert native.proxy.resolution is None
    with pytest.raises(ConfigError, match=r"proxy\.epochs must be a number, but got None"):
        apply_overrides(base, {"proxy.epochs": None}, keep_none=True)
    err = usage_error(capsys, ["train", "nb201:012340", "--set", "epochs=null"])
    assert "proxy.epochs" in err


# ------------------------------------------------------------------ bench import --force
def test_force_overwrites_a_table_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path / "cache")
    store.put(make_entry(str(sample_archs(1, seed=0)[0])))
    marker = tmp_path / "cache" / "nasnc-store.h5"
    before = marker.read_bytes()
    err = usage_error(capsys, ["bench", "import", "builtin", "-o", str(marker), "--force"])
    assert f"-o {marker} exists and is not a benchmark table" in err
    assert marker.read_bytes() == before
    assert len(Store(tmp_path / "cache", create=False)) == 1
    folder = tmp_path / "dir.h5"
    folder.mkdir()
    err = usage_error(capsys, ["bench", "import", "builtin", "-o", str(folder)])
    assert f"-o {folder} is a folder" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    err = usage_error(capsys, ["bench", "import", "builtin", "-o", str(blocker / "x.h5")])
    assert f"{blocker} is a file, not a folder" in err


# ------------------------------------------------------------------ values and files
def test_negative_seeds_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["compare"], ["report", "--storage", "sqlite:///x.db", "--study", "s"]):
        err = usage_error(capsys, [*argv, "--seed", "-1"])
        assert "argument --seed: must be an integer seed of 0 or more, but got '-1'" in err


def test_evaluate_names_a_file_that_is_not_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "cells.bin"
    binary.write_bytes(b"\xff\xfe\x00junk")
    err = usage_error(capsys, ["evaluate", str(binary), "--cache", str(tmp_path / "c")])
    assert f"{binary} is not a text file of arch strings" in err


def test_plot_folders_are_checked_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    Store(tmp_path / "cache")  # empty: the plot folder is checked before it is read
    err = usage_error(
        capsys, ["compare", "--cache", str(tmp_path / "cache"), "--plot", str(blocker / "plots")]
    )
    assert f"--plot {blocker / 'plots'}: cannot write in" in err


def test_scores_config_hash_takes_a_unique_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path / "cache")
    for arch in sample_archs(3, seed=1):
        store.put(make_entry(str(arch)))
    (full,) = {info.config_hash for info in store.index()}
    assert main(["scores", "--cache", str(tmp_path / "cache"), "--config-hash", full[:6]]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 5  # header, rule, 3 rows
    err = usage_error(capsys, ["scores", "--cache", str(tmp_path / "cache"), "--config-hash", "zz"])
    assert "--config-hash 'zz' matches none" in err and full in err


def test_config_files_empty_duplicated_or_broken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    cases = {
        "": "c.yaml is empty (no keys)",
        "n_trials: 5\nn_trials: 6\n": "c.yaml:2:1: not valid YAML: key 'n_trials' appears twice",
        "study_name: [x\n": "c.yaml:2:1: not valid YAML: expected ',' or ']'",
    }
    for text, message in cases.items():
        path.write_text(text)
        assert message in usage_error(capsys, ["search", str(path)])
    path.write_text("{}\n")
    assert load_config(path) == SearchConfig()


def test_bench_show_names_a_dataset_the_source_lacks(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, ["bench", "show", "nb201:012340", "--dataset", "cifar10"])
    assert "has no results for dataset 'cifar10' (it has cifar10-valid, cifar100" in err


def test_compare_refuses_two_ground_truths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path / "cache")
    store.put(make_entry(str(sample_archs(1, seed=0)[0])))
    argv = ["compare", "--cache", str(tmp_path / "cache"), "--dataset", "cifar10-valid"]
    err = usage_error(capsys, [*argv, "--truth-dataset", "cifar100"])
    assert "--dataset cifar10-valid names the ground truth cifar10-valid" in err
    empty = tmp_path / "empty"
    Store(empty)
    err = usage_error(capsys, ["compare", "--cache", str(empty)])
    assert f"the cache {empty} holds no entries to compare" in err


def test_compare_against_a_benchmark_without_any_of_the_cells(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("nats_bench")
    from nasnc.bench import open_benchmark

    mini = shared_data / "nats-bench-mini" / "NATS-tss-v1_0-3ffb9-simple"
    held = {str(open_benchmark(mini).arch_at(i)) for i in (0, 11, 284)}
    store = Store(tmp_path / "cache")
    for arch in sample_archs(6, seed=2):
        if str(arch) not in held:
            store.put(make_entry(str(arch)))
    argv = ["compare", "--cache", str(tmp_path / "cache"), "--benchmark", str(mini)]
    assert "accuracy for any of the" in usage_error(capsys, argv)


def test_evaluate_proxies_that_name_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(capsys, ["evaluate", "sample:2", "--proxies", ",,", "--cache", str(tmp_path)])
    assert "--proxies ',,' names no proxy" in err


def test_an_unreachable_database_is_one_line_naming_the_drivers_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("psycopg")
    url = "postgresql+psycopg://user:secret@127.0.0.1:1/test"  # nothing listens on port 1
    assert main(["report", "--storage", url, "--study", "s"]) == 1
    err = capsys.readouterr().err
    assert "OperationalError" in err and "Connection refused" in err
    assert "secret" not in err and "user:***@" in err
    assert len(err.strip().splitlines()) == 1


def test_compare_says_the_best_cached_cell_is_over_every_proxy_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --config-hash the table is one group, the best cached cell any group's."""
    from nasnc.testing import DEFAULT_CONFIG

    store = Store(tmp_path / "cache")
    archs = sample_archs(6, seed=5, exclude_zero=True)
    for arch in archs[:4]:
        store.put(make_entry(str(arch)))
    other = {**DEFAULT_CONFIG, "epochs": 16}
    for arch in archs[4:]:
        store.put(make_entry(str(arch), config=other))
    hashes = {e.config_hash for e in store.entries()}
    assert len(hashes) == 2
    small = next(h for h in hashes if sum(e.config_hash == h for e in store.entries()) == 2)
    argv = ["compare", "--cache", str(tmp_path / "cache"), "--n-boot", "10"]
    assert main([*argv, "--config-hash", small[:8]]) == 0
    assert "best cached (over every proxy configuration): " in capsys.readouterr().out
    one = tmp_path / "one"
    Store(one).put(make_entry(str(archs[0])))
    assert main(["compare", "--cache", str(one), "--n-boot", "10"]) == 0
    assert "\nbest cached: " in capsys.readouterr().out


def test_compare_says_when_top_k_covers_every_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path / "cache")
    for arch in sample_archs(4, seed=5, exclude_zero=True):
        store.put(make_entry(str(arch)))
    assert main(["compare", "--cache", str(tmp_path / "cache"), "--n-boot", "10"]) == 0
    assert "--top-k 10 is not below the 4 compared cells" in capsys.readouterr().err
    assert main(["compare", "--cache", str(tmp_path / "cache"), "--top-k", "2"]) == 0
    assert "top-k" not in capsys.readouterr().err
