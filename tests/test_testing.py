"""nasnc.testing.make_synthetic_dataset: the layout the loaders read, seeded, learnable."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nasnc import ConfigError, DataError
from nasnc.data import load_dataset
from nasnc.models import build_network
from nasnc.testing import _data, make_synthetic_dataset
from nasnc.train import TrainRecipe, train_proxy

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _raw(path: Path) -> dict:
    with path.open("rb") as f:
        return pickle.load(f, encoding="latin1")


def test_cifar10_layout_and_contents(tmp_path: Path) -> None:
    folder = make_synthetic_dataset(tmp_path, num_train=103, num_test=40, seed=1)
    assert folder == tmp_path / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == [
        "batches.meta",
        "data_batch_1",
        "test_batch",
    ]
    train = _raw(folder / "data_batch_1")
    assert train["data"].dtype == np.uint8 and train["data"].shape == (103, 3072)
    assert isinstance(train["labels"], list) and len(train["labels"]) == 103
    counts = np.bincount(train["labels"], minlength=10)
    assert counts.min() == 10 and counts.max() == 11  # balanced
    assert train["labels"][:10] != sorted(train["labels"][:10])  # shuffled
    assert len(_raw(folder / "test_batch")["labels"]) == 40
    assert len(_raw(folder / "batches.meta")["label_names"]) == 10
    data = load_dataset("cifar10", tmp_path, valid_size=None)
    assert data.num_train == 103 and data.num_valid == 40
    np.testing.assert_array_equal(data.train_y.numpy(), train["labels"])


def test_large_training_sets_fill_official_sized_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_data, "_PER_FILE", 100)  # 10,000 in the official files
    folder = make_synthetic_dataset(tmp_path, num_train=205, num_test=0)
    sizes = [len(_raw(folder / f"data_batch_{i}")["labels"]) for i in (1, 2, 3)]
    assert sizes == [100, 100, 5] and not (folder / "data_batch_4").exists()
    assert load_dataset("cifar10", tmp_path, valid_size=0).num_train == 205
    many = make_synthetic_dataset(tmp_path / "many", num_train=620, num_test=0)
    sizes = [len(_raw(many / f"data_batch_{i}")["labels"]) for i in range(1, 6)]
    assert sizes == [100, 100, 100, 100, 220]  # five files, the last takes the rest


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    a = make_synthetic_dataset(tmp_path / "a", num_train=50, num_test=20, seed=3)
    b = make_synthetic_dataset(tmp_path / "b", num_train=50, num_test=20, seed=3)
    c = make_synthetic_dataset(tmp_path / "c", num_train=50, num_test=20, seed=4)
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert not np.array_equal(_raw(a / "data_batch_1")["data"], _raw(c / "data_batch_1")["data"])
    # the test images are not copies of training images
    train = {bytes(r) for r in _raw(a / "data_batch_1")["data"]}
    assert not train & {bytes(r) for r in _raw(a / "test_batch")["data"]}


def test_cifar100_and_imagenet16_layouts(tmp_path: Path) -> None:
    folder = make_synthetic_dataset(tmp_path, "cifar100", num_train=300, num_test=100)
    assert sorted(p.name for p in folder.iterdir()) == ["meta", "test", "train"]
    raw = _raw(folder / "train")
    assert raw["coarse_labels"] == [y // 5 for y in raw["fine_labels"]]
    c100 = load_dataset("cifar100", tmp_path, valid_size=50, resolution=16)
    assert c100.num_classes == 100 and c100.num_train == 300 and c100.train_x.shape[-1] == 16
    assert c100.train_y.unique().numel() == 100

    make_synthetic_dataset(tmp_path, "ImageNet16-120", num_train=240, num_test=120)
    raw = _raw(tmp_path / "ImageNet16" / "train_data_batch_1")
    assert raw["data"].shape == (240, 768) and min(raw["labels"]) == 1  # 1-based, as the benchmark
    inet = load_dataset("ImageNet16-120", tmp_path, valid_size=None)
    assert inet.num_train == 240 and inet.num_valid == 120
    assert inet.train_y.min() == 0 and inet.train_y.max() == 119


def test_classes_differ_in_colour(tmp_path: Path) -> None:
    make_synthetic_dataset(tmp_path, num_train=1000, num_test=0, noise=0.0)
    data = load_dataset("cifar10", tmp_path, valid_size=0)
    x, y = data.train_x.double(), data.train_y
    colours = torch.stack([x[y == c].mean(dim=(0, 2, 3)) for c in range(10)])
    gaps = torch.cdist(colours, colours) + torch.eye(10) * 1e9
    assert gaps.min() > 20  # every pair of class mean colours is at least 20 levels apart


def test_synthetic_data_is_learnable_in_a_few_epochs(tmp_path: Path) -> None:
    make_synthetic_dataset(tmp_path, num_train=1024, num_test=256)
    data = load_dataset("cifar10", tmp_path, valid_size=256, resolution=8)
    torch.manual_seed(0)
    model = build_network(ARCH, channels=4, cells_per_stage=1, probe=(16, 8), probe_seed=0)
    res = train_proxy(model, data, 4, device="cpu", recipe=TrainRecipe(batch_size=64))
    # chance is 0.10; real CIFAR-10 under this budget measured 0.10-0.18
    assert res.trajectory["valid_acc"][-1] > 0.3


def test_real_data_is_never_overwritten(tmp_path: Path) -> None:
    folder = make_synthetic_dataset(tmp_path, num_train=20, num_test=10)
    before = (folder / "data_batch_1").read_bytes()
    with pytest.raises(DataError, match="overwrite=True") as err:
        make_synthetic_dataset(tmp_path, num_train=20, num_test=10, seed=1)
    assert "data_batch_1" in str(err.value)
    assert (folder / "data_batch_1").read_bytes() == before
    make_synthetic_dataset(tmp_path, num_train=20, num_test=10, seed=1, overwrite=True)
    assert (folder / "data_batch_1").read_bytes() != before
    assert not list(folder.glob("*.part"))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "mnist"}, "name='mnist'"),
        ({"num_train": 0}, "num_train=0"),
        ({"num_train": 2.5}, "num_train=2.5"),
        ({"num_test": -1}, "num_test=-1"),
        ({"seed": "1"}, "seed='1'"),
        ({"noise": -1.0}, "noise=-1.0"),
        ({"noise": float("nan")}, "noise=nan"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path: Path, kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_synthetic_dataset(tmp_path, **kwargs)
    assert needle in str(err.value)
    assert not list(tmp_path.iterdir())  # nothing written
