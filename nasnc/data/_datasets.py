"""CIFAR-10/100 and ImageNet16-120 as uint8 tensors on the training device.

Layouts read (the datasets' own formats, nothing converted on disk)::

    <root>/cifar-10-batches-py/   data_batch_1..5, test_batch         (or <root>/cifar10/...)
    <root>/cifar-100-python/      train, test                         (or <root>/cifar100/...)
    <root>/ImageNet16/            train_data_batch_1..10, val_data    (or <root>/ImageNet16-120/...)

Each file is a pickle of a dict with ``data`` (``N x 3*H*W`` uint8, R/G/B
planes) and labels (``labels`` or ``fine_labels``). They are read with a
restricted unpickler that only rebuilds numpy arrays, so a tampered file
cannot run code. ImageNet16-120 keeps the images whose label (1..1000) is at
most 120 and shifts labels to 0..119, as the benchmark does.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasnc._catalogue import CATALOGUE, dataset_info
from nasnc._errors import ConfigError, DataError
from nasnc.data._download import ARCHIVES, Archive, download_archive

__all__ = ["DATASETS", "DatasetSpec", "ProxyData", "load_dataset", "resolve_data_root"]

logger = logging.getLogger(__name__)

#: Environment variable naming the data root when none is passed.
DATA_ENV = "NASNC_DATA_DIR"


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about one dataset's files."""

    name: str
    num_classes: int
    resolution: int
    folders: tuple[str, ...]  # candidate sub-paths of the root, first is the canonical one
    train_files: tuple[str, ...]
    test_file: str
    label_key: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    archive: str | None  # key into ARCHIVES, None = no official download
    max_label: int | None = None  # keep labels <= this (1-based) and shift to 0-based


def _scaled(values: Sequence[float]) -> tuple[float, float, float]:
    a, b, c = (v / 255.0 for v in values)
    return (a, b, c)


def _catalogued(name: str, **files: Any) -> DatasetSpec:
    """A spec whose name, classes and resolution come from the dataset catalogue."""
    info = CATALOGUE[name]
    return DatasetSpec(
        name=info.name, num_classes=info.num_classes, resolution=info.resolution, **files
    )


#: The datasets nasnc reads, with the benchmark's normalisation constants.
DATASETS: dict[str, DatasetSpec] = {
    "cifar10": _catalogued(
        "cifar10",
        folders=("cifar-10-batches-py", "cifar10/cifar-10-batches-py"),
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_file="test_batch",
        label_key="labels",
        mean=_scaled((125.3, 123.0, 113.9)),
        std=_scaled((63.0, 62.1, 66.7)),
        archive="cifar10",
    ),
    "cifar100": _catalogued(
        "cifar100",
        folders=("cifar-100-python", "cifar100/cifar-100-python"),
        train_files=("train",),
        test_file="test",
        label_key="fine_labels",
        mean=_scaled((129.3, 124.1, 112.4)),
        std=_scaled((68.2, 65.4, 70.4)),
        archive="cifar100",
    ),
    "ImageNet16-120": _catalogued(
        "ImageNet16-120",
        folders=("ImageNet16", "ImageNet16-120", "ImageNet16-120/ImageNet16", "imagenet16-120"),
        train_files=tuple(f"train_data_batch_{i}" for i in range(1, 11)),
        test_file="val_data",
        label_key="labels",
        mean=_scaled((122.68, 116.66, 104.01)),
        std=_scaled((63.22, 61.26, 65.09)),
        archive=None,
        max_label=120,
    ),
}


def _spec(name: str) -> DatasetSpec:
    return DATASETS[dataset_info(name).name]


# --------------------------------------------------------------------------- reading
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and plain containers, nothing else."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")
        # numpy 2 moved numpy.core to numpy._core: try the spelling this numpy prefers first
        new_first = np.lib.NumpyVersion(np.__version__) >= "2.0.0"
        if module.endswith("core.multiarray"):
            spellings = ["numpy._core.multiarray", "numpy.core.multiarray"]
            module, other = spellings if new_first else spellings[::-1]
        else:
            other = module
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return super().find_class(other, name)


def _read_batch(path: Path, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch as ``uint8 [N, 3, H, W]`` images and ``int64 [N]`` labels."""
    try:
        with path.open("rb") as f:
            obj = _ArrayUnpickler(f, encoding="latin1").load()
    except (OSError, zlib.error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    except Exception as exc:  # a damaged pickle can raise almost anything (MemoryError too)
        raise DataError(f"{path} is corrupt or truncated: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict) or "data" not in obj or spec.label_key not in obj:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise DataError(
            f"{path} is not a {spec.name} batch: expected keys 'data' and "
            f"{spec.label_key!r}, but got {keys}"
        )
    res = spec.resolution
    data = np.asarray(obj["data"])
    labels = np.asarray(obj[spec.label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * res * res:
        raise DataError(
            f"{path}: 'data' must be uint8 of shape (N, {3 * res * res}), "
            f"but got dtype={data.dtype} shape={data.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise DataError(f"{path}: {data.shape[0]} images but labels of shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):  # 1.7 is no class
        raise DataError(f"{path}: labels must be integers, but got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if spec.max_label is not None:
        keep = labels <= spec.max_label
        data, labels = data[keep], labels[keep] - 1
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise DataError(
            f"{path}: labels must lie in 0..{spec.num_classes - 1}, "
            f"but got range {labels.min()}..{labels.max()}"
        )
    return data.reshape(-1, 3, res, res), labels


def _read_many(paths: Sequence[Path], spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    parts = [_read_batch(p, spec) for p in paths]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _downsample(x: np.ndarray, resolution: int) -> np.ndarray:
    """Average ``f x f`` blocks (``f = native / resolution``), rounding half up; stays uint8."""
    n, c, h, _ = x.shape
    f = h // resolution
    if f == 1:
        return x
    s = x.reshape(n, c, resolution, f, resolution, f).sum(axis=(3, 5), dtype=np.uint32)
    return ((s + (f * f) // 2) // (f * f)).astype(np.uint8)


# --------------------------------------------------------------------------- roots
def resolve_data_root(root: str | Path | None, *, create: bool = False) -> Path:
    """The data root: an explicit ``root``, else ``$NASNC_DATA_DIR``, else a :class:`DataError`.

    Parameters
    ----------
    root : str, Path or None
        Explicit folder (``--data-root``); ``None`` falls back to the environment.
    create : bool, default False
        Create the folder when missing (used before a download) instead of raising.

    Raises
    ------
    DataError
        No root given and ``NASNC_DATA_DIR`` unset, or the folder does not exist.
    """
    if root is None or str(root) == "":
        env = os.environ.get(DATA_ENV, "")
        if not env:
            raise DataError(
                f"no data folder given: pass --data-root DIR (root=... in Python) or set "
                f"{DATA_ENV} to a folder holding cifar-10-batches-py/ (or cifar10/, "
                "cifar-100-python/, ImageNet16/)"
            )
        path, origin = Path(env).expanduser(), f"${DATA_ENV}"
    else:
        path, origin = Path(root).expanduser(), "the data root"
    if not path.is_dir():
        if create and not path.exists():
            try:
                path.mkdir(parents=True)
            except OSError as exc:
                raise DataError(f"cannot create {origin} {path}: {exc}") from exc
        else:
            raise DataError(
                f"{origin} {path} is not a folder; pass --data-root DIR or set {DATA_ENV}"
            )
    return path


def _find_folder(root: Path, spec: DatasetSpec) -> Path | None:
    for sub in spec.folders:
        folder = root / sub
        if folder.is_dir() and any((folder / f).is_file() for f in spec.train_files):
            return folder
    return None


def _locate(root: Path, spec: DatasetSpec, download: bool, archive: Archive | None) -> Path:
    folder = _find_folder(root, spec)
    if folder is not None:
        return folder
    looked = ", ".join(str(root / sub) for sub in spec.folders)
    if download:
        arch = archive if archive is not None else ARCHIVES.get(spec.archive or "")
        if arch is None:
            raise DataError(
                f"{spec.name} cannot be downloaded automatically (looked in {looked}); "
                "put the benchmark's files there or point --data-root / "
                f"{DATA_ENV} at a folder that holds them"
            )
        download_archive(arch, root)
        folder = _find_folder(root, spec)
        if folder is None:
            raise DataError(
                f"the downloaded {arch.archive_name} did not provide {spec.name} "
                f"training files in {looked}"
            )
        return folder
    hint = " or download=True (--download)" if spec.archive else ""
    raise DataError(
        f"{spec.name} training files not found; looked in {looked}. Pass --data-root DIR "
        f"(root=...) or set {DATA_ENV} to a folder holding them{hint}."
    )


def locate_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    download: bool = False,
    archive: Archive | None = None,
) -> Path:
    """The folder holding ``name``'s training files under ``root``, reading none of them.

    The same lookup as :func:`load_dataset` (which see for the arguments), for
    a caller that checks the data is there before it creates anything (a
    study, a cache). With ``download`` a missing dataset is fetched here.

    Raises
    ------
    DataError
        No such folder, or no training files in it (the message names the
        folders searched and how to point elsewhere).
    """
    return _locate(resolve_data_root(root, create=download), _spec(name), download, archive)


# --------------------------------------------------------------------------- ProxyData
@dataclass(frozen=True)
class ProxyData:
    """A dataset held as tensors on one device, ready for batch-wise augmentation.

    Images are ``uint8 [N, 3, H, W]`` (``H = W = resolution``), labels
    ``int64 [N]``; ``mean``/``std`` are per-channel in ``[0, 1]`` units and
    are applied per batch on the device (see :class:`~nasnc.data.DeviceTransform`).
    """

    name: str
    num_classes: int
    resolution: int
    train_x: torch.Tensor
    train_y: torch.Tensor
    valid_x: torch.Tensor
    valid_y: torch.Tensor
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for xname, yname in (("train_x", "train_y"), ("valid_x", "valid_y")):
            x, y = getattr(self, xname), getattr(self, yname)
            shape = (3, self.resolution, self.resolution)
            if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != shape:
                raise DataError(
                    f"{xname} must be uint8 [N, {', '.join(map(str, shape))}], "
                    f"but got dtype={x.dtype} shape={tuple(x.shape)}"
                )
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise DataError(
                    f"{yname} must be int64 [{x.shape[0]}], "
                    f"but got dtype={y.dtype} shape={tuple(y.shape)}"
                )
            if y.device != x.device or x.device != self.train_x.device:
                raise DataError("all tensors of a ProxyData must live on one device")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise DataError(f"mean and std need 3 channels, std > 0, but got {self.std=}")

    @functools.cached_property
    def digest(self) -> str:
        """16 hex digits of SHA-256 over the images, labels, mean and std.

        Two loads share it only when a run would read the same data: another
        copy of CIFAR with the same counts (other pixels, another test-batch
        order), another seeded subset or another held-out split do not. It
        enters the cache key (computed once per object, a fraction of a second
        for all of CIFAR-10).
        """
        h = hashlib.sha256()
        h.update(repr((self.name, self.resolution, self.mean, self.std)).encode())
        for t in (self.train_x, self.train_y, self.valid_x, self.valid_y):
            h.update(repr(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.train_x.device

    @property
    def num_train(self) -> int:
        return int(self.train_x.shape[0])

    @property
    def num_valid(self) -> int:
        return int(self.valid_x.shape[0])

    def to(self, device: str | torch.device) -> ProxyData:
        """The same data on ``device`` (``self`` when already there). A CUDA device
        without an index is the current one, as ``torch.Tensor.to`` reads it."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None and torch.cuda.is_available():
            device = torch.device("cuda", torch.cuda.current_device())
        same_type = device.type == self.device.type
        if device == self.device or (same_type and (device.index is None or device.type == "cpu")):
            return self
        return ProxyData(
            name=self.name,
            num_classes=self.num_classes,
            resolution=self.resolution,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            valid_x=self.valid_x.to(device),
            valid_y=self.valid_y.to(device),
            mean=self.mean,
            std=self.std,
            source=self.source,
        )


def _check_count(name: str, value: int | None, *, allow_zero: bool = False) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an int or None, but got {name}={value!r}.")
    if value < (0 if allow_zero else 1):
        low = ">= 0" if allow_zero else ">= 1"
        raise ConfigError(f"{name} must be {low}, but got {name}={value}.")
    return int(value)


def _pick(n_total: int, n: int, mode: str, gen: torch.Generator) -> np.ndarray:
    """Indices of ``n`` of ``n_total`` items: the first ``n`` or a seeded sorted sample."""
    if mode == "first":
        return np.arange(n)
    return np.sort(torch.randperm(n_total, generator=gen)[:n].numpy())


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    train_subset: int | None = None,
    subset_mode: str = "first",
    valid_size: int | None = 2000,
    valid_from: str = "test",
    resolution: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    download: bool = False,
    archive: Archive | None = None,
) -> ProxyData:
    """Load a dataset as uint8 tensors on ``device``.

    Parameters
    ----------
    name : str
        ``"cifar10"`` (alias ``"cifar10-valid"``: same files), ``"cifar100"`` or
        ``"ImageNet16-120"`` (case-insensitive).
    root : str, Path or None
        Data root holding the dataset folder (see the module docstring);
        ``None`` reads ``$NASNC_DATA_DIR``.
    train_subset : int or None
        Keep this many training images (``None``: all that are present).
    subset_mode : {"first", "seeded"}
        ``"first"`` keeps the first images in file order; ``"seeded"`` draws a
        sample with ``seed`` (applies to the held-out split too).
    valid_size : int or None, default 2000
        Number of validation images (``None``: the whole test file; ``0``: none).
    valid_from : {"test", "train"}
        ``"test"`` takes the first ``valid_size`` images of the test file;
        ``"train"`` holds out ``valid_size`` training images (the last ones, or
        a seeded sample) that never appear in the training set.
    resolution : int or None
        Target side in pixels, a divisor of the native one; lower resolutions
        average ``f x f`` blocks once at load time (e.g. 16 from 32 px).
    device : str or torch.device
        Where the tensors are placed.
    seed : int
        Seed of the subset draw (``subset_mode="seeded"``).
    download : bool, default False
        Fetch the official archive into ``root`` when the files are missing
        (CIFAR only), checking its MD5.
    archive : Archive or None
        Override the download source (a mirror or a ``file://`` URL).

    Returns
    -------
    ProxyData

    Raises
    ------
    DataError
        Missing, corrupt or truncated files (the message names the file or the
        folders searched and how to point elsewhere).
    ConfigError
        An invalid option value.
    """
    spec = _spec(name)
    if subset_mode not in ("first", "seeded"):
        raise ConfigError(f"subset_mode must be 'first' or 'seeded', but got {subset_mode=}.")
    if valid_from not in ("test", "train"):
        raise ConfigError(f"valid_from must be 'test' or 'train', but got {valid_from=}.")
    train_subset = _check_count("train_subset", train_subset)
    valid_size = _check_count("valid_size", valid_size, allow_zero=True)
    if valid_from == "train" and valid_size is None:
        raise ConfigError("valid_from='train' needs a valid_size, but got valid_size=None.")
    res = spec.resolution
    if resolution is not None:
        res = int(_check_count("resolution", resolution) or 0)
    if spec.resolution % res:
        raise ConfigError(
            f"resolution must divide {spec.name}'s native {spec.resolution} px, "
            f"but got {resolution=}."
        )
    dev = torch.device(device)

    folder = locate_dataset(spec.name, root, download=download, archive=archive)
    present = [(folder / f).is_file() for f in spec.train_files]
    train_paths = [folder / f for f, ok in zip(spec.train_files, present) if ok]
    if any(present[i + 1] and not present[i] for i in range(len(present) - 1)):
        logger.warning(  # a prefix (data_batch_1 alone) is a subset; a gap looks like a loss
            "%s: training files missing between present ones in %s: %s",
            spec.name,
            folder,
            ", ".join(f for f, ok in zip(spec.train_files, present) if not ok),
        )
    x, y = _read_many(train_paths, spec)
    logger.info(
        "%s: loaded %d training images from %d file(s) in %s (%s)",
        spec.name,
        len(y),
        len(train_paths),
        folder,
        ", ".join(p.name for p in train_paths),
    )
    gen = torch.Generator().manual_seed(int(seed))

    if valid_from == "train" and valid_size is not None:
        if valid_size >= len(y):
            raise ConfigError(
                f"valid_size must leave training images out of the {len(y)} in {folder}, "
                f"but got {valid_size=}."
            )
        if subset_mode == "first":
            held = np.arange(len(y) - valid_size, len(y))
        else:
            held = np.sort(torch.randperm(len(y), generator=gen)[:valid_size].numpy())
        mask = np.ones(len(y), dtype=bool)
        mask[held] = False
        vx, vy = x[held], y[held]
        x, y = x[mask], y[mask]
    else:
        test_path = folder / spec.test_file
        if valid_size == 0:
            vx = np.zeros((0, 3, spec.resolution, spec.resolution), np.uint8)
            vy = np.zeros(0, np.int64)
        elif not test_path.is_file():
            raise DataError(
                f"{test_path} is missing; it provides the validation images "
                "(or use valid_from='train' to hold out training images)"
            )
        else:
            vx, vy = _read_batch(test_path, spec)
            if valid_size is not None:
                if valid_size > len(vy):
                    raise ConfigError(
                        f"valid_size must be at most the {len(vy)} images in {test_path}, "
                        f"but got {valid_size=}."
                    )
                vx, vy = vx[:valid_size], vy[:valid_size]

    if train_subset is not None:
        if train_subset > len(y):
            raise ConfigError(
                f"train_subset must be at most the {len(y)} training images available in "
                f"{folder}, but got {train_subset=}."
            )
        keep = _pick(len(y), train_subset, subset_mode, gen)
        x, y = x[keep], y[keep]

    x, vx = _downsample(x, res), _downsample(vx, res)
    logger.info(
        "%s: %d train / %d valid images at %d px on %s", spec.name, len(y), len(vy), res, dev
    )
    return ProxyData(
        name=spec.name,
        num_classes=spec.num_classes,
        resolution=res,
        train_x=torch.from_numpy(np.ascontiguousarray(x)).to(dev),
        train_y=torch.from_numpy(np.ascontiguousarray(y)).to(dev),
        valid_x=torch.from_numpy(np.ascontiguousarray(vx)).to(dev),
        valid_y=torch.from_numpy(np.ascontiguousarray(vy)).to(dev),
        mean=spec.mean,
        std=spec.std,
        source=str(folder),
    )
