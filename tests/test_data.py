"""nasnc.data: a synthetic CIFAR-10 (and the real one where present), archives and broken files."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SYNTHETIC_TEST, SYNTHETIC_TRAIN

from nasnc import ConfigError, DataError
from nasnc.data import (
    DATASETS,
    Archive,
    DeviceTransform,
    ProxyData,
    download_archive,
    load_dataset,
    random_crop_flip,
    resolve_data_root,
)
from nasnc.testing import make_synthetic_dataset

CIFAR_DIR = "cifar-10-batches-py"
N_TRAIN, N_TEST = SYNTHETIC_TRAIN, SYNTHETIC_TEST  # the session's synthetic_root


def _read_raw(root: Path, name: str = "data_batch_1") -> dict:
    with (root / CIFAR_DIR / name).open("rb") as f:
        return pickle.load(f, encoding="latin1")


@pytest.fixture(scope="module")
def raw_batch(synthetic_root: Path) -> dict:
    """The session's synthetic ``data_batch_1`` as the pickled dict (N x 3072 uint8, labels)."""
    return _read_raw(synthetic_root)


def _write_batch(path: Path, data: np.ndarray, labels: list[int], key: str = "labels") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump({"data": data, key: labels, "batch_label": "test"}, f)


def _tiny_cifar(folder: Path, raw: dict, n_train: int = 64, n_test: int = 32) -> None:
    _write_batch(folder / "data_batch_1", raw["data"][:n_train], raw["labels"][:n_train])
    _write_batch(
        folder / "test_batch",
        raw["data"][n_train : n_train + n_test],
        raw["labels"][n_train : n_train + n_test],
    )


def _tar_gz(path: Path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _batch_bytes(data: np.ndarray, labels: list[int]) -> bytes:
    return pickle.dumps({"data": data, "labels": labels, "batch_label": "tiny"})


# --------------------------------------------------------------------------- real CIFAR-10
def test_load_real_cifar10(shared_data: Path, real_cifar_root: Path) -> None:
    raw = _read_raw(real_cifar_root)
    data = load_dataset("cifar10", shared_data)  # the cifar10/ sub-folder layout
    assert data.name == "cifar10" and data.num_classes == 10 and data.resolution == 32
    assert data.train_x.shape == (10_000, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.train_y.dtype == torch.int64 and data.num_valid == 2000
    assert int(data.train_y.min()) == 0 and int(data.train_y.max()) == 9
    # file order kept, R/G/B planes decoded as [3, 32, 32]
    np.testing.assert_array_equal(data.train_y[:50].numpy(), raw["labels"][:50])
    np.testing.assert_array_equal(data.train_x[7].numpy().reshape(-1), raw["data"][7])


def test_real_cifar10_matches_the_catalogue(real_cifar_root: Path) -> None:
    """The normalisation constants fit the files, and data_batch_1 is the official first batch."""
    data = load_dataset("cifar10", real_cifar_root, valid_size=None)
    spec = DATASETS["cifar10"]
    for x in (data.train_x, data.valid_x):
        pixels = x.double() / 255
        np.testing.assert_allclose(pixels.mean(dim=(0, 2, 3)).numpy(), spec.mean, atol=5e-3)
        np.testing.assert_allclose(pixels.std(dim=(0, 2, 3)).numpy(), spec.std, atol=5e-3)
    # class counts of the official data_batch_1; the test file holds 1000 per class
    official = [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    assert torch.bincount(data.train_y, minlength=10).tolist() == official
    assert torch.bincount(data.valid_y, minlength=10).tolist() == [1000] * 10


# --------------------------------------------------------------------------- synthetic CIFAR-10
def test_load_keeps_file_order_and_planes(synthetic_root: Path, raw_batch: dict) -> None:
    data = load_dataset("cifar10", synthetic_root, valid_size=None)
    assert data.name == "cifar10" and data.num_classes == 10 and data.resolution == 32
    assert data.train_x.shape == (N_TRAIN, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.train_y.dtype == torch.int64 and data.num_valid == N_TEST
    assert data.train_y.unique().tolist() == list(range(10))
    np.testing.assert_array_equal(data.train_y.numpy(), raw_batch["labels"])
    # R/G/B planes decoded as [3, 32, 32]
    np.testing.assert_array_equal(data.train_x[7].numpy().reshape(-1), raw_batch["data"][7])
    np.testing.assert_array_equal(data.train_x[7, 1, 0, :].numpy(), raw_batch["data"][7][1024:1056])


def test_root_may_hold_a_cifar10_folder(tmp_path: Path) -> None:
    make_synthetic_dataset(tmp_path / "cifar10", num_train=12, num_test=6)
    data = load_dataset("CIFAR10", tmp_path, train_subset=10, valid_size=5)
    assert data.num_train == 10 and data.num_valid == 5
    assert data.source == str(tmp_path / "cifar10" / CIFAR_DIR)


def test_env_var_is_the_fallback_root(
    synthetic_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NASNC_DATA_DIR", str(synthetic_root))
    assert resolve_data_root(None) == synthetic_root
    assert load_dataset("cifar10", train_subset=4, valid_size=0).num_train == 4
    monkeypatch.delenv("NASNC_DATA_DIR")
    with pytest.raises(DataError, match="--data-root") as err:
        resolve_data_root(None)
    assert "NASNC_DATA_DIR" in str(err.value)


def test_resolution_16_averages_2x2_blocks(synthetic_root: Path) -> None:
    full = load_dataset("cifar10", synthetic_root, train_subset=200, valid_size=20)
    small = load_dataset("cifar10", synthetic_root, train_subset=200, valid_size=20, resolution=16)
    assert small.train_x.shape == (200, 3, 16, 16) and small.train_x.dtype == torch.uint8
    assert small.valid_x.shape == (20, 3, 16, 16)
    pooled = F.avg_pool2d(full.train_x.float(), 2)
    assert (small.train_x.float() - pooled).abs().max() <= 0.5
    torch.testing.assert_close(small.train_y, full.train_y)


def test_subsets_first_and_seeded(synthetic_root: Path) -> None:
    full = load_dataset("cifar10", synthetic_root, valid_size=0)
    first = load_dataset("cifar10", synthetic_root, train_subset=300, valid_size=0)
    assert torch.equal(first.train_x, full.train_x[:300])
    a = load_dataset(
        "cifar10", synthetic_root, train_subset=300, subset_mode="seeded", seed=1, valid_size=0
    )
    b = load_dataset(
        "cifar10", synthetic_root, train_subset=300, subset_mode="seeded", seed=1, valid_size=0
    )
    c = load_dataset(
        "cifar10", synthetic_root, train_subset=300, subset_mode="seeded", seed=2, valid_size=0
    )
    assert torch.equal(a.train_x, b.train_x)
    assert not torch.equal(a.train_x, c.train_x)
    assert not torch.equal(a.train_x, first.train_x)
    # every seeded image is one of the training images, each at most once
    rows = {bytes(x) for x in full.train_x.reshape(N_TRAIN, -1).numpy()}
    picked = [bytes(x) for x in a.train_x.reshape(300, -1).numpy()]
    assert set(picked) <= rows and len(set(picked)) == 300


def test_valid_from_test_and_held_out_train(synthetic_root: Path) -> None:
    test_all = load_dataset("cifar10", synthetic_root, train_subset=10, valid_size=None)
    assert test_all.num_valid == N_TEST
    held = load_dataset("cifar10", synthetic_root, valid_from="train", valid_size=300)
    assert held.num_train == N_TRAIN - 300 and held.num_valid == 300
    full = load_dataset("cifar10", synthetic_root, valid_size=0)
    # "first" holds out the last images
    assert torch.equal(held.valid_x, full.train_x[N_TRAIN - 300 :])
    seeded = load_dataset(
        "cifar10",
        synthetic_root,
        valid_from="train",
        valid_size=500,
        subset_mode="seeded",
        train_subset=1000,
    )
    train_rows = {bytes(x) for x in seeded.train_x.reshape(1000, -1).numpy()}
    valid_rows = {bytes(x) for x in seeded.valid_x.reshape(500, -1).numpy()}
    assert len(valid_rows) == 500 and not train_rows & valid_rows
    assert (train_rows | valid_rows) <= {
        bytes(x) for x in full.train_x.reshape(N_TRAIN, -1).numpy()
    }


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "mnist"}, "name='mnist'"),
        ({"resolution": 5}, "resolution=5"),
        ({"resolution": 0}, "resolution=0"),
        ({"subset_mode": "random"}, "subset_mode='random'"),
        ({"valid_from": "val"}, "valid_from='val'"),
        ({"train_subset": 0}, "train_subset=0"),
        ({"train_subset": N_TRAIN + 1}, f"train_subset={N_TRAIN + 1}"),
        ({"valid_size": N_TEST + 1}, f"valid_size={N_TEST + 1}"),
        ({"valid_size": -1}, "valid_size=-1"),
        ({"valid_from": "train", "valid_size": None}, "valid_size=None"),
        ({"valid_from": "train", "valid_size": N_TRAIN}, f"valid_size={N_TRAIN}"),
    ],
)
def test_bad_options_raise_config_error(synthetic_root: Path, kwargs: dict, needle: str) -> None:
    args = {"name": "cifar10", "root": synthetic_root, **kwargs}
    with pytest.raises(ConfigError) as err:
        load_dataset(**args)
    assert needle in str(err.value)


def test_missing_data_names_the_folders_and_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / CIFAR_DIR) in msg and str(tmp_path / "cifar10" / CIFAR_DIR) in msg
    assert "--data-root" in msg and "NASNC_DATA_DIR" in msg and "download" in msg
    with pytest.raises(DataError, match="cifar-100-python"):
        load_dataset("cifar100", tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        load_dataset("cifar10", tmp_path / "nowhere")


def test_missing_test_batch_is_named(tmp_path: Path, raw_batch: dict) -> None:
    folder = tmp_path / CIFAR_DIR
    _write_batch(folder / "data_batch_1", raw_batch["data"][:20], raw_batch["labels"][:20])
    with pytest.raises(DataError, match="test_batch"):
        load_dataset("cifar10", tmp_path)
    held = load_dataset("cifar10", tmp_path, valid_from="train", valid_size=5)
    assert held.num_train == 15


def test_whatever_training_batches_are_present_are_loaded(tmp_path: Path, raw_batch: dict) -> None:
    folder = tmp_path / CIFAR_DIR
    _tiny_cifar(folder, raw_batch, n_train=30)
    _write_batch(folder / "data_batch_3", raw_batch["data"][100:140], raw_batch["labels"][100:140])
    data = load_dataset("cifar10", tmp_path, valid_size=None)
    assert data.num_train == 70 and data.num_valid == 32
    np.testing.assert_array_equal(data.train_y[30:].numpy(), raw_batch["labels"][100:140])


# --------------------------------------------------------------------------- broken files
def test_truncated_file_is_named(tmp_path: Path, synthetic_root: Path) -> None:
    folder = tmp_path / CIFAR_DIR
    folder.mkdir()
    payload = (synthetic_root / CIFAR_DIR / "data_batch_1").read_bytes()
    (folder / "data_batch_1").write_bytes(payload[: len(payload) // 3])
    with pytest.raises(DataError, match="corrupt or truncated") as err:
        load_dataset("cifar10", tmp_path, valid_size=0)
    assert str(folder / "data_batch_1") in str(err.value)


def test_garbage_and_wrong_content_are_named(tmp_path: Path, raw_batch: dict) -> None:
    folder = tmp_path / CIFAR_DIR
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"\x00not a pickle at all" * 10)
    with pytest.raises(DataError, match="data_batch_1"):
        load_dataset("cifar10", tmp_path, valid_size=0)
    _write_batch(folder / "data_batch_1", raw_batch["data"][:10, :100], raw_batch["labels"][:10])
    with pytest.raises(DataError, match=r"data_batch_1.*shape=\(10, 100\)"):
        load_dataset("cifar10", tmp_path, valid_size=0)
    _write_batch(folder / "data_batch_1", raw_batch["data"][:10], raw_batch["labels"][:9])
    with pytest.raises(DataError, match="10 images but labels"):
        load_dataset("cifar10", tmp_path, valid_size=0)
    _write_batch(folder / "data_batch_1", raw_batch["data"][:3], [0, 1, 10])
    with pytest.raises(DataError, match=r"labels must lie in 0\.\.9"):
        load_dataset("cifar10", tmp_path, valid_size=0)
    _write_batch(folder / "data_batch_1", raw_batch["data"][:3], [0.9, 1.7, 2.2])  # type: ignore[list-item]
    with pytest.raises(DataError, match=r"data_batch_1: labels must be integers.*float64"):
        load_dataset("cifar10", tmp_path, valid_size=0)


def test_a_damaged_frame_length_is_named_whatever_the_unpickler_raises(
    tmp_path: Path, raw_batch: dict
) -> None:
    # protocol 4+ frames its data: a flipped top byte of the first frame's 8-byte
    # length (bytes 3-10) makes the unpickler raise OverflowError, not UnpicklingError
    folder = tmp_path / CIFAR_DIR
    folder.mkdir()
    batch = {"data": raw_batch["data"][:10], "labels": raw_batch["labels"][:10]}
    payload = bytearray(pickle.dumps(batch, protocol=4))
    assert payload[:3] == b"\x80\x04\x95"
    payload[10] = 0x80
    (folder / "data_batch_1").write_bytes(bytes(payload))
    with pytest.raises(DataError, match="corrupt or truncated") as err:
        load_dataset("cifar10", tmp_path, valid_size=0)
    assert str(folder / "data_batch_1") in str(err.value)


def test_a_gap_in_the_training_files_is_warned_about(
    tmp_path: Path, raw_batch: dict, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / CIFAR_DIR
    _tiny_cifar(folder, raw_batch, n_train=30)
    with caplog.at_level("WARNING", logger="nasnc.data"):
        load_dataset("cifar10", tmp_path, valid_size=None)  # batch 1 alone: a subset
    assert not caplog.records
    _write_batch(folder / "data_batch_3", raw_batch["data"][100:140], raw_batch["labels"][100:140])
    with caplog.at_level("WARNING", logger="nasnc.data"):
        load_dataset("cifar10", tmp_path, valid_size=None)
    assert "missing between present ones" in caplog.text and "data_batch_2" in caplog.text


class _Boom:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch pwned",))


def test_pickles_cannot_run_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / CIFAR_DIR
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": _Boom(), "labels": []}))
    with pytest.raises(DataError, match="not allowed"):
        load_dataset("cifar10", tmp_path, valid_size=0)
    assert not (tmp_path / "pwned").exists()


def test_old_numpy_spelling_and_protocol_2(tmp_path: Path, raw_batch: dict) -> None:
    """The official files name numpy.core.multiarray (numpy 1); numpy 2 calls it numpy._core."""
    folder = tmp_path / CIFAR_DIR
    folder.mkdir()
    payload = pickle.dumps(
        {"data": raw_batch["data"][:6], "labels": raw_batch["labels"][:6]}, protocol=2
    )
    for spelling in (b"numpy.core.multiarray", b"numpy._core.multiarray"):
        text = payload.replace(b"numpy._core.multiarray", spelling)
        (folder / "data_batch_1").write_bytes(text)
        data = load_dataset("cifar10", tmp_path, valid_size=0)
        np.testing.assert_array_equal(data.train_y.numpy(), raw_batch["labels"][:6])


# --------------------------------------------------------------------------- download
def test_download_verifies_checksum_and_caches(tmp_path: Path, raw_batch: dict) -> None:
    src = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    src.parent.mkdir()
    md5 = _tar_gz(
        src,
        {
            f"{CIFAR_DIR}/data_batch_1": _batch_bytes(
                raw_batch["data"][:40], raw_batch["labels"][:40]
            ),
            f"{CIFAR_DIR}/test_batch": _batch_bytes(
                raw_batch["data"][40:60], raw_batch["labels"][40:60]
            ),
        },
    )
    archive = Archive(url=src.as_uri(), md5=md5, folder=CIFAR_DIR)
    cache = tmp_path / "cache"  # created on demand
    data = load_dataset("cifar10", cache, download=True, archive=archive, valid_size=None)
    assert data.num_train == 40 and data.num_valid == 20
    np.testing.assert_array_equal(data.train_y.numpy(), raw_batch["labels"][:40])
    assert (cache / "cifar-10-python.tar.gz").is_file()
    assert not list(cache.glob(".nasnc-extract-*")) and not list(cache.glob("*.part"))
    # a second load needs neither the mirror nor the archive
    src.unlink()
    (cache / "cifar-10-python.tar.gz").unlink()
    again = load_dataset("cifar10", cache, download=True, archive=archive, valid_size=None)
    assert torch.equal(again.train_x, data.train_x)


def test_download_checksum_mismatch_is_refused(tmp_path: Path, raw_batch: dict) -> None:
    src = tmp_path / "cifar-10-python.tar.gz"
    _tar_gz(
        src,
        {f"{CIFAR_DIR}/data_batch_1": _batch_bytes(raw_batch["data"][:4], raw_batch["labels"][:4])},
    )
    archive = Archive(url=src.as_uri(), md5="0" * 32, folder=CIFAR_DIR)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="checksum mismatch") as err:
        load_dataset("cifar10", cache, download=True, archive=archive)
    assert "0" * 32 in str(err.value)
    assert not list(cache.iterdir())  # nothing half-written stays behind


def test_download_offline_names_folder_and_options(tmp_path: Path) -> None:
    archive = Archive(url=(tmp_path / "absent.tar.gz").as_uri(), md5="0" * 32, folder=CIFAR_DIR)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path / "cache", download=True, archive=archive)
    msg = str(err.value)
    assert "could not download" in msg and str(tmp_path / "cache") in msg
    assert "--data-root" in msg and "NASNC_DATA_DIR" in msg


def test_unsafe_archives_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "evil.tar.gz"
    md5 = _tar_gz(src, {f"{CIFAR_DIR}/../../escaped": b"x", f"{CIFAR_DIR}/data_batch_1": b"y"})
    with pytest.raises(DataError, match="escape"):
        download_archive(Archive(url=src.as_uri(), md5=md5, folder=CIFAR_DIR), tmp_path / "c")
    assert not (tmp_path / "escaped").exists()

    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        info = tarfile.TarInfo(f"{CIFAR_DIR}/data_batch_1")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    md5 = hashlib.md5(link.read_bytes()).hexdigest()
    with pytest.raises(DataError, match="not a plain file"):
        download_archive(Archive(url=link.as_uri(), md5=md5, folder=CIFAR_DIR), tmp_path / "d")

    wrong = tmp_path / "wrong.tar.gz"
    md5 = _tar_gz(wrong, {"other/readme": b"z"})
    with pytest.raises(DataError, match="holds no cifar-10-batches-py"):
        download_archive(Archive(url=wrong.as_uri(), md5=md5, folder=CIFAR_DIR), tmp_path / "e")


def test_download_keeps_files_already_present(tmp_path: Path, raw_batch: dict) -> None:
    cache = tmp_path / "cache"
    mine = cache / CIFAR_DIR / "batches.meta"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own file")
    src = tmp_path / "c.tar.gz"
    md5 = _tar_gz(
        src,
        {
            f"{CIFAR_DIR}/batches.meta": b"theirs",
            f"{CIFAR_DIR}/data_batch_1": _batch_bytes(
                raw_batch["data"][:4], raw_batch["labels"][:4]
            ),
        },
    )
    out = download_archive(Archive(url=src.as_uri(), md5=md5, folder=CIFAR_DIR), cache)
    assert mine.read_bytes() == b"my own file"
    assert (out / "data_batch_1").is_file()


# --------------------------------------------------------------------------- ImageNet16-120
def test_imagenet16_120_filters_and_shifts_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "ImageNet16"
    labels = [1, 120, 121, 1000, 5, 60]
    _write_batch(
        folder / "train_data_batch_1", rng.integers(0, 256, (6, 768), dtype=np.uint8), labels
    )
    _write_batch(
        folder / "train_data_batch_2", rng.integers(0, 256, (2, 768), dtype=np.uint8), [500, 2]
    )
    val = rng.integers(0, 256, (3, 768), dtype=np.uint8)
    _write_batch(folder / "val_data", val, [120, 999, 7])
    data = load_dataset("ImageNet16-120", tmp_path, valid_size=None)
    assert data.num_classes == 120 and data.resolution == 16
    assert data.train_y.tolist() == [0, 119, 4, 59, 1]
    assert data.valid_y.tolist() == [119, 6]
    np.testing.assert_array_equal(data.valid_x[1].numpy().reshape(-1), val[2])
    assert (
        load_dataset("imagenet16-120", tmp_path, valid_size=1, resolution=8).train_x.shape[-1] == 8
    )
    with pytest.raises(DataError, match="cannot be downloaded"):
        load_dataset("ImageNet16-120", tmp_path / "x", download=True)


# --------------------------------------------------------------------------- augmentation
def _reference_crop_flip(x: torch.Tensor, padding: int, seed: int) -> torch.Tensor:
    """Per-image crop/flip with the same draws (the semantics the batched version must match)."""
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    oy = torch.randint(0, 2 * padding + 1, (n, 1), generator=g)
    ox = torch.randint(0, 2 * padding + 1, (n, 1), generator=g)
    flip = torch.randint(0, 2, (n, 1), generator=g).bool()
    xp = F.pad(x, (padding,) * 4)
    out = []
    for i in range(n):
        crop = xp[i, :, oy[i] : oy[i] + h, ox[i] : ox[i] + w]
        out.append(crop.flip(-1) if flip[i] else crop)
    return torch.stack(out)


def test_random_crop_flip_matches_per_image_semantics(synthetic_root: Path) -> None:
    x = load_dataset("cifar10", synthetic_root, train_subset=64, valid_size=0).train_x
    out = random_crop_flip(x, padding=4, flip=True, generator=torch.Generator().manual_seed(3))
    assert out.shape == x.shape and out.dtype == torch.uint8
    torch.testing.assert_close(out, _reference_crop_flip(x, 4, 3), rtol=0, atol=0)
    again = random_crop_flip(x, padding=4, flip=True, generator=torch.Generator().manual_seed(3))
    other = random_crop_flip(x, padding=4, flip=True, generator=torch.Generator().manual_seed(4))
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_crop_and_flip_edge_cases() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_crop_flip(x, padding=0, flip=False, generator=g), x)
    many = torch.arange(16 * 3 * 4 * 4, dtype=torch.uint8).view(16, 3, 4, 4)
    flipped = random_crop_flip(
        many, padding=0, flip=True, generator=torch.Generator().manual_seed(5)
    )
    # no padding: no offsets drawn, only the flips, so the same seed predicts them
    flags = torch.randint(0, 2, (16,), generator=torch.Generator().manual_seed(5)).bool()
    assert 0 < int(flags.sum()) < 16  # this seed flips some images and keeps others
    torch.testing.assert_close(
        flipped, torch.where(flags.view(16, 1, 1, 1), many.flip(-1), many), rtol=0, atol=0
    )
    padded = random_crop_flip(x.float(), padding=4, flip=False, generator=g)
    assert padded.dtype == torch.float32 and padded.shape == x.shape


def test_device_transform_normalises_and_augments() -> None:
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    x = torch.randint(0, 256, (8, 3, 6, 6), dtype=torch.uint8)
    t = DeviceTransform(mean, std, padding=2)
    expected = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(t.eval(x), expected)
    a = t.train(x, torch.Generator().manual_seed(0))
    b = t.train(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.dtype == torch.float32 and not torch.equal(a, t.eval(x))
    plain = DeviceTransform(mean, std, augment=False)
    assert torch.equal(plain.train(x, torch.Generator()), plain.eval(x))
    cl = DeviceTransform(mean, std, channels_last=True).eval(x)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ConfigError, match="std"):
        DeviceTransform(mean, (0.2, 0.0, 0.1))
    with pytest.raises(ConfigError, match="padding=-1"):
        DeviceTransform(mean, std, padding=-1)


def test_proxy_data_validates_its_tensors() -> None:
    x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    y = torch.zeros(4, dtype=torch.int64)
    ok = ProxyData("toy", 10, 8, x, y, x[:2], y[:2], (0.5,) * 3, (0.2,) * 3)
    assert ok.to("cpu") is ok and ok.to("cpu:0") is ok
    assert ok.num_train == 4 and ok.num_valid == 2
    with pytest.raises(DataError, match="train_x must be uint8"):
        ProxyData("toy", 10, 8, x.float(), y, x, y, (0.5,) * 3, (0.2,) * 3)
    with pytest.raises(DataError, match="valid_y must be int64"):
        ProxyData("toy", 10, 8, x, y, x, y[:3], (0.5,) * 3, (0.2,) * 3)
    with pytest.raises(DataError, match="train_x"):
        ProxyData("toy", 10, 16, x, y, x, y, (0.5,) * 3, (0.2,) * 3)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_proxy_data_on_another_gpu_moves_to_the_current_one() -> None:
    x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    y = torch.zeros(4, dtype=torch.int64)
    data = ProxyData("toy", 10, 8, x, y, x[:2], y[:2], (0.5,) * 3, (0.2,) * 3).to("cuda:1")
    with torch.cuda.device(0):
        moved = data.to("cuda")  # "cuda" is the current device, cuda:0
    assert moved is not data and moved.device == torch.device("cuda", 0)
    assert data.to("cuda:1") is data
