"""``nasnc train`` end to end on a synthetic CIFAR-10 (tiny budgets)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nasnc import ConfigError
from search.cli import main
from search.cli._train import TRAIN_DEFAULTS, _idle_cores, resolve_train_options

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TINY = [
    "--subset",
    "256",
    "--valid-size",
    "64",
    "--resolution",
    "8",
    "--channels",
    "4",
    "--probe",
    "16,8",
    "--batch-size",
    "64",
    "--threads",
    "1",
]


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_train_json(synthetic_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "train",
        ARCH,
        "--data-root",
        str(synthetic_root),
        "--epochs",
        "1",
        *TINY,
        "--format",
        "json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["arch"] == ARCH and out["dataset"] == "cifar10"
    assert out["diverged"] is False and out["steps"] == 4 and out["seconds"] > 0
    traj = out["trajectory"]
    assert {"step", "epoch", "train_loss", "train_acc", "valid_acc", "wall_s", "beta_eff"} <= set(
        traj
    )
    assert len({len(v) for v in traj.values()}) == 1 and traj["step"][-1] == 4
    assert 0 <= out["final_valid_acc"] <= 1 and out["final_valid_acc"] == traj["valid_acc"][-1]
    assert out["beta_eff_per_step"]["step"] == [1, 2, 3, 4]
    assert out["config"]["probe"] == [16, 8] and out["config"]["channels"] == 4


def test_train_table_prints_report_lines(
    synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "train",
        ARCH,
        "--data-root",
        str(synthetic_root),
        "--steps",
        "4",
        "--report-every",
        "2",
        *TINY,
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if line.startswith("step")]
    assert len(lines) == 2 and "beta_eff" in lines[0] and "valid" in lines[0]
    assert lines[0].startswith("step 2/4") and out[-1].startswith("final: valid acc")


def test_config_file_and_flags(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text(
        f"data_root: {synthetic_root}\nsteps: 2\nsubset: 128\nvalid-size: 32\nresolution: 8\n"
        "channels: 4\nprobe: [16, 8]\nbatch_size: 64\ninteraction: product\nthreads: 1\nseed: 3\n"
        "augment: false\n"
    )
    assert main(["train", ARCH, "--config", str(cfg), "--seed", "5", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 2 and out["config"]["seed"] == 5  # the flag wins over the file
    assert out["config"]["interaction"] == "product" and out["config"]["valid_size"] == 32
    assert out["config"]["augment"] is False
    traj = out["trajectory"]
    assert traj["beta_eff"] == traj["beta_eff_product_sf"]  # scale-free by default


def test_unknown_config_key_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("epochs: 1\nlearning_rate: 0.1\n")
    assert main(["train", ARCH, "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "'learning_rate'" in err and str(cfg) in err and len(err.strip().splitlines()) == 1
    cfg.write_text("- just\n- a list\n")
    assert main(["train", ARCH, "--config", str(cfg)]) == 2
    assert "mapping" in capsys.readouterr().err


def test_missing_data_exits_1_naming_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", ARCH, "--data-root", str(tmp_path), "--steps", "1"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "cifar-10-batches-py") in err and "--data-root" in err


def test_bad_values_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    no_data = str(tmp_path / "no-data")  # options are checked before any data is read
    assert (
        main(
            [
                "train",
                "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                "--data-root",
                no_data,
            ]
        )
        == 2
    )
    assert "'conv'" in capsys.readouterr().err
    assert main(["train", ARCH, "--data-root", no_data, "--probe", "16,x"]) == 2
    assert "probe" in capsys.readouterr().err
    assert main(["train", ARCH, "--data-root", no_data, "--epochs", "0"]) == 2
    assert "epochs='0'" in capsys.readouterr().err


def test_option_resolution() -> None:
    opts = resolve_train_options({}, None)
    assert opts["resolution"] == 16 and opts["channels"] == 8 and opts["cells_per_stage"] == 1
    assert opts["subset"] == 10_000 and opts["epochs"] == 8.0 and opts["probe"] == (128, 64)
    assert (
        opts["lr"] == 0.1 and opts["batch_size"] == 256 and TRAIN_DEFAULTS["dataset"] == "cifar10"
    )
    opts = resolve_train_options(
        {"subset": "all", "resolution": "none", "normalize": None}, {"normalize": "yes"}
    )
    assert opts["subset"] is None and opts["resolution"] is None and opts["normalize"] is True
    with pytest.raises(ConfigError, match="channels=None"):
        resolve_train_options({}, {"channels": None})
    with pytest.raises(ConfigError, match="dataset='mnist'"):
        resolve_train_options({"dataset": "mnist"})
    assert resolve_train_options({"threads": "auto"})["threads"] is None
    assert resolve_train_options({"threads": "3"})["threads"] == 3
    with pytest.raises(ConfigError, match="threads='0'"):
        resolve_train_options({"threads": "0"})
    assert _idle_cores(1) == 1 and 1 <= _idle_cores(64) <= 64
