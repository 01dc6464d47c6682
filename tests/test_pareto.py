"""Pareto fronts: the O(n log n) routine against brute force, and ``nasnc compare --pareto``."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from nasnc._errors import ConfigError
from nasnc.analysis import PARETO_COSTS, compare_scores, pareto_mask, pareto_table
from nasnc.space import Arch
from nasnc.store import Store
from nasnc.testing import make_entry
from nasnc_search._config import COST_OBJECTIVES
from nasnc_search.cli._main import main

NAN = math.nan
EXTRA = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def brute_force(score: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """O(n^2): p is out when some other comparable q is >= in score, <= in cost, one strict."""
    ok = ~(np.isnan(score) | np.isnan(cost))
    out = np.zeros(score.size, dtype=bool)
    for i in np.flatnonzero(ok):
        out[i] = not any(
            ok[j]
            and score[j] >= score[i]
            and cost[j] <= cost[i]
            and (score[j] > score[i] or cost[j] < cost[i])
            for j in range(score.size)
            if j != i
        )
    return out


@pytest.mark.parametrize("kind", ["ties", "continuous"])
def test_front_matches_brute_force_on_random_points(kind: str) -> None:
    rng = np.random.default_rng(12)
    for _ in range(400):
        n = int(rng.integers(0, 30))
        if kind == "ties":  # few distinct values: equal scores, equal costs, duplicate points
            s = rng.integers(0, 4, n).astype(np.float64)
            c = rng.integers(0, 4, n).astype(np.float64)
        else:
            s, c = rng.normal(size=n), rng.normal(size=n)
        s[rng.random(n) < 0.15] = NAN
        c[rng.random(n) < 0.15] = NAN
        s[rng.random(n) < 0.05] = -math.inf
        c[rng.random(n) < 0.05] = math.inf
        got = pareto_mask(s, c)
        np.testing.assert_array_equal(got, brute_force(s, c), err_msg=f"{s=} {c=}")


def test_front_hand_checked_cases() -> None:
    # duplicates stay together; NaN never on the front; a lone -inf score at the lowest cost is
    assert pareto_mask([3, 2, 1, 3, NAN], [3, 1, 1, 3, 0]).tolist() == [
        True,
        True,
        False,
        True,
        False,
    ]
    assert pareto_mask([-math.inf, 1.0], [0.0, 1.0]).tolist() == [True, True]
    assert pareto_mask([1.0, 1.0], [0.0, 1.0]).tolist() == [True, False]  # equal score, cheaper
    assert pareto_mask([], []).tolist() == []
    assert pareto_mask([NAN, 1.0], [1.0, NAN]).tolist() == [False, False]
    with pytest.raises(ConfigError, match=r"shapes \(2,\) and \(3,\)"):
        pareto_mask([1, 2], [1, 2, 3])


def test_costs_are_the_study_cost_objectives() -> None:
    assert COST_OBJECTIVES is PARETO_COSTS  # one fact, defined in the core


def test_table_lists_the_front_by_cost_with_truth_and_regret() -> None:
    archs = ["a", "b", "c", "d"]
    columns = {"s": np.array([1.0, 3.0, 2.0, 5.0]), "lat": np.array([1.0, 2.0, 0.5, NAN])}
    truth = np.array([90.0, NAN, 80.0, 95.0])
    out = pareto_table(archs, columns, truth, score="s", cost="lat", space_best=96.0)
    assert [m["arch"] for m in out["front"]] == ["c", "b"]  # a is dominated by c; d has no cost
    assert out["front"][1]["true_acc"] is None
    assert (out["n"], out["n_dropped"], out["n_front"]) == (3, 1, 2)
    assert out["best_on_front"] == 80.0 and out["best_on_front_arch"] == "c"
    assert out["best_cached"] == 95.0
    assert out["regret"] == pytest.approx(16.0)
    with pytest.raises(ConfigError, match=r"no 'flops' score for the front's cost; they have: s"):
        pareto_table(archs, columns, truth, score="s", cost="flops")
    with pytest.raises(ConfigError, match=r"differ, but got score='lat'"):
        pareto_table(archs, columns, truth, score="lat", cost="lat")
    # a truth or archs of another length gave a best cached cell of no row, or IndexError
    for bad_archs, bad_truth in (
        (archs, np.append(truth, 99.0)),
        ([*archs, "e"], truth),
        (archs[:1], truth),
        (archs, np.float64(5.0)),
    ):
        with pytest.raises(ConfigError, match="one value per cell each"):
            pareto_table(bad_archs, columns, bad_truth, score="s", cost="lat")


# ------------------------------------------------------------------ compare
#: beta_eff, latency, params of the five cells (truth ascending), then EXTRA (no costs).
#: vs latency: c0 (1, 1), c1 (3, 2), c2 (2, 2) under c1, c3 (5, 6), c4 (4, 7) under c3
#: -> front c0, c1, c3: the best cell c4 is off it. vs params: c4 (4, 1), c3 (5, 2).
BETA = (1.0, 3.0, 2.0, 5.0, 4.0)
LATENCY = (1.0, 2.0, 2.0, 6.0, 7.0)
PARAMS = (5.0, 4.0, 3.0, 2.0, 1.0)


@pytest.fixture
def cache(tmp_path: Path, five) -> Path:
    assert Arch.parse(EXTRA).canonical() not in {a.canonical() for a, _ in five}
    store = Store(tmp_path / "cache", durable=False)
    for (arch, _), b, lat, p in zip(five, BETA, LATENCY, PARAMS):
        store.put(make_entry(arch, beta_eff=b, scores={"latency": lat, "params": p}))
    store.put(make_entry(EXTRA, beta_eff=10.0, scores={"latency": NAN, "params": NAN}))
    return tmp_path / "cache"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_compare_json_pareto_front(cache: Path, five, builtin, capsys) -> None:
    code, out, _ = _run(
        capsys, "compare", "--cache", str(cache), "--format", "json", "--n-boot", "50",
        "--pareto", "latency", "--pareto", "params",
    )  # fmt: skip
    assert code == 0
    fronts = json.loads(out)["pareto_front"]
    assert list(fronts) == ["latency", "params"]
    truth = [v for _, v in five]
    names = [str(a) for a, _ in five]
    space_best = builtin.best("cifar10-valid", "valid")[1]

    lat = fronts["latency"]
    assert lat["score"] == "beta_eff"  # no aggregate in these entries: the fallback
    assert [m["arch"] for m in lat["front"]] == [names[0], names[1], names[3]]
    assert [m["cost"] for m in lat["front"]] == [1.0, 2.0, 6.0]
    assert [m["score"] for m in lat["front"]] == [1.0, 3.0, 5.0]
    assert [m["true_acc"] for m in lat["front"]] == pytest.approx([truth[0], truth[1], truth[3]])
    assert (lat["n"], lat["n_dropped"], lat["n_front"]) == (5, 1, 3)
    assert lat["best_on_front"] == pytest.approx(truth[3])
    assert lat["best_cached"] == pytest.approx(max([*truth, builtin.query(EXTRA, "cifar10-valid")]))
    assert lat["space_best"] == pytest.approx(space_best)
    assert lat["regret"] == pytest.approx(space_best - truth[3])

    par = fronts["params"]
    assert [m["arch"] for m in par["front"]] == [names[4], names[3]]
    assert par["regret"] == pytest.approx(space_best - truth[4])


def test_compare_table_and_csv_show_the_front(cache: Path, five, capsys) -> None:
    code, out, _ = _run(
        capsys, "compare", "--cache", str(cache), "--n-boot", "50", "--pareto", "latency",
    )  # fmt: skip
    assert code == 0
    assert "Pareto front of beta_eff (max) vs latency (min): 3 of 5 cells; 1 without both" in out
    header = next(line for line in out.splitlines() if line.startswith("arch "))
    assert header.split() == ["arch", "beta_eff", "latency", "true_acc"]
    assert "best on the front:" in out and "regret" in out
    code, out, _ = _run(
        capsys, "compare", "--cache", str(cache), "--n-boot", "50", "--format", "csv",
        "--pareto", "params,latency", "--pareto-score", "beta_eff",
    )  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["cost_name"], float(r["cost"])) for r in rows] == [
        ("params", 1.0),
        ("params", 2.0),
        ("latency", 1.0),
        ("latency", 2.0),
        ("latency", 6.0),
    ]
    assert all(r["score_name"] == "beta_eff" for r in rows)


def test_compare_pareto_errors(cache: Path, capsys) -> None:
    code, _, err = _run(capsys, "compare", "--cache", str(cache), "--pareto", "watts")
    assert code == 2 and "--pareto takes params, flops, latency" in err
    code, _, err = _run(capsys, "compare", "--cache", str(cache), "--pareto-score", "beta_eff")
    assert code == 2 and "--pareto-score needs --pareto" in err
    code, _, err = _run(capsys, "compare", "--cache", str(cache), "--pareto", "flops")
    assert code == 2 and "no 'flops' score for the front's cost; they have:" in err
    code, _, err = _run(
        capsys, "compare", "--cache", str(cache), "--pareto", "params", "--pareto-score", "nope"
    )
    assert code == 2 and "no 'nope' score" in err


def test_default_score_is_the_aggregate_when_the_entries_give_it(five, builtin) -> None:
    entries = [
        make_entry(
            a,
            scores={"naswot": i, "synflow": i, "jacob_cov": i, "flops": 1.0, "latency": 5.0 - i},
        )
        for i, (a, _) in enumerate(five)
    ]
    out = compare_scores(entries, builtin, n_boot=20, pareto=["latency"])["pareto_front"]
    front = out["latency"]
    assert front["score"] == "aggregate"
    # aggregate rises with i and latency falls: the last cell dominates every other
    assert [m["arch"] for m in front["front"]] == [str(five[4][0])]
    with pytest.raises(ConfigError, match=r"cost must be one of params, flops, latency"):
        compare_scores(entries, builtin, n_boot=20, pareto=["watts"])
