"""benchmarks/search_regret.py --search: a rerun resumes from results.jsonl."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import load_benchmark

from nasnc.bench import open_benchmark
from nasnc.space import Arch, sample_archs
from nasnc.store import Entry, Store

#: Cells with an edge 2<-1: each its own network (graph form), whatever the others.
CELLS = [str(a) for a in sample_archs(40, seed=5) if a.op(2, 1) != "none"][:10]

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cpu-30min.yaml"

regret = load_benchmark("search_regret")


def _args(tmp_path: Path, **changes) -> argparse.Namespace:
    base = dict(
        search=str(CONFIG), out=str(tmp_path), data_root=str(tmp_path / "data"),
        screen_size=1000, top_k=8, n_trials=16, workers=None, timeout=None, set=None,
        versus=None,
    )  # fmt: skip
    return argparse.Namespace(**{**base, **changes})


#: The picks search_seed records under a row's "by" (the older rows' set).
_READINGS = ("aggregate", "proxy_valid_acc", "beta_eff", "aggregate + beta_eff", "aggregate + dW")


def _recorded_row(args: argparse.Namespace, seed: int, pick: float, arch: str, **fields) -> dict:
    """A results.jsonl row as search_seed writes it, every pick at ``pick``; ``fields``
    replace keys."""
    row = {
        "seed": seed, "wall_s": 600.0, "screen_s": 120.0, "screened": 3000, "trained": 30,
        "completed": 20, "pruned": 10, "train_s_median": 30.0, "pick": pick,
        "pick_arch": arch, "best_trained": 91.0, "pick_weights": {"aggregate": 1.0},
        "by": dict.fromkeys(_READINGS, pick),
        "study_key": regret.study_key(regret.seed_config(args, 0)),
        "revision": regret.code_revision(),
        "config": {"screen_size": 3000, "top_k": 24, "n_trials": 40, "workers": 2,
                   "timeout": 1800, "epochs": 8},
    }  # fmt: skip
    return {**row, **fields}


def test_seeds_of_one_measurement_share_a_key_and_a_changed_stage_size_does_not(tmp_path):
    args = _args(tmp_path)
    key0 = regret.study_key(regret.seed_config(args, 0))
    assert regret.seed_config(args, 0).seed == 0
    assert regret.seed_config(args, 3).seed == 3
    assert regret.study_key(regret.seed_config(args, 3)) == key0
    assert regret.study_key(regret.seed_config(_args(tmp_path, top_k=9), 0)) != key0
    assert json.loads(key0)["screen"]["top_k"] == 8
    # a proxy option added later at its default leaves the key of earlier runs as it was
    assert "crop_padding" not in json.loads(key0)["proxy"]
    padded = regret.seed_config(_args(tmp_path, set=["proxy.crop_padding=2"]), 0)
    assert json.loads(regret.study_key(padded))["proxy"]["crop_padding"] == 2


def test_set_overrides_any_key_and_names_a_bad_one(tmp_path):
    pairs = ["proxy.epochs=1", "pick.weights={aggregate: 1, beta_eff_probe_dw_chain_sf: 2}"]
    config = regret.seed_config(_args(tmp_path, set=pairs), 0)
    assert config.proxy.epochs == 1
    assert config.pick.weights == {"aggregate": 1, "beta_eff_probe_dw_chain_sf": 2}
    assert regret.study_key(config) != regret.study_key(regret.seed_config(_args(tmp_path), 0))
    with pytest.raises(SystemExit, match="nosuch"):
        regret.seed_config(_args(tmp_path, set=["nosuch.epochs=1"]), 0)
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        regret.seed_config(_args(tmp_path, set=["proxy.epochs"]), 0)
    with pytest.raises(SystemExit, match="typo"):
        regret.seed_config(_args(tmp_path, set=["pick.weights={typo: 1}"]), 0)


def test_recorded_seeds_keeps_this_studys_seeds_and_skips_a_torn_line(tmp_path, caplog):
    key = regret.study_key(regret.seed_config(_args(tmp_path), 0))
    log = tmp_path / "results.jsonl"
    rows = [
        {"seed": 0, "study_key": key, "pick": 90.1},
        {"seed": 1, "study_key": "another config", "pick": 88.0},
        {"seed": 2, "pick": 89.0},  # written before the key was recorded
        {"seed": 0, "study_key": key, "pick": 90.7},  # a later run of seed 0 wins
    ]
    lines = "".join(json.dumps(r) + "\n" for r in rows) + "[]\n"  # JSON, not a row
    log.write_text(lines + '{"seed": 3, "study')
    done = regret.recorded_seeds(log, key)
    assert sorted(done) == [0]
    assert done[0]["pick"] == 90.7
    assert "results.jsonl:5: not a JSON object" in caplog.text
    assert "results.jsonl:6: not a JSON object" in caplog.text
    assert regret.recorded_seeds(tmp_path / "missing.jsonl", key) == {}


def test_a_seed_appended_after_a_torn_line_is_read_back(tmp_path):
    key = regret.study_key(regret.seed_config(_args(tmp_path), 0))
    log = tmp_path / "results.jsonl"
    log.write_text('{"seed": 0, "study_key": "x"}\n{"seed": 1, "stu')
    regret.append_line(log, {"seed": 1, "study_key": key, "pick": 91.0})
    regret.append_line(log, {"seed": 2, "study_key": key, "pick": 90.0})
    assert {s: r["pick"] for s, r in regret.recorded_seeds(log, key).items()} == {1: 91.0, 2: 90.0}


def _run(arch: str, **readings: float) -> Entry:
    trajectory = {"step": np.array([10.0]), **{k: np.array([v]) for k, v in readings.items()}}
    return Entry.from_arch(
        arch, dataset="cifar10", seed=0, config={}, trajectory=trajectory,
        summary={
            "beta_eff": 1.0, "beta_eff_std": 0.0, "beta_eff_last": 1.0, "diverged": False,
            "proxy_valid_acc": 0.5, "cost_s": 1.0, "steps": 10,
        },
    )  # fmt: skip


def test_signals_read_each_distinct_trained_cell_once_with_its_truth(tmp_path):
    truth = open_benchmark("builtin")
    archs = [str(a) for a in sample_archs(6, seed=4, unique=True, exclude_zero=True)]
    first, second = Store(tmp_path / "seed0" / "cache"), Store(tmp_path / "seed1" / "cache")
    for i, a in enumerate(archs):
        if i < 4:
            first.put(_run(a, x=i))
        if i >= 2:
            second.put(_run(a, x=-1))
    cells = regret.trained_readings(tmp_path, ["x", "absent"], truth)
    assert len(cells) == 6  # archs 2 and 3 trained twice: the first run (seed0) kept
    by_cell = {Arch.from_str(a).graph_form(): a for a in archs}
    for cell, row in cells.items():
        i = archs.index(by_cell[cell])
        assert row["x"] == (i if i < 4 else -1)
        assert math.isnan(row["absent"])
        assert row["acc"] == pytest.approx(truth.get(by_cell[cell], "cifar10-valid", "valid"))
        assert row["half"] == regret.half_of(Arch.from_str(by_cell[cell]).canonical())
    # two networks of one canonical form are two cells (one conv doubled, two convs)
    doubled = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|"
    two = "|none~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|none~1|skip_connect~2|"
    third = Store(tmp_path / "seed2" / "cache")
    third.put(_run(doubled, x=7))
    third.put(_run(two, x=8))
    assert len(regret.trained_readings(tmp_path, ["x"], truth)) == 8


def test_kept_share_counts_the_best_cells_a_pruner_would_keep():
    acc = np.arange(20.0)  # the top 10 % are the cells with acc 19 and 18
    assert regret.kept_share(acc.copy(), acc) == 1.0  # a perfect signal keeps them
    assert regret.kept_share(-acc, acc) == 0.0  # a reversed one prunes both
    signal = acc.copy()
    signal[19] = np.nan  # a NaN signal is pruned, as CapacitancePruner does
    assert regret.kept_share(signal, acc) == 0.5


def test_paired_tau_gap_is_signed_and_its_interval_holds_it():
    rng = np.random.default_rng(1)
    acc = rng.normal(size=200)
    good, poor = acc + rng.normal(scale=0.3, size=200), rng.normal(size=200)
    gap, low, high = regret.paired_tau_gap(good, poor, acc, n_boot=200)
    assert gap > 0.5 and low <= gap <= high and low > 0
    gap, low, high = regret.paired_tau_gap(poor, good, acc, n_boot=200)
    assert gap < -0.5 and high < 0


def test_seeds_recorded_by_other_code_are_named():
    revision = regret.code_revision()
    # a commit (maybe +dirty) in a git checkout, nasnc's version elsewhere
    checkout = (Path(regret.__file__).resolve().parents[1] / ".git").exists()
    form = r"[0-9a-f]{12}(\+dirty)?" if checkout else r"nasnc \S+"
    assert re.fullmatch(form, revision), revision
    done = {0: {"revision": revision}, 1: {"revision": "abc123"}, 2: {}}
    assert regret.other_revisions(done, revision) == {1: "abc123", 2: "unknown"}
    assert regret.other_revisions({0: {"revision": revision}}, revision) == {}


def test_seed_range_starts_at_the_first_seed_and_names_a_bad_one():
    assert list(regret.seed_range(5, 5)) == [5, 6, 7, 8, 9]
    assert list(regret.seed_range(0, 1)) == [0]
    with pytest.raises(SystemExit, match="--first-seed -1"):
        regret.seed_range(-1, 5)
    with pytest.raises(SystemExit, match="--seeds 0"):
        regret.seed_range(5, 0)


def test_within_study_taus_read_each_studys_completed_cells(tmp_path):
    import optuna
    from optuna.trial import TrialState, create_trial

    from nasnc_search import make_storage

    for seed, sign in ((0, 1.0), (3, -1.0)):
        storage = make_storage(f"journal:{tmp_path / f'seed{seed}' / 'study.journal'}")
        study = optuna.create_study(study_name=f"regret-seed{seed}", storage=storage)
        for i in range(6):
            attrs = {"arch": CELLS[i], "true_acc": float(i), "score": sign * i}
            study.add_trial(create_trial(value=0.0, user_attrs=attrs))
        # a second run of cell 0 and a pruned trial are not counted again
        study.add_trial(create_trial(value=0.0, user_attrs={"arch": CELLS[0], "score": 9.0}))
        pruned = {"arch": CELLS[9], "true_acc": 99.0, "score": -99.0}
        study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs=pruned))
    taus = regret.within_study_taus(tmp_path, ["score", "absent"])
    assert set(taus) == {0, 3}
    assert taus[0]["n"] == 6 and taus[0]["score"] == pytest.approx(1.0)
    assert taus[3]["score"] == pytest.approx(-1.0)
    assert math.isnan(taus[0]["absent"])


def test_random_search_pays_a_full_run_per_cell_read_from_the_row_or_the_journal(tmp_path, builtin):
    import optuna
    from optuna.trial import TrialState, create_trial

    from nasnc_search import make_storage

    storage = make_storage(f"journal:{tmp_path / 'seed4' / 'study.journal'}")
    study = optuna.create_study(study_name="regret-seed4", storage=storage)
    for i, cost in enumerate((30.0, 34.0, 40.0)):
        study.add_trial(create_trial(value=0.0, user_attrs={"arch": CELLS[i], "cost_s": cost}))
    study.add_trial(create_trial(value=0.0, user_attrs={"arch": CELLS[0], "cost_s": 1.0}))  # again
    pruned = {"arch": CELLS[9], "cost_s": 5.0}  # a pruned run is cheap: random search's never is
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs=pruned))
    old = {"seed": 4, "train_s_median": 20.0, "config": {"workers": 2}}  # recorded without it
    args = _args(tmp_path)
    assert regret.complete_cost(args, old) == 34.0
    assert math.isnan(regret.complete_cost(args, {**old, "seed": 5}))  # no journal left
    assert regret.complete_cost(args, {**old, "train_s_complete": 31.0}) == 31.0
    assert regret.random_oracle(old, 600.0, builtin)[0] == 60  # 600 s x 2 workers / 20 s
    n, best = regret.random_oracle(old, 600.0, builtin, 34.0)
    assert n == 35 and 80.0 < best <= builtin.best("cifar10-valid", "valid")[1]
    assert regret.random_oracle(old, 600.0, builtin, math.nan) == (
        0,
        pytest.approx(math.nan, nan_ok=True),
    )


def test_study_cells_keep_each_cells_first_completed_run(tmp_path):
    import optuna
    from optuna.trial import TrialState, create_trial

    from nasnc_search import make_storage

    a, b = (str(x) for x in sample_archs(2, seed=8, unique=True, exclude_zero=True))
    study = optuna.create_study(storage=make_storage(f"journal:{tmp_path / 'study.journal'}"))
    runs = [
        (TrialState.PRUNED, a, 5.0),
        (TrialState.COMPLETE, a, 30.0),
        (TrialState.COMPLETE, a, 0.1),  # the sampler proposed it again: a cache hit
        (TrialState.COMPLETE, b, 40.0),
        (TrialState.PRUNED, b, 3.0),
    ]
    for state, arch, cost in runs:
        attrs = {"arch": arch, "canonical": Arch.parse(arch).canonical(), "cost_s": cost}
        value = 1.0 if state == TrialState.COMPLETE else None
        study.add_trial(create_trial(state=state, value=value, user_attrs=attrs))
    archs, col = regret.study_cells(study, regret.seed_config(_args(tmp_path), 0))
    assert archs == [a, b]
    assert list(col["cost_s"]) == [30.0, 40.0] and list(col["complete"]) == [1.0, 1.0]


def test_shortlist_pick_takes_the_highest_beta_eff_among_completed_shortlisted_cells():
    col = {
        "acc": np.array([91.0, 90.0, 89.0, 88.0]),
        "beta_eff": np.array([9.0, 3.0, 5.0, 4.0]),
        "shortlisted": np.array([0.0, 1.0, 1.0, 1.0]),  # the best βeff is a TPE cell
    }
    done = np.array([True, True, False, True])  # the shortlisted 5.0 was pruned
    assert regret.shortlist_pick(col, done) == 88.0
    assert math.isnan(regret.shortlist_pick(col, np.array([True, False, False, False])))
    assert math.isnan(regret.shortlist_pick(col, np.zeros(4, dtype=bool)))
    col["beta_eff"] = np.array([9.0, np.nan, 5.0, np.nan])
    assert math.isnan(regret.shortlist_pick(col, done))  # NaN βeff never wins


def test_negated_pick_prefers_the_smaller_score_among_completed_cells():
    name = regret.NEGATED_SCORE
    col = {
        "acc": np.array([91.0, 90.0, 89.0, 88.0]),
        "aggregate": np.array([1.0, 1.0, 1.0, 1.0]),  # ties: the other two decide
        "beta_eff": np.array([2.0, 2.0, 2.0, 2.0]),
        name: np.array([0.1, 5.0, 0.2, 9.0]),
    }
    done = np.array([False, True, True, True])  # the smallest score was pruned
    assert regret.negated_pick(col, done, col["acc"]) == 89.0
    # βeff ranks the completed cells 90 > 88 > 89, the negated score 89 > 90 > 88: the
    # log ranks sum to 0 + log(2/3), log(1/3) + 0 and log(2/3) + log(1/3)
    col["beta_eff"] = np.array([2.0, 3.0, 1.0, 2.0])
    assert regret.negated_pick(col, done, col["acc"]) == 90.0
    col[name] = np.full(4, np.nan)  # a study that did not record it: no pick, not a guess
    assert math.isnan(regret.negated_pick(col, done, col["acc"]))
    del col[name]
    assert math.isnan(regret.negated_pick(col, done, col["acc"]))


def test_paired_regret_gap_is_signed_by_the_other_pick_and_needs_two_seeds():
    base, better = [90.0, 89.0, 91.0], [90.5, 89.5, 91.0]
    mean, lo, hi = regret.paired_regret_gap(base, better)
    assert mean == pytest.approx(-1 / 3) and lo <= mean <= hi <= 0.0
    assert regret.paired_regret_gap(better, base)[0] == pytest.approx(1 / 3)
    assert all(math.isnan(v) for v in regret.paired_regret_gap([90.0, math.nan], [91.0, 92.0]))


def test_finalists_are_the_completed_cells_the_pick_score_ranks_first():
    col = {
        "complete": np.array([1.0, 1.0, 0.0, 1.0, 1.0]),
        "aggregate": np.array([-1.0, -2.0, 0.0, -3.0, -4.0]),
        "beta_eff": np.array([4.0, 3.0, 9.0, 2.0, 1.0]),
    }
    weights = {"aggregate": 1.0, "beta_eff": 1.0}
    # cell 2 leads both scores but was pruned: never a finalist
    assert regret.finalists(col, weights, 3).tolist() == [0, 1, 3]
    assert regret.finalists(col, weights, 9).tolist() == [0, 1, 3, 4]
    col["beta_eff"] = np.array([1.0, 3.0, 9.0, 2.0, 4.0])
    assert regret.finalists(col, {"beta_eff": 1.0}, 2).tolist() == [4, 1]
    col["complete"] = np.zeros(5)
    assert regret.finalists(col, weights, 3).size == 0


def test_final_picks_average_beta_eff_over_the_seeds():
    acc = np.array([90.0, 91.0, 89.0])
    aggregate = np.array([-1.0, -2.0, -3.0])
    # the study's seed favours cell 0, the extra seed cell 2; their mean, cell 1
    beta = np.array([[5.0, 1.0], [4.0, 4.0], [1.0, 6.0]])
    by = regret.final_picks(acc, aggregate, beta)
    assert list(by) == list(regret.FINAL_ROWS)
    assert by["mean beta_eff"] == 91.0
    assert by["beta_eff, study seed"] == 90.0
    assert by["beta_eff, extra seed"] == 89.0
    assert by["finalists' best (oracle)"] == 91.0
    # a diverged run (NaN) leaves the cell its other seed's reading, never a win by NaN
    beta[1] = [3.2, np.nan]
    assert regret.final_picks(acc, aggregate, beta)["mean beta_eff"] == 89.0  # 3.5 > 3.2 > 3.0
    beta[2] = np.nan
    assert regret.final_picks(acc, aggregate, beta)["mean beta_eff"] == 91.0
    assert regret.final_picks(np.array([]), np.array([]), np.empty((0, 2))) == {}


def test_final_seeds_follow_the_studys_seed():
    assert regret.final_seeds(7, 2) == [7, 1007, 2007]
    assert regret.final_seeds(0, 0) == [0]


@pytest.mark.slow
def test_final_stage_retrains_a_recorded_studys_finalists_once(tmp_path, synthetic_root, builtin):
    tiny = [
        "proxy.resolution=8", "proxy.train_subset=256", "proxy.valid_size=128",
        "proxy.channels=4", "proxy.probe=[16]", "proxy.epochs=2", "proxy.batch_size=64",
        "threads=1", "pruner.n_startup_trials=8",
    ]  # fmt: skip
    args = _args(
        tmp_path, data_root=str(synthetic_root), screen_size=12, top_k=4, n_trials=5,
        workers=1, set=tiny, final_stage=3, final_seeds=1,
    )  # fmt: skip
    _best, space_best = builtin.best("cifar10-valid", "valid")
    row = regret.search_seed(args, 7, builtin, space_best, "test")
    store = Store(tmp_path / "seed7" / "cache")
    before = {e.key for e in store.entries()}
    final = regret.final_stage(args, 7)
    assert final is not None and final["seeds"] == [7, 1007]
    assert len(final["finalists"]) == 3
    # the first finalist is the study's own pick
    assert (
        Arch.parse(final["finalists"][0]).graph_form() == Arch.parse(row["pick_arch"]).graph_form()
    )
    beta = np.array(final["beta_eff"])
    assert beta.shape == (3, 2) and np.isfinite(beta).all()
    assert not np.array_equal(beta[:, 0], beta[:, 1])  # another seed, another run
    new = {e.key for e in Store(tmp_path / "seed7" / "cache").entries()} - before
    assert len(new) == 3
    assert final["by"]["finalists' best (oracle)"] == max(final["acc"])
    assert final["by"]["mean beta_eff"] in final["acc"]
    again = regret.final_stage(args, 7)  # cached: nothing trains twice
    assert again is not None and again["beta_eff"] == final["beta_eff"]
    assert {e.key for e in Store(tmp_path / "seed7" / "cache").entries()} - before == new
    assert regret.has_final({"final": final}, args)
    assert not regret.has_final({"final": final}, argparse.Namespace(final_stage=3, final_seeds=2))
    assert regret.final_stage(args, 8) is None  # no such study under --out
    # a study whose every trial was pruned has no finalist, and says so without training
    import optuna
    from optuna.trial import TrialState, create_trial

    from nasnc_search import make_storage

    storage = make_storage(f"journal:{tmp_path / 'seed9' / 'study.journal'}")
    study = optuna.create_study(study_name=regret.seed_config(args, 9).study_name, storage=storage)
    attrs = {"canonical": "cell", "arch": row["pick_arch"], "beta_eff": 1.0, "aggregate": 0.0}
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs=attrs))
    empty = regret.final_stage(args, 9)
    assert empty is not None and empty["finalists"] == [] and empty["by"] == {}


def test_recorded_final_stages_are_read_back_with_their_paired_gaps(tmp_path, builtin, capsys):
    args = _args(tmp_path, first_seed=0, seeds=2, final_stage=6, final_seeds=1)
    arch = str(sample_archs(1, seed=0)[0])
    by = {"aggregate": 90.0, "proxy_valid_acc": 90.0, "beta_eff": 90.0}
    for seed, (pick, final) in enumerate([(90.0, 90.5), (89.0, 89.3)]):
        row = _recorded_row(
            args, seed, pick, arch, by={**by, "aggregate + beta_eff": pick, "aggregate + dW": pick}
        )
        regret.append_line(tmp_path / "results.jsonl", row)  # the study, before its final stage
        picks = dict(zip(regret.FINAL_ROWS, [final, pick, pick, math.nan, 91.0], strict=True))
        final_row = {"m": 6, "extra_seeds": 1, "seconds": 100.0, "finalists": [arch], "by": picks}
        regret.append_line(tmp_path / "results.jsonl", {**row, "final": final_row})
    assert regret.run_search_mode(args) == 0  # everything recorded: nothing runs
    out = capsys.readouterr().out
    gaps = {
        line[2:34].strip(): line[35:]
        for line in out.splitlines()
        if line.startswith("  ") and line.endswith(" points")
    }
    assert list(gaps) == list(regret.FINAL_ROWS)
    assert gaps["mean beta_eff"] == "-0.40 [-0.50, -0.30] points"  # 0.5 and 0.3 better
    assert gaps["aggregate + mean beta_eff"] == "+0.00 [+0.00, +0.00] points"
    assert "nan" in gaps["beta_eff, extra seed"]
    assert "final stage (top 6, +1 seed): mean beta_eff" in out
    assert "100.00 ± 0.00 s per study" in out


def test_the_candidate_pick_is_paired_against_the_studys_pick(tmp_path, builtin, capsys):
    """R10/R11's rule reads aggregate + proxy accuracy paired against the study's pick."""
    args = _args(tmp_path, first_seed=0, seeds=2, final_stage=0)
    arch = str(sample_archs(1, seed=0)[0])
    for seed, (pick, candidate) in enumerate([(90.0, 90.5), (89.0, 89.1)]):
        by = {**dict.fromkeys(_READINGS, pick), "aggregate + proxy_valid_acc": candidate}
        row = _recorded_row(args, seed, pick, arch, by=by)
        regret.append_line(tmp_path / "results.jsonl", row)
    assert regret.run_search_mode(args) == 0
    out = capsys.readouterr().out
    [line] = [ln for ln in out.splitlines() if ln.startswith("  aggregate + proxy accuracy")]
    assert line.endswith(" -0.30 [-0.50, -0.10] points")  # 0.5 and 0.1 better: negative
    assert "shortlisted" not in out.split("paired over seeds")[-1]  # no such rows, no line


def test_a_recorded_final_stage_without_finalists_is_read_back(tmp_path, builtin, capsys):
    args = _args(tmp_path, first_seed=0, seeds=1, final_stage=6, final_seeds=1)
    final = {"m": 6, "extra_seeds": 1, "seconds": 0.0, "finalists": [], "by": {}}
    arch = str(sample_archs(1, seed=0)[0])
    row = _recorded_row(args, 0, 90.0, arch, completed=0, pruned=30, final=final)
    regret.append_line(tmp_path / "results.jsonl", row)
    assert regret.run_search_mode(args) == 0  # no finalist to check against the pick
    assert "final stage (top 6, +1 seed): mean beta_eff" in capsys.readouterr().out


def test_versus_pairs_the_picks_of_two_measurements_by_seed(tmp_path, builtin, capsys):
    base_out, cand_out = tmp_path / "base", tmp_path / "cand"
    base_args = _args(base_out, first_seed=0, seeds=3, final_stage=0)
    changed = ["screen.weights={naswot: -1}"]
    args = _args(cand_out, first_seed=0, seeds=3, final_stage=0, set=changed, versus=str(base_out))
    arch = str(sample_archs(1, seed=0)[0])
    for out, a, picks in [(base_out, base_args, (90.0, 89.0)), (cand_out, args, (90.5, 88.0, 91))]:
        out.mkdir()
        for seed, pick in enumerate(picks):
            regret.append_line(out / "results.jsonl", _recorded_row(a, seed, pick, arch))
    assert regret.run_search_mode(args) == 0  # everything recorded: nothing runs
    out = capsys.readouterr().out
    # --set replaces the config's screen.weights ({grad_norm: -1}) as a whole
    assert "config differs in: screen.weights.grad_norm, screen.weights.naswot)" in out
    assert "2 paired seeds; not recorded there: [2]" in out
    assert "0: -0.50, 1: +1.00" in out  # regret of this pick minus that one, per seed
    assert "paired over seeds: +0.25 [-0.50, +1.00] points" in out
    # the other measurement must be one config for these seeds
    other = dict(json.loads((base_out / "results.jsonl").read_text().splitlines()[0]))
    regret.append_line(base_out / "results.jsonl", {**other, "study_key": "{}"})
    with pytest.raises(SystemExit, match="2 configs"):
        regret.run_search_mode(args)
    with pytest.raises(SystemExit, match=r"no .*nowhere"):
        regret.run_search_mode(argparse.Namespace(**{**vars(args), "versus": "nowhere"}))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "results.jsonl").write_text("")
    capsys.readouterr()
    regret.run_search_mode(argparse.Namespace(**{**vars(args), "versus": str(tmp_path / "empty")}))
    assert (
        "differs in: unknown: no rows for these seeds): 0 paired seeds" in capsys.readouterr().out
    )


def test_key_changes_names_nested_keys_of_any_value_type():
    mine = json.dumps({"sampler": {"name": "tpe"}, "n_trials": 40, "screen": {"w": {}}})
    theirs = json.dumps({"sampler": {"name": "random"}, "n_trials": 40, "screen": {"w": {"g": -1}}})
    assert regret.key_changes(mine, theirs) == ["sampler.name", "screen.w.g"]
    assert regret.key_changes(mine, mine) == []
    assert regret.key_changes(json.dumps({"a": "[1]"}), json.dumps({"a": [1]})) == ["a"]
