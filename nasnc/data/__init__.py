"""Datasets as uint8 tensors on the training device, with batch-wise augmentation.

>>> from nasnc.data import load_dataset                      # doctest: +SKIP
>>> data = load_dataset("cifar10", "data", train_subset=10_000, resolution=16)
"""

from nasnc.data._augment import DeviceTransform, random_crop_flip
from nasnc.data._datasets import (
    DATASETS,
    DatasetSpec,
    ProxyData,
    load_dataset,
    locate_dataset,
    resolve_data_root,
)
from nasnc.data._download import ARCHIVES, Archive, download_archive

__all__ = [
    "ARCHIVES",
    "DATASETS",
    "Archive",
    "DatasetSpec",
    "DeviceTransform",
    "ProxyData",
    "download_archive",
    "load_dataset",
    "locate_dataset",
    "random_crop_flip",
    "resolve_data_root",
]
