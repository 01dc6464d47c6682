"""End-to-end studies on a tiny proxy with a synthetic CIFAR-10 (conftest.synthetic_root)."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nasnc import ConfigError
from nasnc.space import Arch, sample_archs
from nasnc.store import Store
from nasnc_search._config import DW_SCORE, PROBE_DW_SCORE, SearchConfig, apply_overrides
from nasnc_search._objective import WORKER_ATTR, finite_or_none
from nasnc_search._storage import fail_stale_trials, make_storage, shown_url
from nasnc_search._study import n_finished, open_study, run_search, threads_per_worker
from nasnc_search._summary import summarize
from nasnc_search.cli import main

TINY_PROXY = {
    "dataset": "cifar10",
    "resolution": 8,
    "train_subset": 256,
    "valid_size": 128,
    "channels": 4,
    "cells_per_stage": 1,
    "probe": [16],
    "epochs": 3,
    "batch_size": 64,
    "reports_per_epoch": 1,
}


def tiny_config(tmp_path: Path, data_root: Path, **changes: object) -> SearchConfig:
    data = {
        "study_name": "tiny",
        "storage": f"sqlite:///{tmp_path}/study.db",
        "n_trials": 8,
        "device": "cpu",
        "cache": str(tmp_path / "cache"),
        "data_root": str(data_root),
        "seed": 0,
        "threads": 1,  # the suite's one torch thread (conftest); null would take every core
        "sampler": {"name": "random"},
        "pruner": {
            "name": "capacitance",
            "percentile": 40,  # keep the top 40 %
            "n_startup_trials": 2,
            "n_warmup_steps": 0,
        },
        "proxy": TINY_PROXY,
    }
    from nasnc._config import from_mapping

    config = from_mapping(SearchConfig, data)
    return apply_overrides(config, dict(changes))


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.slow
def test_study_prunes_caches_and_hits_the_cache(tmp_path: Path, synthetic_root: Path) -> None:
    config = tiny_config(tmp_path, synthetic_root)
    study = run_search(config)
    states = [t.state for t in study.trials]
    assert len(study.trials) == 8
    assert TrialState.PRUNED in states
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert completed
    store = Store(config.cache)
    keys = {t.user_attrs["key"] for t in completed}
    assert keys <= set(store.keys())
    for t in completed:
        assert t.user_attrs["arch"]
        assert t.value == pytest.approx(store.get(t.user_attrs["key"]).summary["beta_eff"])
        assert t.user_attrs["proxy_valid_acc"] is not None
        traj = store.get(t.user_attrs["key"]).trajectory
        assert t.user_attrs[DW_SCORE] == pytest.approx(traj[DW_SCORE][-1])  # last W - W0 reading
        assert t.user_attrs[PROBE_DW_SCORE] == pytest.approx(traj[PROBE_DW_SCORE][-1])
        assert t.user_attrs["cache_hit"] is False  # the first study trains everything
        # the pruner saw the latest reading at each report point, not the BRR estimate
        reported = [t.intermediate_values[i] for i in sorted(t.intermediate_values)]
        assert reported == pytest.approx(list(traj[config.proxy.variant]))
        assert reported != pytest.approx(list(traj["beta_eff_est"]))
    stored = json.loads(json.dumps(study.user_attrs["proxy"]))
    assert stored["channels"] == 4

    # a second study with the same seed samples the same cells: completed ones come from the cache
    again = run_search(apply_overrides(config, {"study_name": "tiny-again"}))
    cells = [t.user_attrs["canonical"] for t in again.trials]
    assert cells == [t.user_attrs["canonical"] for t in study.trials]  # the same draws
    done = {t.user_attrs["canonical"] for t in completed}
    hits = [t for t in again.trials if t.user_attrs.get("cache_hit")]
    # every completed cell is served from the cache; pruned runs never are
    assert {t.user_attrs["canonical"] for t in hits} == done
    assert all(t.user_attrs.get("cache_hit") for t in again.trials if cells[t.number] in done)
    for t in hits:
        assert t.user_attrs["cost_s"] is not None
    summary = summarize(again, config)
    assert summary.cache_hits == len(hits)
    assert summary.completed + summary.pruned + summary.failed == 8

    # rerunning a finished study resumes to n_trials: nothing new
    assert len(run_search(config).trials) == 8


def test_the_probes_weight_change_as_objective_is_what_the_pruner_sees(
    tmp_path: Path, synthetic_root: Path
) -> None:
    """With the probe's βeff of W - W0 as the objective, each trial's value is the
    column's last reading and the pruner is fed the column at every report point
    (not βeff of W), live and from the cache alike."""
    config = tiny_config(tmp_path, synthetic_root, n_trials=3, objectives=[PROBE_DW_SCORE])
    for study in (run_search(config), run_search(apply_overrides(config, {"study_name": "b"}))):
        store = Store(config.cache)
        finished = [t for t in study.trials if t.state != TrialState.FAIL]
        assert len(finished) == 3
        for t in finished:
            traj = store.get(t.user_attrs["key"]).trajectory
            reported = [t.intermediate_values[i] for i in sorted(t.intermediate_values)]
            assert reported == pytest.approx(list(traj[PROBE_DW_SCORE])[: len(reported)])
            assert reported != pytest.approx(list(traj[config.proxy.variant])[: len(reported)])
            if t.state == TrialState.COMPLETE:
                assert t.value == pytest.approx(traj[PROBE_DW_SCORE][-1])
    assert any(t.user_attrs["cache_hit"] for t in study.trials)  # the replay path was checked


def test_a_pruned_trial_names_the_objective_it_reported(
    tmp_path: Path, synthetic_root: Path
) -> None:
    from nasnc.pipeline import ProxyConfig, load_proxy_data
    from nasnc_search._objective import Objective
    from nasnc_search._stages import TrialStage

    proxy = ProxyConfig(**TINY_PROXY)
    objective = Objective(
        proxy,
        load_proxy_data(proxy, synthetic_root, device="cpu"),
        Store(tmp_path / "cache"),
        device="cpu",
        stage=TrialStage(("proxy_valid_acc",)),
    )
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path}/pruned.db",
        direction="maximize",
        pruner=optuna.pruners.ThresholdPruner(lower=float("inf")),  # prunes every report
    )
    with pytest.raises(optuna.TrialPruned, match=r"^proxy_valid_acc low at report 0$"):
        objective(study.ask())


def test_a_user_attribute_holds_finite_floats_and_none_for_the_rest() -> None:
    import numpy as np

    assert finite_or_none(np.float32(2.5)) == 2.5 and type(finite_or_none(np.float32(2.5))) is float
    assert finite_or_none(0.0) == 0.0  # a zero is a value, not a missing one
    for bad in (float("nan"), float("inf"), -float("inf"), None, "n/a", [1.0]):
        assert finite_or_none(bad) is None, bad


def test_resuming_with_another_proxy_is_refused(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, tmp_path / "no-data")
    open_study(config)
    with pytest.raises(ConfigError, match="epochs"):
        open_study(apply_overrides(config, {"proxy.epochs": 5.0}))


def test_resuming_with_another_screen_is_refused_naming_the_keys(tmp_path: Path) -> None:
    # the screen's pool and scores give every trial its aggregate: two screens' trials
    # would be ranked together by the pick
    config = tiny_config(tmp_path, tmp_path / "no-data", **{"screen.size": 4, "screen.top_k": 2})
    open_study(config)
    changed = apply_overrides(config, {"screen.size": 6, "screen.scores": ["synflow"]})
    with pytest.raises(ConfigError, match=r"differs in: screen\.scores, screen\.size"):
        open_study(changed)
    open_study(apply_overrides(config, {"n_trials": 9}))  # the trial count may change


def test_a_device_this_machine_lacks_leaves_no_study_behind(tmp_path: Path) -> None:
    config = apply_overrides(tiny_config(tmp_path, tmp_path / "no-data"), {"device": "cuda:99"})
    with pytest.raises(ConfigError, match=r"CUDA is not available|CUDA device"):
        open_study(config)
    assert not Path(config.storage_url[len("sqlite:///") :]).exists()


def test_resuming_on_another_device_or_precision_is_refused(tmp_path: Path) -> None:
    config = apply_overrides(tiny_config(tmp_path, tmp_path / "no-data"), {"device": "cpu"})
    study = open_study(config)
    assert study.user_attrs["device"] == "cpu float32"
    study.set_user_attr("device", "cuda bfloat16")  # as a study begun on an A100 records it
    with pytest.raises(
        ConfigError, match=r"differs in: device \(cuda bfloat16 in the study, cpu float32 here\)"
    ):
        open_study(config)
    study.set_user_attr("device", "cpu float32")
    open_study(config)


def test_a_finished_study_is_read_where_its_device_is_missing(tmp_path: Path) -> None:
    # a GPU study's summary on a laptop: nothing to run, so nothing needs the GPU
    config = apply_overrides(tiny_config(tmp_path, tmp_path / "no-data"), {"n_trials": 1})
    study = open_study(config)
    study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"arch": "nb201:310402"}))
    elsewhere = apply_overrides(config, {"device": "cuda:99"})
    assert open_study(elsewhere).study_name == study.study_name
    assert run_search(elsewhere).study_name == study.study_name  # nothing to run: no error
    more = apply_overrides(elsewhere, {"n_trials": 2})
    with pytest.raises(ConfigError, match=r"CUDA is not available|CUDA device"):
        run_search(more)  # a run would need the device: it stops before training


def test_a_benchmark_dataset_without_validation_accuracy_is_refused(tmp_path: Path) -> None:
    # every trial's true_acc was None, and the summary failed only at the end
    config = tiny_config(tmp_path, tmp_path / "no-data")
    with pytest.raises(
        ConfigError, match=r"benchmark_dataset='cifar10'.*use dataset 'cifar10-valid'"
    ):
        apply_overrides(config, {"benchmark_dataset": "cifar10"})
    apply_overrides(config, {"benchmark_dataset": "cifar100"})  # has validation accuracy


def test_a_bad_sampler_kwarg_leaves_no_study_behind(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, tmp_path / "no-data")
    bad = apply_overrides(config, {"sampler.kwargs": {"bogus": 1}})
    with pytest.raises(ConfigError, match=r"sampler\.kwargs\.bogus"):
        open_study(bad)
    storage = make_storage(config.storage_url)
    assert [s.study_name for s in storage.get_all_studies()] == []


def test_stale_running_trials_are_failed(tmp_path: Path) -> None:
    import time

    config = tiny_config(tmp_path, tmp_path / "no-data", storage=f"journal:{tmp_path}/j.journal")
    study = open_study(config)
    trial = study.ask()
    trial.set_user_attr("heartbeat", 0.0)  # a worker that died long ago
    fresh = study.ask()
    fresh.set_user_attr("heartbeat", time.time())
    storage = make_storage(config.storage_url)
    assert fail_stale_trials(storage, config.study_name, grace=60) == 1
    trials = {t.number: t for t in study.get_trials()}
    assert trials[trial.number].state == TrialState.FAIL
    assert trials[trial.number].user_attrs["fail_reason"].startswith("stale:")
    assert trials[fresh.number].state == TrialState.RUNNING
    assert n_finished(study) == 0  # a killed worker's trial does not use up n_trials


@pytest.mark.parametrize(("kind", "swept"), [("journal", True), ("sqlite", False)])
def test_the_heartbeat_sweep_runs_only_on_journal_storages(
    tmp_path: Path, kind: str, swept: bool
) -> None:
    """RDB storages have Optuna's own heartbeat: nasnc's sweep must leave them alone.

    The study is already at ``n_trials``, so the run only opens it and sweeps.
    """
    url = {"journal": f"journal:{tmp_path}/j.journal", "sqlite": f"sqlite:///{tmp_path}/s.db"}
    config = tiny_config(tmp_path, tmp_path / "no-data", storage=url[kind], n_trials=1)
    study = open_study(config)
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=1.0))
    stale = study.ask()
    stale.set_user_attr("heartbeat", 0.0)
    run_search(config)
    state = {t.number: t.state for t in open_study(config).get_trials()}[stale.number]
    assert state == (TrialState.FAIL if swept else TrialState.RUNNING)


def test_only_verdicts_on_a_cell_count_toward_n_trials() -> None:
    from optuna.trial import create_trial

    from nasnc_search._study import counts_toward_n_trials

    def failed(**attrs: str) -> optuna.trial.FrozenTrial:
        return create_trial(state=TrialState.FAIL, user_attrs=attrs)

    assert counts_toward_n_trials(create_trial(state=TrialState.COMPLETE, value=1.0))
    assert counts_toward_n_trials(create_trial(state=TrialState.PRUNED))
    assert counts_toward_n_trials(failed(fail_reason="training diverged (non-finite loss)"))
    assert not counts_toward_n_trials(failed(fail_reason="interrupted"))
    assert not counts_toward_n_trials(failed(fail_reason="stale: no heartbeat for 400 s"))
    assert not counts_toward_n_trials(failed())  # failed by Optuna on an exception
    assert not counts_toward_n_trials(create_trial(state=TrialState.WAITING))


def test_the_progress_bar_counts_what_n_trials_counts(tmp_path: Path) -> None:
    """An interrupted or stale failure is run again to reach n_trials: the bar must not
    count it as done (it counted every FAIL)."""
    from optuna.trial import create_trial

    from nasnc_search.cli._search import trial_progress

    study = open_study(tiny_config(tmp_path, tmp_path / "no-data"))
    for state, value, reason in [
        (TrialState.COMPLETE, 2.0, None),
        (TrialState.PRUNED, None, None),
        (TrialState.FAIL, None, "training diverged (non-finite loss)"),
        (TrialState.FAIL, None, "interrupted"),
        (TrialState.FAIL, None, "stale: no heartbeat for 400 s"),
    ]:
        attrs = {} if reason is None else {"fail_reason": reason}
        study.add_trial(create_trial(state=state, value=value, user_attrs=attrs))
    done, postfix = trial_progress(study.get_trials(deepcopy=False), ["beta_eff"])
    assert done == n_finished(study) == 3
    assert postfix == {"pruned": 1, "failed": 3, "best beta_eff": "2"}


@pytest.mark.parametrize("recorded", [True, False])
def test_a_cost_objective_ranks_and_picks_its_smallest_first(
    tmp_path: Path, recorded: bool
) -> None:
    from optuna.trial import create_trial

    from nasnc_search.cli._search import trial_progress

    config = tiny_config(tmp_path, tmp_path / "no-data", objectives=["params"])
    study = open_study(config)
    archs = [str(a) for a in sample_archs(3, seed=1, unique=True)]
    for arch, params in zip(archs, [3.0e5, 1.0e5, 2.0e5], strict=True):
        attrs = {"arch": arch, "canonical": Arch.parse(arch).canonical(), "beta_eff": None}
        if recorded:  # a trial records its cost objective, as a free score
            attrs["params"] = params  # else (made by hand) its first value is the objective
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=params, user_attrs=attrs))
    out = summarize(study, config)
    assert [row["arch"] for row in out.top] == [archs[1], archs[2], archs[0]]
    # no trial has the pick's scores (no screen, βeff undefined): it falls back to the cost
    assert out.best_found is not None and out.best_found["arch"] == archs[1]
    assert out.best_found["by"].startswith("params (no trial has")
    _done, postfix = trial_progress(study.get_trials(deepcopy=False), ["params"])
    assert postfix["best params"] == "1e+05"


@pytest.mark.slow
def test_two_workers_on_a_journal_file(tmp_path: Path, synthetic_root: Path) -> None:
    config = tiny_config(
        tmp_path, synthetic_root, storage=f"journal:{tmp_path}/study.journal", workers=2, n_trials=4
    )
    study = run_search(config)
    assert len(study.trials) >= 4  # both may be mid-trial when the 4th finishes
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    # each process tags its trials: both workers took some
    assert len({t.user_attrs[WORKER_ATTR] for t in study.trials}) == 2
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert completed
    assert {t.user_attrs["key"] for t in completed} <= set(Store(config.cache).keys())


@pytest.mark.slow
def test_a_killed_worker_does_not_throw_away_a_finished_study(
    tmp_path: Path, synthetic_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import multiprocessing
    import os
    import signal

    config = tiny_config(
        tmp_path, synthetic_root, storage=f"journal:{tmp_path}/study.journal", workers=2, n_trials=4
    )
    killed: list[int] = []

    def kill_worker_1(study: optuna.Study) -> None:  # the parent's progress, about once a second
        for p in multiprocessing.active_children():
            if p.name == "nasnc-worker-1" and not killed and p.pid is not None:
                os.kill(p.pid, signal.SIGKILL)  # an OOM kill, say
                killed.append(p.pid)

    with caplog.at_level("WARNING", logger="nasnc_search"):
        study = run_search(config, progress=kill_worker_1)
    assert killed
    assert n_finished(study) >= 4  # the other worker finished the study
    assert "nasnc-worker-1 exit status -9" in caplog.text


def test_optunas_heartbeat_sweep_runs_on_a_rerun_of_a_full_study(
    tmp_path: Path, synthetic_root: Path
) -> None:
    # Optuna sweeps an RDB study when a trial starts; a study already at n_trials
    # starts none, so a dead process's trial stayed RUNNING for good
    config = tiny_config(
        tmp_path, synthetic_root, n_trials=1, heartbeat_interval=1, heartbeat_grace=2
    )
    study = open_study(config)
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=1.0))
    dead = study.ask()  # a process killed mid-trial: its last heartbeat, then nothing
    storage = make_storage(
        config.storage_url,
        heartbeat_interval=config.heartbeat_interval,
        grace=config.heartbeat_grace,
    )
    study_id = storage.get_study_id_from_name(config.study_name)
    storage.record_heartbeat(  # type: ignore[attr-defined]  # RDBStorage's BaseHeartbeat
        storage.get_trial_id_from_study_id_trial_number(study_id, dead.number)
    )
    time.sleep(3.6)  # SQLite keeps heartbeats in whole seconds; stale means > grace
    run_search(config)  # the study is full: nothing trains, the sweep still runs
    (stale,) = [t for t in study.get_trials() if t.number == dead.number]
    assert stale.state == TrialState.FAIL
    assert n_finished(study) == 1  # and it does not count


def test_a_worker_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    mark = tmp_path / "stopped"
    worker = textwrap.dedent(
        f"""
        import os, signal, sys, time
        from nasnc_search._study import _stop_with_parent
        def stop(*_):
            open({str(mark) + ".part"!r}, "w").write("SIGTERM")
            os.replace({str(mark) + ".part"!r}, {str(mark)!r})
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        _stop_with_parent(os.getppid(), every_s=0.05)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    parent = textwrap.dedent(
        f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", {worker!r}], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        print(p.pid, flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        orphan = int(proc.stdout.readline())
        assert not mark.exists()  # the parent lives: the worker works on
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not mark.exists():
            time.sleep(0.05)
        assert mark.exists() and mark.read_text() == "SIGTERM"
    finally:
        proc.kill()
        proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan, signal.SIGKILL)


def _postgres_url() -> str | None:
    try:
        import psycopg
    except ImportError:
        return None
    try:
        with psycopg.connect(
            "host=127.0.0.1 port=5432 dbname=test user=postgres", connect_timeout=3
        ):
            pass
    except Exception:
        try:
            with psycopg.connect("host=127.0.0.1 port=5432 dbname=test", connect_timeout=3):
                return "postgresql+psycopg://127.0.0.1:5432/test"
        except Exception:
            return None
    return "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_storage_with_two_workers(tmp_path: Path, synthetic_root: Path) -> None:
    url = _postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL server answers on 127.0.0.1:5432")
    name = f"nasnc-test-{uuid.uuid4().hex[:8]}"
    config = tiny_config(
        tmp_path, synthetic_root, storage=url, study_name=name, workers=2, n_trials=4
    )
    try:
        study = run_search(config)
        assert len(study.trials) >= 4 and TrialState.RUNNING not in [t.state for t in study.trials]
        assert len({t.user_attrs[WORKER_ATTR] for t in study.trials}) == 2  # both workers ran
        # a second process joins the same study by name (load_if_exists)
        joined = open_study(config)
        assert joined.study_name == name
        assert len(joined.trials) == len(study.trials)
    finally:
        optuna.delete_study(study_name=name, storage=url)


SECRET = "hunter2"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql+psycopg://bob:{SECRET}@db:5432/nas",
            "postgresql+psycopg://bob:***@db:5432/nas",
        ),
        (
            f"postgresql://bob:{SECRET}@db/nas?sslmode=require",
            "postgresql://bob:***@db/nas?sslmode=require",
        ),
        (
            f"postgresql+psycopg://bob:{SECRET}@db:port/nas",
            "postgresql+psycopg://bob:***@db:port/nas",
        ),
        ("postgresql+psycopg://bob@db/nas", "postgresql+psycopg://bob@db/nas"),
        ("sqlite:///runs/a study.db", "sqlite:///runs/a study.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("journal:runs/user:x@y.journal", "journal:runs/user:x@y.journal"),
    ],
)
def test_a_storage_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown


@pytest.mark.parametrize("port", ["1", "port"])  # nothing listens; not a number
def test_a_storage_that_cannot_be_opened_is_named_without_its_password(port: str) -> None:
    from nasnc import NasncError

    url = f"postgresql+psycopg://bob:{SECRET}@127.0.0.1:{port}/nas"
    with pytest.raises(NasncError) as err:
        make_storage(url)
    assert SECRET not in str(err.value)
    assert f"bob:***@127.0.0.1:{port}/nas" in str(err.value)


@pytest.mark.parametrize("scheme", ["journal:", "sqlite:///"])
def test_a_local_storage_under_a_file_is_an_error_naming_it(tmp_path: Path, scheme: str) -> None:
    from nasnc import NasncError

    blocker = tmp_path / "results"
    blocker.write_text("a file where the storage's folder should be")
    url = f"{scheme}{blocker / 'study.db'}"
    with pytest.raises(NasncError, match=rf"cannot open storage '{url}'.*{blocker}"):
        make_storage(url)
    assert blocker.read_text().startswith("a file")  # left as it was


def test_the_summary_shows_the_storage_without_its_password(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, tmp_path / "no-data")
    study = open_study(config)  # summarize shows the config's URL; it never connects
    shown = summarize(study, apply_overrides(config, {"storage": f"postgresql://u:{SECRET}@h/d"}))
    assert shown.to_dict()["storage"] == "postgresql://u:***@h/d"


def _postgres_url_with_password() -> str | None:
    """The test server's URL with a password (the server trusts 127.0.0.1: it asks none)."""
    url = _postgres_url()
    if url is None or "@" not in url:
        return None
    return url.replace("@", f":{SECRET}@", 1)


@pytest.mark.postgres
def test_a_postgres_password_is_used_but_never_shown_or_stored(
    tmp_path: Path, builtin: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    from nasnc.space import sample_archs

    url = _postgres_url_with_password()
    if url is None:
        pytest.skip("no PostgreSQL server with a user answers on 127.0.0.1:5432")
    name = f"nasnc-test-{uuid.uuid4().hex[:8]}"
    config = tiny_config(tmp_path, tmp_path / "no-data", storage=url, study_name=name)
    study = open_study(config)  # the real URL connects
    try:
        assert study.user_attrs["config"]["storage"] == shown_url(url) != url
        assert summarize(study, config).storage == shown_url(url)
        with pytest.raises(ConfigError) as err:
            open_study(apply_overrides(config, {"proxy.epochs": 5.0}))
        assert SECRET not in str(err.value) and shown_url(url) in str(err.value)

        assert main(["report", "--storage", url, "--study", name + "-x"]) == 2
        assert main(["report", "--storage", url, "--study", name]) == 1  # no cells yet
        err_text = capsys.readouterr().err
        assert SECRET not in err_text and err_text.count(shown_url(url)) == 2
        arch = sample_archs(1, seed=5, unique=True, exclude_zero=True)[0]
        study.add_trial(
            create_trial(
                value=1.0,
                params={"x": "a"},
                distributions={"x": CategoricalDistribution(["a"])},
                user_attrs={"arch": str(arch), "canonical": arch.canonical(), "cost_s": 3.0},
            )
        )
        assert main(["report", "--storage", url, "--study", name, "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["storage"] == shown_url(url)
        assert main(["report", "--storage", url, "--study", name]) == 0
        out = capsys.readouterr().out
        assert SECRET not in out and shown_url(url) in out
    finally:
        optuna.delete_study(study_name=name, storage=url)


@pytest.mark.slow
def test_cli_search_json(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    cfg = tiny_config(tmp_path, synthetic_root, n_trials=3).to_dict()
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path), "--format", "json", "--study", "cli-tiny"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"completed", "pruned", "failed", "cache_hits", "top"}
    assert set(out) >= {"screened", "trained", "best_found", "regret"}
    assert out["screened"] == 0 and out["trained"] >= 1
    assert set(out["best_found"]) >= {"arch", "score", "true_acc"}
    assert out["completed"] + out["pruned"] + out["failed"] == 3
    for row in out["top"]:
        assert set(row) >= {"arch", "beta_eff", "beta_eff_std"}
    # a bad override is a usage error naming the key
    assert main(["search", str(path), "--workers", "0"]) == 2
    assert "workers" in capsys.readouterr().err


def test_cli_search_missing_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("workers", "cores", "threads"), [(1, 2, 2), (2, 2, 1), (4, 2, 1), (3, 16, 5)]
)
def test_cores_are_divided_between_workers(workers: int, cores: int, threads: int) -> None:
    assert threads_per_worker(workers, cores) == threads
    assert threads_per_worker(workers, cores) * workers <= max(cores, workers)


def test_one_worker_runs_on_the_resolved_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``threads: null`` means cores // workers in the single-worker path too (it set none)."""
    import dataclasses

    import torch

    from nasnc_search import _study

    config = tiny_config(tmp_path, tmp_path / "no-data", n_trials=1)
    config = dataclasses.replace(config, threads=None)
    open_study(config).add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=1.0))
    monkeypatch.setattr(_study, "usable_cores", lambda: 3)
    before = torch.get_num_threads()
    try:
        run_search(config)  # already at n_trials: it opens the study and sets the threads
        assert torch.get_num_threads() == threads_per_worker(1, 3) == 3
    finally:
        torch.set_num_threads(before)


def test_summary_with_ground_truth_and_regret(tmp_path: Path) -> None:
    from nasnc.bench import open_benchmark

    config = tiny_config(tmp_path, tmp_path / "no-data", benchmark="builtin")
    study = open_study(config)
    truth = open_benchmark("builtin")
    cells = {
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|": 5.0,
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|": 9.0,
    }
    for arch, value in cells.items():
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE,
                value=value,
                params={},
                distributions={},
                user_attrs={"arch": arch, "canonical": arch, "beta_eff_std": 0.1},
            )
        )
    summary = summarize(study, config, truth=truth)
    acc = {a: truth.get(a, "cifar10-valid", "valid") for a in cells}
    _best_arch, best = truth.best("cifar10-valid", "valid")
    conv, skip = list(cells)
    assert [row["arch"] for row in summary.top] == [skip, conv]  # ranked by beta_eff
    assert summary.top[0]["true_acc"] == pytest.approx(acc[skip])
    assert summary.top1_regret == pytest.approx(best - acc[skip])
    assert summary.best_trained_regret == pytest.approx(best - max(acc.values()))
    assert summary.best_trained == pytest.approx(acc[conv])
    # no screen, so no aggregate: the pick falls back to beta_eff and says so
    assert summary.best_found is not None and summary.best_found["arch"] == skip
    assert summary.best_found["by"].startswith("beta_eff")
    assert summary.best_found["true_acc"] == pytest.approx(acc[skip])
    assert summary.regret == pytest.approx(best - acc[skip])

    broken = summarize(study, apply_overrides(config, {"benchmark": str(tmp_path / "no.pth")}))
    assert broken.benchmark_error and "no.pth" in broken.benchmark_error
    assert broken.completed == 2 and len(broken.top) == 2


def test_bad_proxy_and_benchmark_dataset_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'synflo'"):
        tiny_config(tmp_path, tmp_path / "no-data", proxies=["synflo"])
    with pytest.raises(ConfigError, match="cifar-10"):
        tiny_config(tmp_path, tmp_path / "no-data", benchmark_dataset="cifar-10")


def test_sampler_seeds_differ_on_resume_and_between_workers(tmp_path: Path) -> None:
    from nasnc_search._study import _sampler_seed

    config = tiny_config(tmp_path, tmp_path / "no-data")
    study = open_study(config)
    fresh = _sampler_seed(config, study, 0)
    assert fresh == _sampler_seed(config, study, 0)  # reproducible fresh study
    assert fresh != _sampler_seed(config, study, 1)
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, params={}, distributions={}))
    assert fresh != _sampler_seed(config, study, 0)  # a resumption draws new cells


def test_diverged_cache_hit_is_a_failed_trial(tmp_path: Path, synthetic_root: Path) -> None:
    config = tiny_config(tmp_path, synthetic_root, n_trials=2, **{"proxy.lr": 1e8})
    config = apply_overrides(config, {"pruner.n_startup_trials": 0})
    first = run_search(config)
    assert {t.state for t in first.trials} == {TrialState.FAIL}
    assert all("diverged" in t.user_attrs["fail_reason"] for t in first.trials)
    again = run_search(apply_overrides(config, {"study_name": "tiny-diverged-again"}))
    hits = [t for t in again.trials if t.user_attrs.get("cache_hit")]
    assert hits
    assert all(
        t.state == TrialState.FAIL and "diverged" in t.user_attrs["fail_reason"] for t in hits
    )


@pytest.mark.slow
@pytest.mark.parametrize(("signame", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_keeps_finished_trials_and_a_rerun_completes_n_trials(
    tmp_path: Path, synthetic_root: Path, signame: str, status: int
) -> None:
    import signal
    import subprocess
    import sys
    import time

    import yaml

    config = tiny_config(tmp_path, synthetic_root, n_trials=50, threads=1)
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "nasnc_search.cli._main", "search", str(path), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        finished = 0
        while time.monotonic() < deadline and finished < 2:
            time.sleep(0.5)
            try:
                study = optuna.load_study(study_name="tiny", storage=config.storage_url)
            except KeyError:  # not created yet
                continue
            finished = sum(t.state == TrialState.COMPLETE for t in study.get_trials())
        assert finished >= 2, "no trial finished in time"
        proc.send_signal(getattr(signal, signame))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, err
    assert "interrupted" in err and "resume" in err
    assert "Traceback" not in err  # a stop the user asked for is not an error to debug
    assert "completed" in out  # the summary is still printed
    study = optuna.load_study(study_name="tiny", storage=config.storage_url)
    trials = study.get_trials()
    assert TrialState.RUNNING not in [t.state for t in trials]
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 2
    # the trial in flight, if any, says why it failed
    assert all(
        t.user_attrs.get("fail_reason") == "interrupted"
        for t in trials
        if t.state == TrialState.FAIL
    )
    counted = n_finished(study)  # the trial in flight, failed, does not count
    resumed = run_search(apply_overrides(config, {"n_trials": counted + 1}))
    assert n_finished(resumed) == counted + 1


def test_a_signal_during_a_trials_storage_write_waits_for_a_safe_point(
    tmp_path: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C landing inside a database write of the objective (here: the user
    attribute written after training) must not raise there: a write cut in the
    middle left the session unusable, Optuna's tell failed, and its "Should not
    reach" replaced the interruption (flaky in the signal test, 1 run in ~8)."""
    import os
    import signal

    config = tiny_config(tmp_path, synthetic_root, n_trials=3)
    write = optuna.trial.Trial.set_user_attr
    sent = []

    def interrupted_write(self: optuna.trial.Trial, key: str, value: object) -> None:
        if key == "key" and not sent:  # the first write after the first cell trained
            sent.append(self.number)
            os.kill(os.getpid(), signal.SIGINT)
        write(self, key, value)

    monkeypatch.setattr(optuna.trial.Trial, "set_user_attr", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        run_search(config)
    study = open_study(config)
    (trial,) = study.get_trials()
    assert trial.number == sent[0] and trial.state == TrialState.COMPLETE  # kept whole
    assert trial.user_attrs["key"] and "beta_eff" in trial.user_attrs


def test_a_signal_in_optunas_bookkeeping_waits_for_the_objective() -> None:
    """Inside deferred() a signal is recorded, not raised; interruptible() raises it on entry."""
    import os
    import signal

    from nasnc_search._signals import Interrupted, deferred, interruptible, stop_on_signals

    with stop_on_signals():
        with deferred():
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. while Optuna tells a result
            time.sleep(0.05)  # the handler has run by now, and raised nothing
            with pytest.raises(Interrupted) as got, interruptible():
                pass  # the objective of the next trial
        assert got.value.exit_status == 128 + signal.SIGTERM

    def kill_and_wait() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # inside the objective: raised at once
        time.sleep(1.0)

    with stop_on_signals(), interruptible(), pytest.raises(Interrupted):
        kill_and_wait()


def test_optuna_logs_an_interrupted_trial_in_one_line_without_its_traceback() -> None:
    import logging
    import signal

    from nasnc_search._signals import Interrupted, quiet_interrupts

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            self.format(record)  # what a stream handler does: renders exc_info
            records.append(record)

    logger = logging.getLogger("optuna")
    keep = Keep()
    logger.addHandler(keep)
    try:
        quiet_interrupts()
        quiet_interrupts()  # idempotent
        assert sum(type(f).__name__ == "_NoInterruptTraceback" for f in keep.filters) == 1

        def stopped(trial: optuna.Trial) -> float:
            raise Interrupted(signal.SIGINT)

        def broken(trial: optuna.Trial) -> float:
            raise ValueError("a real bug")

        study = optuna.create_study()
        with pytest.raises(Interrupted):
            study.optimize(stopped, n_trials=1)
        study.optimize(broken, n_trials=1, catch=(ValueError,))
    finally:
        logger.removeHandler(keep)
    failed = [r for r in records if "because of the following error" in r.getMessage()]
    assert len(failed) == 2
    assert "SIGINT" in failed[0].getMessage() and failed[0].exc_info is None
    assert failed[0].exc_text is None
    assert failed[1].exc_info is not None  # any other failure keeps its traceback


def test_an_interruption_raised_in_a_finalizer_prints_no_traceback() -> None:
    import signal
    import sys

    from nasnc_search._signals import Interrupted, stop_on_signals

    seen: list[BaseException | None] = []
    before = sys.unraisablehook
    sys.unraisablehook = lambda u: seen.append(u.exc_value)

    class Finalised:
        def __init__(self, exc: BaseException) -> None:
            self.exc = exc

        def __del__(self) -> None:  # e.g. a database connection collected mid-signal
            raise self.exc

    try:
        with stop_on_signals():
            Finalised(Interrupted(signal.SIGINT))  # dropped at once: raised again later
            bug = ValueError("a real bug in a finalizer")
            Finalised(bug)
        assert seen == [bug]  # everything else still reaches the previous hook
    finally:
        sys.unraisablehook = before
