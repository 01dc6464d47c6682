"""The cache key records the device a run trains on, not where its data lives (issue 13, item 3).

CUDA trains in mixed precision and the CPU in float32, so their trajectories
differ: an entry trained on one must not be served to a run on the other.
The data may live elsewhere (``load_proxy_data`` defaults to the CPU and the
training loop moves it), so the key must not read the data's device.
"""

from __future__ import annotations

import pytest
import torch

from nasnc.data import ProxyData
from nasnc.pipeline import ProxyConfig, evaluate_arch, proxy_key, resolved_config
from nasnc.train import resolve_device

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
TINY = ProxyConfig(
    resolution=8,
    train_subset=64,
    valid_size=32,
    channels=4,
    probe=(8,),
    epochs=1,
    batch_size=32,
)


def _data(device: str) -> ProxyData:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (96, 3, 8, 8), generator=gen, dtype=torch.uint8)
    y = torch.randint(0, 10, (96,), generator=gen)
    return ProxyData(
        name="cifar10",
        num_classes=10,
        resolution=8,
        train_x=x[:64].to(device),
        train_y=y[:64].to(device),
        valid_x=x[64:].to(device),
        valid_y=y[64:].to(device),
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )


def test_key_records_the_training_device() -> None:
    on_cpu = _data("cpu")
    assert resolved_config(TINY, on_cpu, device="cpu")["device_type"] == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_key_does_not_read_where_the_data_lives() -> None:
    elsewhere = _data("cuda")  # the same data held on another device: the same key
    assert proxy_key(ARCH, TINY, 0, elsewhere, device="cpu") == proxy_key(
        ARCH, TINY, 0, _data("cpu"), device="cpu"
    )


def test_data_with_the_same_counts_but_other_contents_is_another_key() -> None:
    import dataclasses

    base = _data("cpu")
    key = proxy_key(ARCH, TINY, 0, base, device="cpu")
    assert proxy_key(ARCH, TINY, 0, _data("cpu"), device="cpu") == key  # same contents
    flipped = base.train_x.clone()
    flipped[0, 0, 0, 0] ^= 1  # one pixel of another copy of the files
    others = {
        "pixels": dataclasses.replace(base, train_x=flipped),
        "order": dataclasses.replace(
            base, valid_x=base.valid_x.flip(0), valid_y=base.valid_y.flip(0)
        ),
        "labels": dataclasses.replace(base, train_y=(base.train_y + 1) % 10),
        "normalisation": dataclasses.replace(base, mean=(0.4, 0.5, 0.5)),
    }
    for what, data in others.items():
        assert data.num_train == base.num_train and data.num_valid == base.num_valid
        assert proxy_key(ARCH, TINY, 0, data, device="cpu") != key, what


def test_auto_means_what_evaluate_arch_trains_on() -> None:
    data = _data("cpu")
    result = evaluate_arch(ARCH, TINY, data)  # no device: "auto"
    trains_on = "cuda" if torch.cuda.is_available() else "cpu"
    assert result.entry.config["device_type"] == trains_on
    assert result.entry.key == proxy_key(ARCH, TINY, 0, data, device=trains_on)
    assert resolve_device("auto").type == trains_on


def test_evaluate_arch_keys_its_entry_on_its_device() -> None:
    result = evaluate_arch(ARCH, TINY, _data("cpu"), device="cpu")
    assert result.entry.config["device_type"] == "cpu"
    assert result.entry.key == proxy_key(ARCH, TINY, 0, _data("cpu"), device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_on_cpu_data_is_keyed_cuda() -> None:
    data = _data("cpu")  # the library default of load_proxy_data
    result = evaluate_arch(ARCH, TINY, data, device="cuda")
    assert result.entry.config["device_type"] == "cuda"
    assert result.entry.key == proxy_key(ARCH, TINY, 0, data, device="cuda")
    assert result.entry.key != proxy_key(ARCH, TINY, 0, data, device="cpu")


def test_data_at_another_resolution_than_the_native_one_is_refused() -> None:
    import dataclasses

    from nasnc import ConfigError

    native = dataclasses.replace(TINY, resolution=None)  # CIFAR's own 32 px
    with pytest.raises(ConfigError, match=r"resolution 8 \(config: 32\)"):
        evaluate_arch(ARCH, native, _data("cpu"), device="cpu")


def test_key_records_the_precision_amp_auto_picks_on_each_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # amp: auto trains in fp16 on a V100 and in bf16 on an A100: other runs, other keys
    # (CUDA is faked: only the key is computed, nothing runs)
    data = _data("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    got = {}
    for capability in ((7, 0), (8, 0)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _d, c=capability: c)
        got[capability] = (
            resolved_config(TINY, data, device="cuda")["amp_dtype"],
            proxy_key(ARCH, TINY, 0, data, device="cuda"),
        )
    assert got[(7, 0)][0] == "float16" and got[(8, 0)][0] == "bfloat16"
    assert got[(7, 0)][1] != got[(8, 0)][1]
    assert "amp_dtype" not in resolved_config(TINY, data, device="cpu")  # CPU keys as before
    # the training device, not the data's (the data stays on the CPU here)
    assert resolved_config(TINY, data, device="cuda")["device_type"] == "cuda"
    assert resolved_config(TINY, data)["device_type"] == "cuda"  # auto takes the GPU
    cpu_key = proxy_key(ARCH, TINY, 0, data, device="cpu")
    assert cpu_key not in {key for _, key in got.values()}
    assert proxy_key(ARCH, TINY, 0, data) == got[(8, 0)][1]
