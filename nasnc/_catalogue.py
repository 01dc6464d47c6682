"""The dataset catalogue: every fact about a dataset's identity, written once.

nasnc trains its proxy on three datasets and compares with NAS-Bench-201's
four training setups. For each proxy dataset the catalogue holds its number of
classes, its native resolution, the other spellings users write, and the
benchmark setup a proxy trained on it is compared with by default (CIFAR-10 ->
``cifar10-valid``: the benchmark's validation accuracy after training on the
train split). The loaders (:mod:`nasnc.data`), ``ProxyConfig``, the ground-truth
comparison and the CLI's choices all derive from these two tables; file
layouts, normalisation constants and download URLs stay with the loader.

>>> dataset_info("CIFAR-10").name, dataset_info("cifar10").benchmark
('cifar10', 'cifar10-valid')
>>> dataset_info("imagenet16").num_classes
120
"""

from __future__ import annotations

from dataclasses import dataclass

from nasnc._errors import ConfigError

__all__ = [
    "BENCHMARK_DATASETS",
    "CATALOGUE",
    "PROXY_DATASETS",
    "DatasetInfo",
    "dataset_info",
]


@dataclass(frozen=True)
class DatasetInfo:
    """One proxy dataset.

    Attributes
    ----------
    name : str
        nasnc's name (configs, cache entries, the loader).
    num_classes : int
    resolution : int
        Native image side in pixels (what the benchmark trains on).
    aliases : tuple of str
        Other accepted spellings (matched case-insensitively, like ``name``).
    benchmark : str
        The NAS-Bench-201 setup (:data:`BENCHMARK_DATASETS`) compared with by default.
    crop_padding : int
        Zero padding of the benchmark's random crop on this dataset (its
        training transform).
    """

    name: str
    num_classes: int
    resolution: int
    aliases: tuple[str, ...]
    benchmark: str
    crop_padding: int


#: The proxy datasets, by name.
CATALOGUE: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("cifar10", 10, 32, ("cifar-10", "cifar10-valid"), "cifar10-valid", 4),
        DatasetInfo("cifar100", 100, 32, ("cifar-100",), "cifar100", 4),
        DatasetInfo("ImageNet16-120", 120, 16, ("imagenet16",), "ImageNet16-120", 2),
    )
}
#: Names of the proxy datasets, in catalogue order.
PROXY_DATASETS: tuple[str, ...] = tuple(CATALOGUE)
#: NAS-Bench-201's training setups (``nasnc.bench.Dataset`` values) -> the proxy
#: dataset whose images each uses (``cifar10-valid`` trains on CIFAR-10's train
#: split and reports the held-out half, ``cifar10`` trains on train+valid).
BENCHMARK_DATASETS: dict[str, str] = {
    "cifar10-valid": "cifar10",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "ImageNet16-120": "ImageNet16-120",
}

_LOOKUP: dict[str, DatasetInfo] = {
    spelling.lower(): info for info in CATALOGUE.values() for spelling in (info.name, *info.aliases)
}


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry of ``name`` or one of its aliases (case-insensitive).

    Raises
    ------
    ConfigError
        An unknown name; the message lists the known names.
    """
    info = _LOOKUP.get(str(name).strip().lower())
    if info is None:
        known = ", ".join(f"{i.name} ({', '.join(i.aliases)})" for i in CATALOGUE.values())
        raise ConfigError(f"unknown dataset; known: {known}, but got {name=}.")
    return info
