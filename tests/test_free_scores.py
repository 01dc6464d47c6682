"""Helpers of benchmarks/free_scores.py: the fresh samples and the pool picks."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import load_benchmark

from nasnc.proxies import PROXIES


@pytest.fixture(scope="module")
def fs() -> ModuleType:
    return load_benchmark("free_scores")


def test_fresh_samples_are_disjoint_from_the_studied_ones_and_each_other(fs: ModuleType) -> None:
    c, d = fs.fresh_sample("C", 60), fs.fresh_sample("D", 60)
    study = load_benchmark("capacitance_study")
    studied = {a.canonical() for spec in fs.STUDIED for a in study.study_sample(*spec)}
    assert len(studied) == 300  # A and B: 150 each, disjoint
    for cells in (c, d):
        forms = {a.canonical() for a in cells}
        assert len(forms) == 60 and not forms & studied
        assert not any(a.is_zero for a in cells)
    assert not {a.canonical() for a in c} & {a.canonical() for a in d}
    assert fs.fresh_sample("C", 60) == c  # seeded
    assert fs.fresh_sample("C", 30) == c[:30]  # a smaller sample is a prefix
    with pytest.raises(SystemExit, match="unknown sample 'Z'"):
        fs.fresh_sample("Z", 10)


def test_sample_e_leaves_out_every_earlier_sample_at_its_drawn_size(fs: ModuleType) -> None:
    e = fs.fresh_sample("E", 150)
    forms = {a.canonical() for a in e}
    assert len(forms) == 150
    study = load_benchmark("capacitance_study")
    for spec in fs.STUDIED:
        assert not forms & {a.canonical() for a in study.study_sample(*spec)}
    for name in ("C", "D"):  # all 500 cells of each, not only their first 150
        earlier = fs.fresh_sample(name, fs.DRAWN[name])
        assert len(earlier) == 500 and not forms & {a.canonical() for a in earlier}
    f = {a.canonical() for a in fs.fresh_sample("F", 150)}
    assert len(f) == 150 and not f & forms  # F leaves out E (and A-D)


def test_every_scored_name_is_a_proxy_and_candidates_extend_the_aggregate(fs: ModuleType) -> None:
    assert set(fs.SCORES) <= set(PROXIES)
    for name, members in fs.CANDIDATES.items():
        assert members[: len(fs.BASE)] == fs.BASE
        assert set(members) <= set(fs.SCORES) | {f"−{k}" for k in fs.NEGATED}
        assert set(fs.NEGATED) <= set(fs.SCORES)
        assert name == " + ".join(["aggregate", *members[len(fs.BASE) :]])


def test_pool_picks_measure_the_gap_to_each_pools_best(fs: ModuleType) -> None:
    rng = np.random.default_rng(1)
    gt = rng.normal(90, 1, 200)
    cols = {name: rng.normal(size=200) for name in fs.SCORES}
    for name in fs.BASE:  # the aggregate's members rank by the truth itself
        cols[name] = gt.copy()
    picks = fs.pool_picks(fs.with_negated(cols), gt, pool=50, draws=30)
    top1, top10 = picks["aggregate"]
    assert top1.shape == top10.shape == (30,)
    np.testing.assert_allclose(top1, 0.0)  # a perfect aggregate picks each pool's best
    np.testing.assert_allclose(top10, 0.0)
    assert set(picks) == set(fs.CANDIDATES)
    for name in fs.CANDIDATES:
        if name != "aggregate":  # a noise column dilutes the perfect ranking
            assert picks[name][0].mean() > 0


def test_pool_larger_than_the_sample_is_refused(
    fs: ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit):
        fs.main(
            ["--sample", "C", "--n", "50", "--pool", "100", "--table", "--cache", str(tmp_path)]
        )
    assert "--pool 100 is larger than the sample (--n 50)" in capsys.readouterr().err


def test_top_table_gaps_each_score_against_the_space_aggregate(fs: ModuleType) -> None:
    from argparse import Namespace

    from nasnc.bench import open_benchmark
    from nasnc.space import sample_archs

    truth = open_benchmark("builtin")
    archs = [str(a) for a in sample_archs(60, seed=3, unique=True, exclude_zero=True)]
    gt = np.array([truth.get(a, "cifar10-valid", "valid_acc") for a in archs])
    rng = np.random.default_rng(0)
    cols: dict[str, np.ndarray] = {"arch": np.asarray(archs)}
    cols["space aggregate"] = rng.normal(size=gt.size)  # orders nothing
    for name in fs.SCORES:
        cols[name] = rng.normal(size=gt.size)
    cols["meco"] = gt.copy()  # orders the sample perfectly
    cols["fisher"] = -gt  # exactly backwards
    cols["zico"] = np.full(gt.size, np.nan)  # every cell failed
    text = fs.top_table(Namespace(sample="S2", truth="cifar10-valid"), cols)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()}
    assert "the even ranks of ranks 1-300 of the space" in text
    assert rows["the free aggregate (over the whole space)"].endswith("| – |")
    assert rows["zico"].endswith("| – |")
    meco = rows["meco"].split(" | ")
    space_best = truth.best("cifar10-valid", "valid_acc")[1]  # regret is against the space
    assert meco[1].startswith("+1.000") and meco[2] == f"{space_best - gt.max():.2f}"
    low = float(meco[3].split("[")[1].split(",")[0])
    assert low > 0  # a perfect order beats noise, interval above zero
    high = float(rows["fisher"].split(" | ")[3].split(",")[1].rstrip("] |"))
    assert high < 0
    negated = float(rows["−fisher"].split(" | ")[3].split("[")[1].split(",")[0])
    assert negated > 0 and rows["−fisher"].split(" | ")[1].startswith("+1.000")
    assert len([r for r in rows if r in fs.SCORES]) == len(fs.SCORES)
