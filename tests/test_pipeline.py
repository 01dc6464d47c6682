"""evaluate_arch on a synthetic CIFAR-10: cache hits, replay, stop, baselines, keys."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nasnc import ConfigError
from nasnc.data import load_dataset
from nasnc.pipeline import ProxyConfig, ReportPoint, evaluate_arch, proxy_key
from nasnc.space import Arch
from nasnc.store import Store

CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TINY = ProxyConfig(
    resolution=8,
    train_subset=256,
    valid_size=128,
    channels=4,
    probe=(16,),
    epochs=2,
    batch_size=64,
    reports_per_epoch=2,
)


@pytest.fixture(scope="module")
def data(synthetic_root: Path):  # type: ignore[no-untyped-def]
    return load_dataset("cifar10", synthetic_root, train_subset=256, valid_size=128, resolution=8)


def test_evaluate_then_cache_hit_replays(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "cache")
    live: list[ReportPoint] = []
    first = evaluate_arch(
        CONV,
        TINY,
        data,
        seed=0,
        device="cpu",
        store=store,
        proxies=("params", "synflow"),
        on_report=live.append,
    )
    assert not first.cache_hit and not first.stopped
    entry = first.entry
    assert entry.key == proxy_key(CONV, TINY, 0, data, device="cpu")
    assert entry.key in store
    # 4 steps per epoch, 2 reports per epoch, 2 epochs
    assert [p.step for p in live] == [2, 4, 6, 8]
    assert [p.index for p in live] == [0, 1, 2, 3]
    traj = entry.trajectory
    for column in (
        "step",
        "train_loss",
        "valid_acc",
        "beta_eff",
        "beta_eff_chain",
        "beta_eff_product_sf",
        "beta_eff_est",
        "beta_eff_est_std",
    ):
        assert len(traj[column]) == 4, column
    assert entry.summary["beta_eff"] == pytest.approx(live[-1].beta_eff)
    assert entry.summary["beta_eff_last"] == pytest.approx(traj["beta_eff_chain_sf"][-1])
    assert math.isfinite(entry.summary["beta_eff_std"])
    assert entry.scores["params"] > 0 and "synflow" in entry.scores and "tse" in entry.scores
    run = {"n_train": 256, "n_valid": 128, "data_digest": data.digest, "device_type": "cpu"}
    assert entry.config == {**TINY.to_dict(), **run}

    replay: list[ReportPoint] = []
    second = evaluate_arch(
        CONV, TINY, data, seed=0, device="cpu", store=store, on_report=replay.append
    )
    assert second.cache_hit
    assert all(p.cached for p in replay)
    np.testing.assert_allclose([p.beta_eff for p in replay], [p.beta_eff for p in live])
    # every other reading reaches the callback, live and replayed alike
    probe_dw = "beta_eff_probe_dw_chain_sf"
    assert [p.readings[probe_dw] for p in live] == pytest.approx(list(traj[probe_dw]))
    assert [p.readings[probe_dw] for p in replay] == pytest.approx(list(traj[probe_dw]))
    assert [p.readings["beta_eff_chain_sf"] for p in replay] == [p.beta_eff_last for p in replay]


def test_cells_building_one_network_share_the_cache(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    # nodes 1 and 2 swapped (no edge between them): the same network
    a = Arch.from_str("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    b = Arch.from_str("|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert proxy_key(a, TINY, 0, data) == proxy_key(b, TINY, 0, data)
    # the benchmark's form ignores node 1's dead operation, but it holds other weights
    c = Arch.from_str("|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert a.canonical() == c.canonical()
    assert proxy_key(a, TINY, 0, data) != proxy_key(c, TINY, 0, data)
    assert proxy_key(a, TINY, 0, data) != proxy_key(a, TINY, 1, data)
    assert proxy_key(a, TINY, 0, data) != proxy_key(a, ProxyConfig(epochs=3), 0, data)
    store = Store(tmp_path / "cache")
    evaluate_arch(a, TINY, data, device="cpu", store=store)
    assert evaluate_arch(b, TINY, data, device="cpu", store=store).cache_hit
    assert not evaluate_arch(c, TINY, data, device="cpu", store=store).cache_hit


def test_twins_trained_apart_give_the_run_their_shared_entry_holds(data) -> None:  # type: ignore[no-untyped-def]
    # live convolutions on both intermediate nodes; nodes 1 and 2 swapped
    a = Arch.from_str(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
    )
    b = Arch.from_str(
        "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    )
    assert a.graph_form() == b.graph_form()
    got = [evaluate_arch(x, TINY, data, device="cpu", proxies=("synflow",)).entry for x in (a, b)]
    for name, column in got[0].trajectory.items():
        if name != "wall_s":
            np.testing.assert_array_equal(got[1].trajectory[name], column, err_msg=name)
    assert got[0].scores == got[1].scores


def test_a_stopped_run_is_cached_as_pruned_and_never_served(  # type: ignore[no-untyped-def]
    tmp_path: Path, data
) -> None:
    store = Store(tmp_path / "cache")
    seen: list[int] = []

    def stop_at_second(point: ReportPoint) -> str | None:
        seen.append(point.index)
        return "stop" if point.index == 1 else None

    result = evaluate_arch(CONV, TINY, data, device="cpu", store=store, on_report=stop_at_second)
    assert result.stopped
    assert seen == [0, 1]
    assert len(result.entry.trajectory["step"]) == 2
    stored = store.get(result.entry.key)  # kept for compare, flagged as partial
    assert stored is not None and stored.summary["pruned"] is True
    again = evaluate_arch(CONV, TINY, data, device="cpu", store=store)
    assert not again.cache_hit  # a partial run is trained again, not replayed
    assert len(again.entry.trajectory["step"]) > 2
    assert store.get(result.entry.key).summary["pruned"] is False


def test_same_seed_same_result(data) -> None:  # type: ignore[no-untyped-def]
    a = evaluate_arch(CONV, TINY, data, seed=3, device="cpu").entry
    b = evaluate_arch(CONV, TINY, data, seed=3, device="cpu").entry
    np.testing.assert_allclose(a.trajectory["beta_eff"], b.trajectory["beta_eff"], rtol=1e-6)
    np.testing.assert_allclose(a.trajectory["train_loss"], b.trajectory["train_loss"], rtol=1e-5)


def test_data_mismatch_is_refused(data) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="cifar100"):
        evaluate_arch(CONV, ProxyConfig(dataset="cifar100"), data, device="cpu")
    with pytest.raises(ValueError, match="resolution 8"):
        evaluate_arch(CONV, ProxyConfig(resolution=16, train_subset=256), data, device="cpu")
    with pytest.raises(ValueError, match="256 training images"):
        evaluate_arch(CONV, ProxyConfig(resolution=8, train_subset=100), data, device="cpu")


def test_cache_hit_fills_in_missing_baselines(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "cache")
    first = evaluate_arch(CONV, TINY, data, device="cpu", store=store)
    assert "synflow" not in first.entry.scores
    hit = evaluate_arch(CONV, TINY, data, device="cpu", store=store, proxies=("synflow",))
    assert hit.cache_hit
    assert math.isfinite(hit.entry.scores["synflow"])
    assert store.get(first.entry.key).scores["synflow"] == hit.entry.scores["synflow"]


def test_diverged_run_is_cached_and_flagged(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "cache")
    wild = ProxyConfig(**{**TINY.to_dict(), "probe": (16,), "lr": 1e8})
    result = evaluate_arch(CONV, wild, data, device="cpu", store=store)
    assert result.diverged
    assert result.entry.summary["diverged"] is True
    assert result.entry.key in store
    # replaying the cached diverged run never reports the non-finite row
    seen: list[ReportPoint] = []
    again = evaluate_arch(CONV, wild, data, device="cpu", store=store, on_report=seen.append)
    assert again.cache_hit and again.diverged
    assert all(math.isfinite(p.train_loss) for p in seen)
    losses = result.entry.trajectory["train_loss"]
    lead = int(np.argmin(np.isfinite(losses))) if not np.isfinite(losses).all() else len(losses)
    assert [p.step for p in seen] == result.entry.trajectory["step"][:lead].tolist()


def test_a_diverged_entry_replays_its_finite_rows(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    # a cached run that went non-finite at its third report point: the first two replay
    import dataclasses

    run = evaluate_arch(CONV, TINY, data, device="cpu")
    traj = {k: np.asarray(v)[:3].copy() for k, v in run.entry.trajectory.items()}
    assert len(traj["step"]) == 3
    traj["train_loss"][2] = np.nan
    diverged = dataclasses.replace(
        run.entry, trajectory=traj, summary={**run.entry.summary, "diverged": True}
    )
    store = Store(tmp_path / "cache")
    store.put(diverged)
    seen: list[ReportPoint] = []
    again = evaluate_arch(CONV, TINY, data, device="cpu", store=store, on_report=seen.append)
    assert again.cache_hit
    assert [p.step for p in seen] == traj["step"][:2].tolist()


def test_proxy_config_converts_itself_to_its_training_recipe() -> None:
    config = ProxyConfig(lr=0.3, batch_size=64, momentum=0.8, weight_decay=1e-4, augment=True)
    recipe = config.to_recipe()
    assert (recipe.lr, recipe.batch_size, recipe.momentum) == (0.3, 64, 0.8)
    assert (recipe.weight_decay, recipe.augment, recipe.nesterov) == (1e-4, True, config.nesterov)


def test_the_random_crop_pads_as_the_benchmark_does_on_each_dataset() -> None:
    # NAS-Bench-201 pads CIFAR's crop by 4 px and ImageNet16-120's by 2 (its training
    # transform); every run before crop_padding existed padded 4
    assert ProxyConfig(dataset="cifar100", augment=True).to_recipe().crop_padding == 4
    imagenet = ProxyConfig(dataset="ImageNet16-120", resolution=None, augment=True)
    assert imagenet.to_recipe().crop_padding == 2
    assert ProxyConfig(dataset="ImageNet16-120", crop_padding=0).to_recipe().crop_padding == 0
    # the key changes only where the crop now pads other than 4: old caches stay valid
    assert "crop_padding" not in ProxyConfig().to_dict()
    assert "crop_padding" not in ProxyConfig(augment=True).to_dict()
    assert "crop_padding" not in ProxyConfig(dataset="ImageNet16-120").to_dict()  # no crop
    assert imagenet.to_dict()["crop_padding"] == 2
    assert ProxyConfig(augment=True, crop_padding=2).to_dict()["crop_padding"] == 2
    assert "crop_padding" not in ProxyConfig(augment=True, crop_padding=4).to_dict()
    # a stored config trains the same proxy when read back, whatever it padded
    for config in (
        imagenet,
        ProxyConfig(dataset="ImageNet16-120", augment=True, crop_padding=4),
        ProxyConfig(augment=True, crop_padding=2),
        ProxyConfig(augment=True),
        ProxyConfig(dataset="cifar100", augment=True, crop_padding=0),
    ):
        again = ProxyConfig.from_mapping(config.to_dict())
        assert again.to_recipe() == config.to_recipe() and again.to_dict() == config.to_dict()
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="crop_padding"):
            ProxyConfig(crop_padding=bad)  # type: ignore[arg-type]
