"""End-to-end studies on a tiny proxy with real CIFAR-10 from ../shared/data."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nasnc import ConfigError
from nasnc.store import Store
from search._config import SearchConfig, apply_overrides
from search._study import (
    fail_stale_trials,
    open_study,
    run_search,
    summarize,
    threads_per_worker,
)
from search.cli import main

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
        "sampler": {"name": "random"},
        "pruner": {
            "name": "capacitance",
            "percentile": 60,
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
def test_study_prunes_caches_and_hits_the_cache(tmp_path: Path, cifar_root: Path) -> None:
    config = tiny_config(tmp_path, cifar_root)
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
        assert t.user_attrs["cache_hit"] is False or t.user_attrs["cache_hit"] is True
    stored = json.loads(json.dumps(study.user_attrs["proxy"]))
    assert stored["channels"] == 4

    # a second study with the same seed samples the same cells: completed ones come from the cache
    again = run_search(apply_overrides(config, {"study_name": "tiny-again"}))
    hits = [t for t in again.trials if t.user_attrs.get("cache_hit")]
    assert len(hits) >= 1
    for t in hits:
        assert t.user_attrs["cost_s"] is not None
    summary = summarize(again, config)
    assert summary.cache_hits == len(hits)
    assert summary.completed + summary.pruned + summary.failed == 8

    # rerunning a finished study resumes to n_trials: nothing new
    assert len(run_search(config).trials) == 8


def test_resuming_with_another_proxy_is_refused(tmp_path: Path, cifar_root: Path) -> None:
    config = tiny_config(tmp_path, cifar_root)
    open_study(config)
    with pytest.raises(ConfigError, match="epochs"):
        open_study(apply_overrides(config, {"proxy.epochs": 5.0}))


def test_stale_running_trials_are_failed(tmp_path: Path, cifar_root: Path) -> None:
    config = tiny_config(tmp_path, cifar_root, storage=f"journal:{tmp_path}/j.journal")
    study = open_study(config)
    trial = study.ask()
    trial.set_user_attr("heartbeat", 0.0)  # a worker that died long ago
    fresh = study.ask()
    import time

    fresh.set_user_attr("heartbeat", time.time())
    assert fail_stale_trials(study, grace=60) == 1
    states = {t.number: t.state for t in study.get_trials()}
    assert states[trial.number] == TrialState.FAIL
    assert states[fresh.number] == TrialState.RUNNING


@pytest.mark.slow
def test_two_workers_on_a_journal_file(tmp_path: Path, cifar_root: Path) -> None:
    config = tiny_config(
        tmp_path, cifar_root, storage=f"journal:{tmp_path}/study.journal", workers=2, n_trials=4
    )
    study = run_search(config)
    finished = [t for t in study.trials if t.state != TrialState.RUNNING]
    assert len(finished) >= 4
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    assert len(Store(config.cache).keys()) >= 1


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
def test_postgres_storage_with_two_workers(tmp_path: Path, cifar_root: Path) -> None:
    url = _postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL server answers on 127.0.0.1:5432")
    name = f"nasnc-test-{uuid.uuid4().hex[:8]}"
    config = tiny_config(tmp_path, cifar_root, storage=url, study_name=name, workers=2, n_trials=4)
    try:
        study = run_search(config)
        assert len([t for t in study.trials if t.state != TrialState.RUNNING]) >= 4
        # a second process joins the same study by name (load_if_exists)
        joined = open_study(config)
        assert joined.study_name == name
        assert len(joined.trials) == len(study.trials)
    finally:
        optuna.delete_study(study_name=name, storage=url)


@pytest.mark.slow
def test_cli_search_json(
    tmp_path: Path, cifar_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    cfg = tiny_config(tmp_path, cifar_root, n_trials=3).to_dict()
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path), "--format", "json", "--study", "cli-tiny"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"completed", "pruned", "failed", "cache_hits", "top"}
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
