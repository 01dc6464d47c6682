"""One dataset catalogue from which every other copy derives; one builder of βeff variant names."""

from __future__ import annotations

import argparse

import pytest

from nasnc import ConfigError
from nasnc._catalogue import BENCHMARK_DATASETS, CATALOGUE, PROXY_DATASETS, dataset_info
from nasnc.analysis import truth_dataset_for
from nasnc.bench import Dataset
from nasnc.capacitance import VARIANTS, variant_name
from nasnc.data import DATASETS
from nasnc.pipeline import DATASET_CLASSES, ProxyConfig
from nasnc_search.cli._bench import BENCH_DATASETS
from nasnc_search.cli._main import build_parser


def test_loader_specs_derive_from_the_catalogue() -> None:
    assert tuple(DATASETS) == PROXY_DATASETS
    for name, spec in DATASETS.items():
        info = CATALOGUE[name]
        assert (spec.name, spec.num_classes, spec.resolution) == (
            info.name,
            info.num_classes,
            info.resolution,
        )


def test_benchmark_setups_are_the_catalogues() -> None:
    assert tuple(d.value for d in Dataset) == tuple(BENCHMARK_DATASETS) == BENCH_DATASETS
    assert set(BENCHMARK_DATASETS.values()) == set(PROXY_DATASETS)
    for info in CATALOGUE.values():
        assert BENCHMARK_DATASETS[info.benchmark] == info.name
        assert truth_dataset_for(info.name).value == info.benchmark
        for alias in info.aliases:
            assert truth_dataset_for(alias).value == info.benchmark


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("cifar10", "cifar10"),
        ("CIFAR-10", "cifar10"),
        ("cifar10-valid", "cifar10"),
        ("Cifar100", "cifar100"),
        ("imagenet16-120", "ImageNet16-120"),
        ("ImageNet16", "ImageNet16-120"),
    ],
)
def test_every_spelling_resolves_everywhere(spelling: str, name: str) -> None:
    assert dataset_info(spelling).name == name
    config = ProxyConfig(dataset=spelling)
    assert config.dataset == name
    assert config.num_classes == CATALOGUE[name].num_classes == DATASET_CLASSES[name]


def test_unknown_dataset_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="mnist") as err:
        dataset_info("mnist")
    assert all(name in str(err.value) for name in PROXY_DATASETS)
    with pytest.raises(ConfigError, match="dataset must be one of cifar10, cifar100"):
        ProxyConfig(dataset="mnist")


def _option(parser: argparse.ArgumentParser, *words: str) -> argparse.Action:
    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return next(a for a in parser._actions if "--dataset" in a.option_strings)


def test_cli_choices_come_from_the_catalogue() -> None:
    parser = build_parser()
    assert tuple(_option(parser, "space", "show").choices or ()) == tuple(BENCHMARK_DATASETS)
    assert tuple(_option(parser, "bench", "show").choices or ()) == tuple(BENCHMARK_DATASETS)
    train = _option(parser, "train")
    assert all(name in str(train.metavar) for name in PROXY_DATASETS)


@pytest.mark.parametrize(("interaction", "normalize"), VARIANTS)
def test_variant_name_is_built_in_one_place(interaction: str, normalize: bool) -> None:
    config = ProxyConfig(interaction=interaction, normalize=normalize)  # type: ignore[arg-type]
    assert config.variant == variant_name(interaction, normalize)
