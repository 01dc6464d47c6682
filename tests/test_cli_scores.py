"""``nasnc scores`` over a real HDF5 cache in tmp_path."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import pytest

from nasnc.space import Arch, all_archs, canonical_classes, sample_archs
from nasnc.store import Store
from nasnc.testing import make_entry
from nasnc_search.cli import main

FIELDS = {
    "arch",
    "key",
    "dataset",
    "seed",
    "beta_eff",
    "beta_eff_std",
    "proxy_valid_acc",
    "cost_s",
    "diverged",
}


ARCHS = sample_archs(6, seed=11, unique=True, exclude_zero=True)


def arch_for(seed: int) -> Arch:
    return ARCHS[seed]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    path = tmp_path / "cache"
    store = Store(path, compact_every=None)
    betas = [1.0, 4.0, float("nan"), 2.0, 3.0]
    for seed, beta in enumerate(betas):
        store.put(
            make_entry(
                arch_for(seed),
                seed=seed,
                beta_eff=beta,
                proxy_valid_acc=0.1 * (seed + 1),
                scores={"synflow": 10.0 - seed, "proxy_valid_acc": 0.1 * (seed + 1)},
                dataset="cifar100" if seed == 4 else "cifar10",
            )
        )
    store.compact()  # some entries packed, one loose
    store.put(make_entry(arch_for(5), seed=5, beta_eff=0.5, scores={"naswot": 7.0}))
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:
    assert main(["scores", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_lists_every_entry_best_first_nan_last(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = run_json(capsys, "--cache", str(cache))
    assert [r["seed"] for r in rows] == [1, 4, 3, 0, 5, 2]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(set(r) >= FIELDS for r in rows)
    assert rows[-1]["beta_eff"] is None  # NaN becomes null
    first = rows[0]
    assert first["arch"] == str(arch_for(1)) and first["dataset"] == "cifar10"
    assert first["beta_eff"] == 4.0 and first["proxy_valid_acc"] == pytest.approx(0.2)
    assert first["diverged"] is False and first["synflow"] == 9.0
    assert first["score_proxy_valid_acc"] == pytest.approx(0.2)  # a score named like a column
    assert first["naswot"] is None and rows[4]["naswot"] == 7.0  # absent scores are null
    assert Store(cache).get(first["key"]) is not None


def test_top_arch_dataset_and_by(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert [r["seed"] for r in run_json(capsys, "--cache", str(cache), "--top", "2")] == [1, 4]
    assert [
        r["seed"] for r in run_json(capsys, "--cache", str(cache), "--dataset", "cifar100")
    ] == [4]
    target = arch_for(5)  # none on edge 2<-1: its node-1/node-2 swap builds the same network
    twin = next(a for a in all_archs() if a.graph_form() == target.graph_form() and a != target)
    rows = run_json(capsys, "--cache", str(cache), "--arch", str(twin))
    assert [r["seed"] for r in rows] == [5] and rows[0]["arch"] == str(target)
    rows = run_json(capsys, "--cache", str(cache), "--arch", f"nb201:{target.code}")
    assert [r["seed"] for r in rows] == [5]
    other = arch_for(3)  # cells the benchmark's form merges with it are other networks
    for a in canonical_classes()[other.canonical()]:
        rows = run_json(capsys, "--cache", str(cache), "--arch", str(a))
        assert [r["seed"] for r in rows] == ([3] if a == other else [])
    rows = run_json(capsys, "--cache", str(cache), "--by", "synflow", "--top", "3")
    assert [r["seed"] for r in rows] == [0, 1, 2]


def test_csv_and_table(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scores", "--cache", str(cache), "--format", "csv", "--top", "3"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["seed"]) for r in rows] == [1, 4, 3]
    assert set(rows[0]) >= FIELDS and float(rows[0]["beta_eff"]) == 4.0
    assert main(["scores", "--cache", str(cache), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["rank", "key", "dataset", "seed", "beta_eff"]
    assert len(lines) == 4 and str(arch_for(1)) in lines[2]


def test_missing_cache_exits_1_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-cache"
    assert main(["scores", "--cache", str(missing)]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and len(err.strip().splitlines()) == 1
    assert not missing.exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--arch", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "'conv'"),
        (["--by", "nope"], "'nope'"),
    ],
)
def test_usage_errors_exit_2(
    cache: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert main(["scores", "--cache", str(cache), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_damaged_file_is_reported_once_and_others_listed(
    cache: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    (loose,) = (cache / "entries").glob("*.h5")
    loose.write_bytes(b"garbage")
    rows = run_json(capsys, "--cache", str(cache))
    assert len(rows) == 5
    caplog.clear()
    assert main(["scores", "--cache", str(cache), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count(str(loose)) == 1 and "warning" in captured.err
    assert not [r for r in caplog.records if str(loose) in r.getMessage()]  # not logged too
    assert len(json.loads(captured.out)) == 5
    reader = Store(cache, create=False)
    with caplog.at_level(logging.WARNING, logger="nasnc"):  # a plain reader logs it
        assert len(reader.index()) == 5 and [d.path for d in reader.damaged] == [loose]
    assert [r for r in caplog.records if str(loose) in r.getMessage()]


def test_damaged_file_is_reported_when_the_listing_stops_on_an_error(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (loose,) = (cache / "entries").glob("*.h5")
    loose.write_bytes(b"garbage")
    assert main(["scores", "--cache", str(cache), "--config-hash", "zzzz"]) == 2
    err = capsys.readouterr().err
    assert "--config-hash 'zzzz' matches none" in err
    assert f"skipped damaged file {loose}" in err


@pytest.mark.parametrize("packed", [False, True])
def test_a_pruned_partial_run_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], packed: bool
) -> None:
    store = Store(tmp_path / "c", compact_every=None)
    stopped = make_entry(arch_for(0), seed=0, beta_eff=9.0)
    stopped.summary["pruned"] = True  # as evaluate_arch caches a run the pruner stopped
    store.put(stopped)
    store.put(make_entry(arch_for(1), seed=1, beta_eff=1.0))
    if packed:
        store.compact(full=True)
    rows = run_json(capsys, "--cache", str(tmp_path / "c"))
    assert [(r["seed"], r["pruned"]) for r in rows] == [(0, True), (1, False)]
    assert main(["scores", "--cache", str(tmp_path / "c"), "--format", "csv"]) == 0
    assert "pruned" in capsys.readouterr().out.splitlines()[0].split(",")


def test_kind_keeps_entries_of_some_kinds_and_marks_score_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path / "c", compact_every=None)
    kinds = {0: "pruned", 1: "complete", 2: "diverged", 3: "score_only"}
    for seed, kind in kinds.items():
        e = make_entry(arch_for(seed), seed=seed, beta_eff=float(10 - seed))
        if kind != "complete":
            e.summary[kind] = True
        store.put(e)
    rows = run_json(capsys, "--cache", str(tmp_path / "c"))
    assert [r["seed"] for r in rows] == [0, 1, 2, 3]  # every kind by default, each marked
    assert [r["score_only"] for r in rows] == [False, False, False, True]
    rows = run_json(capsys, "--cache", str(tmp_path / "c"), "--kind", "complete")
    assert [r["seed"] for r in rows] == [1]
    rows = run_json(
        capsys, "--cache", str(tmp_path / "c"), "--kind", "pruned", "--kind", "diverged"
    )
    assert [r["seed"] for r in rows] == [0, 2]
    with pytest.raises(SystemExit) as exc:
        main(["scores", "--cache", str(tmp_path / "c"), "--kind", "done"])
    assert exc.value.code == 2
    assert "invalid choice: 'done'" in capsys.readouterr().err
