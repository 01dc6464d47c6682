"""Stage 1 (screen), the two-stage study, samplers, pruners, multi-objective, the pick."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nasnc import ConfigError
from nasnc.data import ProxyData
from nasnc.pipeline import ProxyConfig, load_proxy_data, proxy_key, screen_archs, screen_config
from nasnc.proxies import rank_aggregate
from nasnc.space import NUM_UNIQUE, NUM_UNIQUE_NONZERO, Arch, sample_archs
from nasnc.store import Store, config_hash
from nasnc_search._config import (
    DW_SCORE,
    PROBE_DW_SCORE,
    PickConfig,
    PrunerConfig,
    SamplerConfig,
    ScreenConfig,
    SearchConfig,
    apply_overrides,
)
from nasnc_search._objective import trial_cell
from nasnc_search._samplers import make_pruner, make_sampler
from nasnc_search._screen import (
    SCREEN_ATTR,
    ScreenPool,
    edge_params,
    enqueue_shortlist,
    pool_archs,
    run_screen,
)
from nasnc_search._stages import pick, trained_cells
from nasnc_search._study import open_study, run_search
from nasnc_search._summary import summarize
from tests.test_search import TINY_PROXY, tiny_config

SCORES = ("naswot", "synflow", "jacob_cov", "flops")


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def cifar_root(synthetic_root: Path) -> Path:
    """The session's synthetic CIFAR-10 (conftest): these tests need images, not CIFAR's."""
    return synthetic_root


@pytest.fixture(scope="module")
def tiny_data(cifar_root: Path) -> ProxyData:
    return load_proxy_data(ProxyConfig(**TINY_PROXY), cifar_root, device="cpu")


def test_screen_writes_score_only_entries_and_a_rerun_scores_nothing(
    tmp_path: Path, tiny_data: ProxyData
) -> None:
    proxy = ProxyConfig(**TINY_PROXY)
    archs = sample_archs(6, seed=0, unique=True, exclude_zero=True)
    store = Store(tmp_path / "cache", durable=False)
    first = screen_archs(archs, proxy, tiny_data, names=SCORES[:2], store=store, device="cpu")
    assert first.cached == 0 and len(first) == 6
    assert all(np.isfinite(first.scores["naswot"]))
    entries = store.entries(config_hash=config_hash(screen_config(proxy, tiny_data, device="cpu")))
    assert len(entries) == 6
    for e in entries:
        assert e.summary["score_only"] is True and e.n_points == 0
        assert math.isnan(e.summary["beta_eff"]) and e.summary["cost_s"] > 0
        assert set(e.scores) == {"naswot", "synflow"}
        # never the key of a trained run of the same cell
        assert e.key != proxy_key(e.arch, proxy, 0, tiny_data, device="cpu")

    # a later screen (another process: a fresh Store object) asks for one more score:
    # only that one is computed, the cached ones are reused as they are
    again = screen_archs(
        archs,
        proxy,
        tiny_data,
        names=SCORES[:3],
        store=Store(tmp_path / "cache"),
        device="cpu",
    )
    assert again.cached == 0 and len(Store(tmp_path / "cache")) == 6
    assert again.scores["naswot"] == pytest.approx(first.scores["naswot"])
    third = screen_archs(
        archs,
        proxy,
        tiny_data,
        names=SCORES[:3],
        store=Store(tmp_path / "cache"),
        device="cpu",
    )
    assert third.cached == 6 and third.per_cell_s == []
    # the screen key ignores the training recipe: another lr reuses the entries
    other = ProxyConfig(**{**TINY_PROXY, "lr": 0.05, "epochs": 1})
    assert (
        screen_archs(
            archs,
            other,
            tiny_data,
            names=SCORES[:3],
            store=Store(tmp_path / "cache"),
            device="cpu",
        ).cached
        == 6
    )


def test_pool_ranks_cells_inside_and_outside_it(
    tmp_path: Path, tiny_data: ProxyData, cifar_root: Path
) -> None:
    config = tiny_config(tmp_path, cifar_root, **{"screen.size": 8, "screen.top_k": 3})
    pool = run_screen(config, tiny_data, Store(tmp_path / "cache"), device="cpu")
    assert len(pool) == 8 and [str(a) for a in pool_archs(config)] == pool.result.archs
    top = pool.shortlist(3)
    assert [v for _a, v in top] == sorted(pool.aggregate, reverse=True)[:3]
    assert pool.aggregate_of(top[0][0], lambda a: {}) == top[0][1]
    # a cell outside the pool that beats it in every score ranks first: aggregate 0
    outside = next(a for a in sample_archs(40, seed=9, unique=True) if pool.index_of(a) is None)
    best = {n: float(np.nanmax(pool.result.scores[n])) + 1 for n in SCORES}
    assert pool.aggregate_of(outside, lambda a: best) == 0.0


def test_pool_aggregate_follows_the_screen_config(
    tmp_path: Path, tiny_data: ProxyData, cifar_root: Path
) -> None:
    config = tiny_config(tmp_path, cifar_root, **{"screen.size": 8, "screen.top_k": 3})
    pool = run_screen(config, tiny_data, Store(tmp_path / "cache"), device="cpu")
    scores = pool.result.scores
    np.testing.assert_array_equal(pool.aggregate, rank_aggregate(scores, names=SCORES))
    # a weight of 0 drops a score: the aggregate of the other three
    dropped = ScreenPool.from_result(
        pool.result, dataclasses.replace(config.screen, weights={"flops": 0.0})
    )
    np.testing.assert_allclose(dropped.aggregate, rank_aggregate(scores, names=SCORES[:3]))
    assert not np.allclose(dropped.aggregate, pool.aggregate)
    # a negative weight ranks the score the other way round: the fewest FLOPs first
    small = ScreenPool.from_result(
        pool.result, dataclasses.replace(config.screen, scores=("flops",), weights={"flops": -1.0})
    )
    first_arch, value = small.shortlist(1)[0]
    assert pool.result.archs.index(first_arch) == int(np.argmin(scores["flops"]))
    assert value == 0.0  # first on the turned score (w * log(r/n) gave it log n)
    # a missing score: the worst rank by default, NaN with nan: propagate
    holed = dataclasses.replace(
        pool.result, scores={**scores, "jacob_cov": np.r_[np.nan, scores["jacob_cov"][1:]]}
    )
    worst = ScreenPool.from_result(holed, config.screen).aggregate
    assert math.isfinite(worst[0]) and worst[0] <= pool.aggregate[0]
    propagated = ScreenPool.from_result(
        holed, dataclasses.replace(config.screen, nan="propagate")
    ).aggregate
    assert math.isnan(propagated[0]) and np.isfinite(propagated[1:]).all()


def test_a_rerun_enqueues_again_a_shortlisted_cell_whose_trial_was_interrupted(
    tmp_path: Path, tiny_data: ProxyData, cifar_root: Path
) -> None:
    config = tiny_config(tmp_path, cifar_root, **{"screen.size": 8, "screen.top_k": 3})
    pool = run_screen(config, tiny_data, Store(tmp_path / "cache"), device="cpu")
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    shortlist = [a for a, _v in pool.shortlist(3)]

    def waiting() -> list[str]:
        trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        return [t.user_attrs["arch"] for t in trials]

    enqueue_shortlist(study, pool, 3)
    enqueue_shortlist(study, pool, 3)  # a rerun while they wait: nothing twice
    assert waiting() == shortlist
    first, second = study.ask(), study.ask()
    first.set_user_attr("fail_reason", "interrupted")
    study.tell(first, state=TrialState.FAIL)
    second.set_user_attr("fail_reason", "training diverged (non-finite loss)")
    study.tell(second, state=TrialState.FAIL)
    enqueue_shortlist(study, pool, 3)
    # the interrupted cell waits again; the diverged one has its verdict
    assert waiting() == [shortlist[2], shortlist[0]]
    assert len(study.trials) == 4


def test_a_resumed_screen_keeps_the_first_screens_cost(
    tmp_path: Path, tiny_data: ProxyData, cifar_root: Path
) -> None:
    """A resume takes the whole pool from the cache; ``nasnc report`` charges the
    recorded seconds, so the resume must not replace the first screen's cost."""
    config = tiny_config(tmp_path, cifar_root, **{"screen.size": 6, "screen.top_k": 2})
    study = open_study(config)
    first = run_screen(config, tiny_data, Store(tmp_path / "cache"), device="cpu")
    assert enqueue_shortlist(study, first, 2) == 2
    recorded = dict(study.user_attrs[SCREEN_ATTR])
    assert recorded["scored"] == 6 and recorded["cached"] == 0 and recorded["seconds"] > 0
    assert recorded["twins"] == first.result.twins

    again = run_screen(config, tiny_data, Store(tmp_path / "cache"), device="cpu")
    assert again.result.cached == 6  # the resume scored nothing
    assert enqueue_shortlist(open_study(config), again, 2) == 2
    assert open_study(config).user_attrs[SCREEN_ATTR] == recorded


def test_two_stage_study_enqueues_the_shortlist_and_reports_the_contract(
    tmp_path: Path, cifar_root: Path
) -> None:
    from nasnc.bench import open_benchmark

    config = tiny_config(
        tmp_path,
        cifar_root,
        n_trials=4,
        benchmark="builtin",
        **{"screen.size": 12, "screen.top_k": 3, "pruner.name": "none"},
    )
    study = run_search(config)
    pool = run_screen(
        config,
        load_proxy_data(config.proxy, cifar_root, device="cpu"),
        Store(config.cache),
        device="cpu",
    )
    assert pool.result.cached == 12  # the study's screen is cached: nothing scored again
    shortlist = [a for a, _v in pool.shortlist(3)]
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.user_attrs["arch"] for t in trials[:3]] == shortlist
    assert trials[0].params == edge_params(shortlist[0])
    assert [t.user_attrs["screen_rank"] for t in trials[:3]] == [1, 2, 3]
    truth = open_benchmark("builtin")
    for t in trials:
        assert t.user_attrs["aggregate"] is not None  # the 4th, sampled, is ranked against the pool
        assert t.user_attrs["true_acc"] == pytest.approx(
            truth.get(t.user_attrs["arch"], "cifar10-valid", "valid")
        )
    assert study.metric_names == ["beta_eff"]

    out = summarize(study, config).to_dict()
    assert out["screened"] == 12 and out["trained"] == len(
        {t.user_attrs["canonical"] for t in trials}
    )
    found = out["best_found"]
    # the measured default: the aggregate plus βeff, among the completed cells
    assert found["by"] == "aggregate + beta_eff"
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    done = [
        t
        for i, t in enumerate(done)
        if t.user_attrs["canonical"] not in {u.user_attrs["canonical"] for u in done[:i]}
    ]  # one row per cell, as the pick keeps
    combined = rank_aggregate(
        {
            k: np.array([t.user_attrs[k] for t in done], dtype=float)
            for k in ("aggregate", "beta_eff")
        }
    )
    picked = next(t for t in trials if t.number == found["trial"])
    assert picked.number == done[int(np.argmax(combined))].number
    assert found["true_acc"] == pytest.approx(picked.user_attrs["true_acc"])
    assert out["regret"] == pytest.approx(out["best_in_space"] - found["true_acc"])

    # rerunning adds trials on top, never the shortlist again
    more = run_search(apply_overrides(config, {"n_trials": 5}))
    archs = [t.user_attrs.get("arch") for t in more.trials]
    assert len(more.trials) == 5 and all(archs.count(a) == 1 for a in shortlist)


def test_a_pick_by_a_free_score_uses_it(tmp_path: Path, cifar_root: Path) -> None:
    """A proxy named only in pick.weights is computed by every trial, carried as a user
    attribute, and picks (it used to be missing and the pick fell back to βeff)."""
    config = tiny_config(
        tmp_path, cifar_root, n_trials=3, **{"pruner.name": "none", "pick.weights": {"naswot": 1}}
    )
    assert config.trial_proxies == ("naswot",)
    study = run_search(config)
    store = Store(config.cache)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 3
    for t in done:
        assert t.user_attrs["naswot"] == store.get(t.user_attrs["key"]).scores["naswot"]
    found = summarize(study, config).to_dict()["best_found"]
    assert found["by"] == "naswot"
    assert found["trial"] == max(done, key=lambda t: t.user_attrs["naswot"]).number


@pytest.mark.parametrize(("score", "pruner"), [(DW_SCORE, "none"), (PROBE_DW_SCORE, "capacitance")])
def test_an_undefined_objective_fails_its_trial_and_names_the_score(
    tmp_path: Path, cifar_root: Path, score: str, pruner: str
) -> None:
    """A cached run stored before a reading's column existed cannot give that
    objective: the trial fails with a reason naming the score and the cache entry,
    and the study goes on (Optuna's own message names neither). A pruner that
    would act at once is not handed a missing reading to prune on."""
    config = tiny_config(tmp_path, cifar_root, n_trials=2, objectives=[score])
    config = apply_overrides(
        config, {"pruner.name": pruner, "pruner.n_startup_trials": 0, "pruner.n_warmup_steps": 0}
    )
    first = run_search(config)
    assert all(t.state == TrialState.COMPLETE for t in first.trials)
    store = Store(config.cache)
    for t in first.trials:  # the same runs as an older nasnc stored them
        entry = store.get(t.user_attrs["key"])
        assert entry is not None
        old = {k: v for k, v in entry.trajectory.items() if k != score}
        store.put(dataclasses.replace(entry, trajectory=old))
    again = run_search(apply_overrides(config, {"study_name": "again"}))
    assert len(again.trials) == 2  # a failure with a reason is a verdict: no retries
    for t in again.trials:
        assert t.state == TrialState.FAIL
        assert t.user_attrs["cache_hit"] is True
        reason = t.user_attrs["fail_reason"]
        assert score in reason and t.user_attrs["key"] in reason
    assert summarize(again, config).failed == 2


def test_multi_objective_study_has_a_pareto_front(tmp_path: Path, cifar_root: Path) -> None:
    config = tiny_config(
        tmp_path,
        cifar_root,
        n_trials=4,
        objectives=["beta_eff", "params"],
        **{"sampler.name": "nsga2", "sampler.kwargs": {"population_size": 2}},
    )
    study = run_search(config)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["beta_eff", "params"]
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert done and all(len(t.values) == 2 and t.values[1] > 0 for t in done)
    assert all(not t.intermediate_values for t in done)  # no reports: Optuna cannot prune these
    out = summarize(study, config).to_dict()
    front = out["pareto_front"]
    best = {t.number: trial_cell(t) for t in study.best_trials}
    assert front and {r["trial"] for r in front} <= set(best)
    assert {best[r["trial"]] for r in front} == set(best.values())  # every cell, once
    assert set(front[0]["values"]) == {"beta_eff", "params"}
    # resuming under other objectives is refused
    with pytest.raises(ConfigError, match=r"objectives"):
        open_study(apply_overrides(config, {"objectives": ["beta_eff"]}))


def test_the_pareto_front_lists_a_cell_once_with_its_truth(builtin) -> None:  # type: ignore[no-untyped-def]
    a, b, c = (str(x) for x in sample_archs(3, seed=0, unique=True, exclude_zero=True))
    study = optuna.create_study(directions=["maximize", "minimize"])
    for arch, values in ((a, [3.0, 2.0]), (a, [3.0, 2.0]), (b, [1.0, 1.0]), (c, [0.5, 5.0])):
        study.add_trial(optuna.trial.create_trial(values=values, user_attrs={"arch": arch}))
    config = SearchConfig(objectives=("beta_eff", "params"), benchmark="builtin")
    front = summarize(study, config, truth=builtin).to_dict()["pareto_front"]
    # trial 1 is trial 0's cell again (the sampler proposed it, the cache replayed it)
    assert [(r["trial"], r["arch"]) for r in front] == [(0, a), (2, b)]
    # a study that ran without a benchmark gets its truth at summary time, as top does
    assert [r["true_acc"] for r in front] == [
        builtin.get(x, "cifar10-valid", "valid") for x in (a, b)
    ]
    assert all(r["true_acc"] is not None for r in front)


def test_resuming_a_study_made_to_another_direction_is_refused(tmp_path: Path) -> None:
    # a study made by plain Optuna (no metric names) to maximise: params is a cost
    storage = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(study_name="old", storage=storage, direction="maximize")
    config = tiny_config(tmp_path, tmp_path / "no-data", objectives=["params"])
    config = apply_overrides(config, {"study_name": "old", "storage": storage})
    with pytest.raises(
        ConfigError, match=r"created to maximize, but objectives=\['params'\] need minimize"
    ):
        open_study(config)
    assert optuna.load_study(study_name="old", storage=storage).metric_names is None  # untouched


@pytest.mark.parametrize("name", ["tpe", "random", "gp", "nsga2", "bruteforce", "qmc"])
def test_every_sampler_handles_the_categorical_edges(name: str) -> None:
    sampler = make_sampler(SamplerConfig(name=name), seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        from nasnc.space import EDGES, OPS

        ops = [trial.suggest_categorical(f"edge_{t}_{s}", OPS) for t, s in EDGES]
        return float(sum(op == "nor_conv_3x3" for op in ops))

    study.optimize(objective, n_trials=4)
    assert len(study.trials) == 4


def test_sampler_and_pruner_options_are_checked_and_named() -> None:
    with pytest.raises(ConfigError, match=r"sampler\.kwargs\.n_startup"):
        make_sampler(SamplerConfig(name="random", kwargs={"n_startup": 3}), seed=0)
    with pytest.raises(ConfigError, match=r"kwargs\.seed"):
        SamplerConfig(kwargs={"seed": 1})
    tpe = make_sampler(SamplerConfig(), seed=0)
    # any worker, here or on another machine, may share the storage: a constant liar
    assert tpe._constant_liar is True  # type: ignore[attr-defined]
    lie = make_sampler(SamplerConfig(kwargs={"constant_liar": False}), seed=0)
    assert lie._constant_liar is False  # type: ignore[attr-defined]
    from nasnc._config import from_mapping

    sha = from_mapping(
        SearchConfig, {"pruner": {"name": "successive_halving", "kwargs": {"reduction_factor": 2}}}
    )
    assert isinstance(make_pruner(sha.pruner), optuna.pruners.SuccessiveHalvingPruner)
    hb = from_mapping(SearchConfig, {"pruner": {"name": "hyperband"}})
    assert isinstance(make_pruner(hb.pruner), optuna.pruners.HyperbandPruner)
    with pytest.raises(ConfigError, match=r"pruner\.kwargs\.reduction"):
        make_pruner(
            from_mapping(
                SearchConfig, {"pruner": {"name": "hyperband", "kwargs": {"reduction": 2}}}
            ).pruner
        )
    for kwargs, culprit in (
        ({"min_resource": 0}, "min_resource"),
        ({"max_resource": 0.5}, "max_resource"),
        ({"reduction_factor": 1}, "reduction_factor"),
    ):  # Optuna's Hyperband takes these and fails only once a trial reports
        with pytest.raises(ConfigError, match=rf"pruner\.kwargs\.{culprit} must be"):
            make_pruner(
                from_mapping(
                    SearchConfig, {"pruner": {"name": "hyperband", "kwargs": kwargs}}
                ).pruner
            )
    # a value of the wrong type used to pass, and failed inside Optuna after the
    # startup trials (the sampler) or at the first report (the pruner)
    for sampler_kwargs, named in (
        (
            {"n_ei_candidates": "abc"},
            r"sampler\.kwargs\.n_ei_candidates must be int, but got 'abc'",
        ),
        ({"constant_liar": 1}, r"sampler\.kwargs\.constant_liar must be bool"),
    ):
        with pytest.raises(ConfigError, match=named):
            make_sampler(SamplerConfig(kwargs=sampler_kwargs), seed=0)
    assert make_sampler(SamplerConfig(kwargs={"n_ei_candidates": 3e1}), seed=0)  # 30.0: an int
    for kwargs, named in (
        ({"min_resource": "abc"}, r"pruner\.kwargs\.min_resource must be int"),
        ({"max_resource": "most"}, r"pruner\.kwargs\.max_resource must be a number or 'auto'"),
    ):
        with pytest.raises(ConfigError, match=named):
            make_pruner(PrunerConfig(name="hyperband", kwargs=kwargs))
    assert make_pruner(PrunerConfig(name="hyperband", kwargs={"max_resource": "auto"}))
    with pytest.raises(ConfigError, match=r"screen\.top_k"):
        from_mapping(SearchConfig, {"screen": {"size": 5, "top_k": 6}})
    # the pool leaves out the cells whose output is always zero: the authors' 6,466
    # classes would fail to draw only when the screen starts
    with pytest.raises(ConfigError, match=str(NUM_UNIQUE_NONZERO)):
        from_mapping(SearchConfig, {"screen": {"size": NUM_UNIQUE}})
    with pytest.raises(ConfigError, match=r"pick\.weights\.betaeff"):
        from_mapping(SearchConfig, {"pick": {"weights": {"betaeff": 1}}})
    with pytest.raises(ConfigError, match=r"objectives"):
        from_mapping(SearchConfig, {"objectives": ["beta_eff", "beta_eff"]})


def test_a_pruner_option_the_named_pruner_does_not_read_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from nasnc_search._samplers import _PRUNER_OPTIONS

    fields = {f.name for f in dataclasses.fields(PrunerConfig)} - {"name", "kwargs"}
    assert set(_PRUNER_OPTIONS) == fields  # every option says which pruners read it
    with caplog.at_level("WARNING", logger="nasnc_search"):
        make_pruner(PrunerConfig(name="median", percentile=40, n_warmup_steps=3))
        make_pruner(PrunerConfig(name="capacitance", percentile=40, n_warmup_steps=3))
        make_pruner(PrunerConfig(name="none"))
    (record,) = caplog.records
    assert record.getMessage() == "pruner 'median' ignores pruner.percentile=40"
    caplog.clear()
    with caplog.at_level("WARNING", logger="nasnc_search"):
        make_pruner(PrunerConfig(name="hyperband", n_startup_trials=2, use_uncertainty=True))
    assert "pruner.use_uncertainty=True, pruner.n_startup_trials=2" in caplog.text


def _trial(number: int, state: TrialState, arch: str, **attrs: object) -> optuna.trial.FrozenTrial:
    t = optuna.trial.create_trial(
        state=state,
        value=1.0 if state == TrialState.COMPLETE else None,
        params={},
        distributions={},
        user_attrs={"arch": arch, "canonical": arch, **attrs},
    )
    t.number = number
    return t


def test_pick_is_a_rank_aggregate_and_pruned_cells_stay_candidates() -> None:
    a, b, c = (str(x) for x in sample_archs(3, seed=1, unique=True))
    trials = [
        _trial(0, TrialState.COMPLETE, a, aggregate=-2.0, proxy_valid_acc=0.6),
        _trial(1, TrialState.PRUNED, b, aggregate=-0.5),  # pruned on βeff, best free aggregate
        _trial(2, TrialState.COMPLETE, c, aggregate=-1.0, proxy_valid_acc=0.4),
    ]
    free_only = PickConfig(weights={"aggregate": 1.0})
    chosen, by, _score = pick(trials, free_only)
    assert chosen is not None and chosen.number == 1 and by == "aggregate"
    # a pick that needs training cannot choose a pruned cell
    chosen, _by, _s = pick(trials, PickConfig(weights={"aggregate": 1.0, "proxy_valid_acc": 1.0}))
    assert chosen is not None and chosen.number in (0, 2)
    chosen, _by, _s = pick(trials, PickConfig(weights={"proxy_valid_acc": 1.0}))
    assert chosen is not None and chosen.number == 0
    # the trained W - W0 reading is a trial score like proxy accuracy: never from a pruned run
    trials[0].user_attrs[DW_SCORE] = 5.0
    trials[1].user_attrs[DW_SCORE] = 9.0  # partial run: not comparable
    trials[2].user_attrs[DW_SCORE] = 7.0
    chosen, by, _s = pick(trials, PickConfig(weights={DW_SCORE: 1.0}))
    assert chosen is not None and chosen.number == 2 and by == DW_SCORE
    # no trial has the weighted score: fall back to the objective, and say so
    bare = [
        _trial(0, TrialState.COMPLETE, a, beta_eff=1.0),
        _trial(1, TrialState.COMPLETE, c, beta_eff=3.0),
    ]
    chosen, by, _s = pick(bare, free_only)
    assert chosen is not None and chosen.number == 1 and by.startswith("beta_eff (no trial has")


def test_the_default_pick_weighs_the_aggregate_and_beta_eff_among_completed_cells() -> None:
    """The default (docs/capacitance-study.md, "Sample E"): neither score alone would
    choose trial 3, the second best by both; a pruned run's partial βeff never counts."""
    assert PickConfig().weights == {"aggregate": 1.0, "beta_eff": 1.0}
    a, b, c, d = (str(x) for x in sample_archs(4, seed=2, unique=True))
    trials = [
        _trial(0, TrialState.COMPLETE, a, aggregate=-2.0, beta_eff=65.0),
        _trial(1, TrialState.PRUNED, b, aggregate=-0.5, beta_eff=70.0),
        _trial(2, TrialState.COMPLETE, c, aggregate=-1.0, beta_eff=61.0),
        _trial(3, TrialState.COMPLETE, d, aggregate=-1.5, beta_eff=64.0),
    ]
    chosen, by, _s = pick(trials, PickConfig())
    assert chosen is not None and chosen.number == 3 and by == "aggregate + beta_eff"
    for alone, number in (("aggregate", 1), ("beta_eff", 0)):
        chosen, _by, _s = pick(trials, PickConfig(weights={alone: 1.0}))
        assert chosen is not None and chosen.number == number
    # a study without a screen has no aggregate: the default picks by βeff and says so
    unscreened = [
        _trial(t.number, t.state, t.user_attrs["arch"], beta_eff=t.user_attrs["beta_eff"])
        for t in trials
    ]
    chosen, by, _s = pick(unscreened, PickConfig())
    assert chosen is not None and chosen.number == 0 and by == "beta_eff (no trial has aggregate)"
    # a recorded None is an undefined βeff, not the trial's first objective value
    other = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        value=99.0,  # e.g. proxy_valid_acc as the objective
        params={},
        distributions={},
        user_attrs={"arch": a, "canonical": a, "beta_eff": None},
    )
    chosen, _by, _s = pick([other, *trials[2:]], PickConfig(weights={"beta_eff": 1.0}))
    assert chosen is not None and chosen.number == 3


def test_a_pruned_run_is_cached_flagged_and_never_served_as_a_hit(
    tmp_path: Path, tiny_data: ProxyData
) -> None:
    from nasnc.pipeline import evaluate_arch

    proxy = ProxyConfig(**TINY_PROXY)
    arch = str(sample_archs(1, seed=4, unique=True, exclude_zero=True)[0])
    store = Store(tmp_path / "cache")
    stopped = evaluate_arch(
        arch, proxy, tiny_data, device="cpu", store=store, on_report=lambda p: "stop"
    )
    assert stopped.stopped and not stopped.cache_hit
    partial = store.get(stopped.entry.key)
    assert partial is not None and partial.summary["pruned"] is True
    assert partial.n_points == 1  # the trajectory up to the pruning point
    full = evaluate_arch(arch, proxy, tiny_data, device="cpu", store=store)
    assert not full.cache_hit and full.entry.summary["pruned"] is False
    assert full.entry.n_points == 3
    stored = store.get(full.entry.key)
    assert stored is not None and stored.summary["pruned"] is False  # replaced by the full run
    assert evaluate_arch(arch, proxy, tiny_data, device="cpu", store=store).cache_hit


def test_trials_are_one_cell_when_they_build_one_network() -> None:
    """Pick, summary and ``trained`` count cells as the cache does (graph form): the
    benchmark's canonical form would merge two networks and split two twins."""
    doubled = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|"
    two = "|none~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|none~1|skip_connect~2|"
    twin_a = "|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"
    twin_b = "|none~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"

    def trial(number: int, arch: str, aggregate: float) -> optuna.trial.FrozenTrial:
        t = _trial(number, TrialState.COMPLETE, arch, aggregate=aggregate)
        t.user_attrs["canonical"] = Arch.from_str(arch).canonical()  # as the objective sets it
        return t

    trials = [trial(0, doubled, -2.0), trial(1, two, -0.5), trial(2, twin_a, -3.0)]
    trials.append(trial(3, twin_b, -4.0))
    assert trials[0].user_attrs["canonical"] == trials[1].user_attrs["canonical"]
    chosen, _by, _s = pick(trials, PickConfig(weights={"aggregate": 1.0}))
    assert chosen is not None and chosen.number == 1  # the other network is a candidate
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    assert trained_cells(study) == 3


def test_twins_in_a_pool_score_alike_and_shortlist_once(
    tmp_path: Path, tiny_data: ProxyData
) -> None:
    """Two cells with nodes 1 and 2 swapped (different canonical forms, so a pool can
    hold both) are one network: the same scores, cached or not, and one shortlist slot."""
    a = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
    b = "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    other = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_1x1~2|"
    proxy = ProxyConfig(**TINY_PROXY)
    fresh = screen_archs([a, b, other], proxy, tiny_data, names=SCORES[:3], device="cpu")
    for name in SCORES[:3]:
        assert fresh.scores[name][0] == fresh.scores[name][1], name
    assert fresh.cached == 1 and len(fresh.per_cell_s) == 2  # the twin is scored once
    assert fresh.twins == 1
    # apart, each scores its own network under one seed: the same values, bit for bit
    alone = screen_archs([b], proxy, tiny_data, names=SCORES[:3], device="cpu")
    assert all(alone.scores[n][0] == fresh.scores[n][0] for n in SCORES[:3])
    store = Store(tmp_path / "cache", durable=False)
    screen_archs([a, other], proxy, tiny_data, names=SCORES[:3], store=store, device="cpu")
    again = screen_archs([b], proxy, tiny_data, names=SCORES[:3], store=store, device="cpu")
    assert again.cached == 1 and again.scores["synflow"][0] == fresh.scores["synflow"][1]
    assert again.twins == 0  # served by the cache, not by a twin in its pool
    both = screen_archs([a, b], proxy, tiny_data, names=SCORES[:3], store=store, device="cpu")
    assert both.cached == 2 and both.scores["synflow"][1] == fresh.scores["synflow"][0]
    assert both.twins == 1
    config = ScreenConfig(size=3, top_k=2, scores=SCORES[:3])
    pool = ScreenPool.from_result(fresh, config)
    forms = [Arch.parse(x).graph_form() for x, _ in pool.shortlist(3)]
    assert len(forms) == len(set(forms)) == 2  # three cells, two networks
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(edge_params(b), user_attrs={"arch": b})  # already held, as its twin
    study.add_trial(optuna.trial.create_trial(value=0.0, user_attrs={"arch": "hand-made"}))
    enqueue_shortlist(study, pool, 3)  # a trial made by hand holds nothing, and stops nothing
    waiting = [t.user_attrs["arch"] for t in study.get_trials(states=(TrialState.WAITING,))]
    assert waiting == [b, other]
