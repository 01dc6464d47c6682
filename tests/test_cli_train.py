"""``nasnc train`` on a synthetic CIFAR-10: a thin command over ProxyConfig and evaluate_arch."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from nasnc import ConfigError
from nasnc.pipeline import ProxyConfig, load_proxy_data
from nasnc.space import EDGES, Arch
from nasnc.store import Store
from nasnc_search._config import SearchConfig
from nasnc_search._objective import Objective, param_name
from nasnc_search.cli import main
from nasnc_search.cli._train import _idle_cores, load_train_config

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
#: As tests/test_search.py's TINY_PROXY: 4 steps per epoch, 2 report points.
TINY_PROXY = {
    "dataset": "cifar10",
    "resolution": 8,
    "train_subset": 256,
    "valid_size": 128,
    "channels": 4,
    "cells_per_stage": 1,
    "probe": [16],
    "epochs": 2,
    "batch_size": 64,
    "reports_per_epoch": 1,
}
SEED = 3


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _flat_config(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "proxy.yaml"
    path.write_text(yaml.safe_dump({**TINY_PROXY, **changes}))
    return path


def _study_config(tmp_path: Path, data_root: Path) -> Path:
    path = tmp_path / "study.yaml"
    study = {
        "study_name": "tiny",
        "device": "cpu",
        "cache": str(tmp_path / "study-cache"),
        "data_root": str(data_root),
        "seed": SEED,
        "threads": 1,
        "proxy": TINY_PROXY,
    }
    path.write_text(yaml.safe_dump(study))
    return path


def _train_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["train", ARCH, "--format", "json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_same_beta_eff_in_train_evaluate_and_search(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same cell, proxy config and seed give the same βeff in all three commands."""
    study_file = _study_config(tmp_path, synthetic_root)
    trained = _train_json(["--config", str(study_file), "--no-cache"], capsys)

    archs = tmp_path / "archs.txt"
    archs.write_text(ARCH + "\n")
    argv = ["evaluate", str(archs), "--config", str(study_file), "--proxies", "none"]
    assert main([*argv, "--cache", str(tmp_path / "eval-cache"), "--format", "json"]) == 0
    (evaluated,) = json.loads(capsys.readouterr().out)
    assert evaluated["cache_hit"] is False

    proxy = ProxyConfig.from_mapping(TINY_PROXY)
    data = load_proxy_data(proxy, synthetic_root, device="cpu", seed=SEED)
    store = Store(tmp_path / "search-cache")
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    arch = Arch.parse(ARCH)
    study.enqueue_trial({param_name(t, s): op for (t, s), op in zip(EDGES, arch.ops)})
    study.optimize(Objective(proxy, data, store, seed=SEED, device="cpu"), n_trials=1)
    (trial,) = study.trials
    searched = store.get(trial.user_attrs["key"])
    assert searched is not None

    assert trained["key"] == evaluated["key"] == trial.user_attrs["key"]
    assert trained["steps"] == 8 and len(trained["trajectory"]["step"]) == 2
    assert trained["beta_eff"] == evaluated["beta_eff"] == trial.value
    assert trained["beta_eff_last"] == evaluated["beta_eff_last"]
    for column in ("beta_eff", "beta_eff_est", "beta_eff_est_std", "valid_acc"):
        assert trained["trajectory"][column] == searched.trajectory[column].tolist(), column


def test_train_uses_and_fills_the_cache(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = str(tmp_path / "cache")
    argv = ["--config", str(_flat_config(tmp_path)), "--data-root", str(synthetic_root)]
    argv += ["--device", "cpu", "--threads", "1", "--cache", cache]
    first = _train_json(argv, capsys)
    assert first["cache_hit"] is False and first["cache"] == cache
    assert Store(cache).get(first["key"]) is not None
    second = _train_json(argv, capsys)
    assert second["cache_hit"] is True and second["beta_eff"] == first["beta_eff"]
    assert second["trajectory"] == first["trajectory"]

    assert main(["train", ARCH, *argv]) == 0  # replayed: one line per report point, "cached"
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if line.startswith("step")]
    assert len(lines) == 2 and all(line.endswith("cached") for line in lines)
    assert out[-1].startswith("final: valid acc") and "(from the cache)" in out[-1]


def test_train_json_keys(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--config", str(_flat_config(tmp_path, interaction="product"))]
    argv += ["--data-root", str(synthetic_root), "--device", "cpu", "--threads", "1"]
    out = _train_json([*argv, "--no-cache", "--seed", "5", "--epochs", "1"], capsys)
    assert out["arch"] == ARCH and out["dataset"] == "cifar10" and out["seed"] == 5
    assert out["cache"] is None and out["cache_hit"] is False and out["threads"] == 1
    assert out["diverged"] is False and out["steps"] == 4 and out["seconds"] > 0
    assert out["config"]["probe"] == [16] and out["config"]["epochs"] == 1.0  # the flag wins
    assert out["config"]["interaction"] == "product" and out["config"]["device_type"] == "cpu"
    traj = out["trajectory"]
    assert {"step", "train_loss", "valid_acc", "beta_eff", "beta_eff_est"} <= set(traj)
    assert traj["beta_eff"] == traj["beta_eff_product_sf"]  # scale-free by default
    assert out["final_valid_acc"] == traj["valid_acc"][-1] and traj["step"] == [4]
    assert out["beta_eff"] == traj["beta_eff_est"][-1] and "tse" in out["scores"]


def test_table_prints_one_line_per_report_point(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", ARCH, "--config", str(_flat_config(tmp_path)), "--no-cache"]
    argv += ["--data-root", str(synthetic_root), "--threads", "1", "--set", "reports_per_epoch=2"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(ARCH) and "cache: none" in out[0]
    lines = [line for line in out if line.startswith("step")]
    assert len(lines) == 4 and lines[0].startswith("step 2/8") and "beta_eff" in lines[0]
    assert out[-1].startswith("final: valid acc")


def test_config_forms(tmp_path: Path, synthetic_root: Path) -> None:
    assert load_train_config(None) == SearchConfig()
    flat = load_train_config(_flat_config(tmp_path))
    assert flat.proxy == ProxyConfig.from_mapping(TINY_PROXY) and flat.seed == 0
    study = load_train_config(_study_config(tmp_path, synthetic_root))
    assert study.proxy == flat.proxy and study.seed == SEED and study.device == "cpu"
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")  # a truncated file, most likely: refused
    with pytest.raises(ConfigError, match=r"empty\.yaml is empty \(no keys\); write \{\}"):
        load_train_config(empty)
    empty.write_text("{}\n")
    assert load_train_config(empty) == SearchConfig()
    typo = tmp_path / "typo.yaml"
    for text, named in (
        ("proxi: {epochs: 1}\n", "'proxi'; did you mean the study key 'proxies' or 'proxy'?"),
        ("epochs: 1\nn_trails: 3\n", "'n_trails'; did you mean the study key 'n_trials'?"),
        ("epoch: 1\n", "'epoch'; did you mean 'epochs'?"),  # a proxy field's typo, as before
    ):  # a study key's typo was matched against the proxy fields only ('probe')
        typo.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(named)):
            load_train_config(typo)
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text("epochs: 1\nseed: 3\n")
    with pytest.raises(ConfigError, match="'epochs' is a proxy field: put it under proxy:"):
        load_train_config(mixed)


def test_config_mistakes_exit_2_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("epochs: 1\nlearning_rate: 0.1\n")
    assert main(["train", ARCH, "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "'learning_rate'" in err and "lr," in err and str(cfg) in err
    assert len(err.strip().splitlines()) == 1
    cfg.write_text("- just\n- a list\n")
    assert main(["train", ARCH, "--config", str(cfg)]) == 2
    assert "mapping" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(tmp_path / "missing.yaml")


def test_bad_values_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    no_data = ["--data-root", str(tmp_path / "no-data"), "--no-cache"]  # checked before any data
    assert main(["train", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", *no_data]) == 2
    assert "'conv'" in capsys.readouterr().err
    assert main(["train", ARCH, *no_data, "--set", "probe=16,x"]) == 2
    assert "probe" in capsys.readouterr().err
    assert main(["train", ARCH, *no_data, "--epochs", "0"]) == 2
    assert "epochs=0" in capsys.readouterr().err
    assert main(["train", ARCH, *no_data, "--set", "learning_rate=0.1"]) == 2
    assert "'learning_rate'" in capsys.readouterr().err
    assert main(["train", ARCH, *no_data, "--set", "lr"]) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err
    # read as nasnc search reads --set: an empty value or a key twice is refused
    assert main(["train", ARCH, *no_data, "--set", "epochs="]) == 2
    assert "'epochs=' has no value" in capsys.readouterr().err
    assert main(["train", ARCH, *no_data, "--set", "probe={a: 1, a: 2}"]) == 2
    assert "appears twice" in capsys.readouterr().err
    # --set reaches the fields that have their own flag too (a flag not given masked it)
    assert main(["train", ARCH, *no_data, "--set", "epochs=0"]) == 2
    assert "epochs=0" in capsys.readouterr().err
    assert main(["train", ARCH, *no_data, "--set", "dataset=cifar11"]) == 2
    assert "cifar11" in capsys.readouterr().err


def test_set_epochs_sets_the_budget_and_the_flag_wins_over_it(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", ARCH, "--config", str(_flat_config(tmp_path)), "--no-cache"]
    argv += ["--data-root", str(synthetic_root), "--threads", "1", "--set", "epochs=1"]
    assert main(argv) == 0
    steps = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step")]
    assert len(steps) == 1 and steps[0].startswith("step 4/4")  # 1 epoch, not the file's 2
    assert main([*argv, "--epochs", "2"]) == 0
    steps = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step")]
    assert len(steps) == 2 and steps[-1].startswith("step 8/8")


def test_missing_data_exits_1_naming_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", ARCH, "--data-root", str(tmp_path), "--no-cache", "--epochs", "1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "cifar-10-batches-py") in err and "--data-root" in err


def test_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.4, 0.0, 0.0))
    assert _idle_cores(16) == 5  # 8 cores, about 3 busy
    assert _idle_cores(2) == 2  # never more than asked
    monkeypatch.setattr(os, "getloadavg", lambda: (20.0, 0.0, 0.0))
    assert _idle_cores(16) == 1  # an overloaded machine still gets a thread

    def unavailable() -> tuple[float, float, float]:
        raise OSError("no load average here")

    monkeypatch.setattr(os, "getloadavg", unavailable)
    assert _idle_cores(6) == 6
