"""A small, learnable synthetic dataset in the benchmarks' own file layout (a test double).

:func:`make_synthetic_dataset` writes what :func:`nasnc.data.load_dataset`
reads — for CIFAR-10 ``<root>/cifar-10-batches-py/{data_batch_1, test_batch,
batches.meta}``, pickled dicts with ``data`` (``N x 3*H*W`` uint8, R/G/B
planes) and ``labels`` — so every code path that trains on images can be
tested without the real files. Each class has its own colour and its own
stripe pattern (orientation and frequency; with more than 12 classes the
pair is unique), drawn with a random phase, brightness and per-pixel noise,
so a tiny network learns it well above chance in a few epochs, at 32 px and
after downsampling to 8 px alike (where real CIFAR-10 stays near chance).
The images are not CIFAR: never report a result measured on them.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np

from nasnc._errors import ConfigError, DataError
from nasnc.data._datasets import DatasetSpec, _spec

__all__ = ["make_synthetic_dataset"]

#: Images per training file, as in the official CIFAR-10 batches.
_PER_FILE = 10_000

#: Stripe patterns: (orientation, cycles per image side); horizontal flips keep each one.
_PATTERNS: tuple[tuple[str, int], ...] = tuple(
    (orient, cycles) for cycles in (1, 2, 3, 4) for orient in ("rows", "cols", "checks")
)


#: Ten class colours (0..255): the corners of an RGB cube, mid grey and orange.
_COLOURS = np.array(
    [[r, g, b] for r in (50, 205) for g in (50, 205) for b in (50, 205)]
    + [[128, 128, 128], [205, 128, 50]],
    np.float32,
)


def _palette(num_classes: int) -> np.ndarray:
    """``[num_classes, 3]`` mean colours: class ``c`` takes colour ``c % 10``."""
    return _COLOURS[np.arange(num_classes) % len(_COLOURS)]


def _pattern_of_class(num_classes: int) -> np.ndarray:
    """``[num_classes]`` pattern indices, so that (colour, pattern) differs between classes."""
    c = np.arange(num_classes)
    if num_classes <= len(_PATTERNS):
        return c  # each class its own pattern
    return (c // len(_COLOURS)) % len(_PATTERNS)  # a new pattern per round of ten colours


def _images(
    labels: np.ndarray, spec: DatasetSpec, rng: np.random.Generator, noise: float
) -> np.ndarray:
    n, res = len(labels), spec.resolution
    colours = _palette(spec.num_classes)[labels]  # [n, 3]
    patterns = _pattern_of_class(spec.num_classes)[labels]  # [n]
    grid = np.arange(res, dtype=np.float32) / res  # [res]
    phase = rng.uniform(0.0, 2 * math.pi, size=(n, 1, 1)).astype(np.float32)
    stripes = np.empty((n, res, res), np.float32)
    for k, (orient, cycles) in enumerate(_PATTERNS):
        idx = np.flatnonzero(patterns == k)
        if idx.size == 0:
            continue
        rows = np.cos(2 * math.pi * cycles * grid[None, :, None] + phase[idx])
        cols = np.cos(2 * math.pi * cycles * grid[None, None, :] + phase[idx])
        if orient == "rows":
            wave = np.broadcast_to(rows, (idx.size, res, res))
        elif orient == "cols":
            wave = np.broadcast_to(cols, (idx.size, res, res))
        else:
            wave = rows * cols
        stripes[idx] = wave
    brightness = rng.normal(0.0, 12.0, size=(n, 1, 1, 1)).astype(np.float32)
    x = colours[:, :, None, None] + 45.0 * stripes[:, None] + brightness
    x += rng.normal(0.0, noise, size=x.shape).astype(np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(n, 3 * res * res)


def _labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Balanced classes (counts differ by at most one), in a shuffled order."""
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def _write(path: Path, obj: dict[str, object]) -> None:
    # protocol 2, as the official (Python 2) files; written then renamed, never half a file
    part = path.with_name(path.name + ".part")
    with part.open("wb") as f:
        pickle.dump(obj, f, protocol=2)
    part.replace(path)


def _check_count(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an int >= {low}, but got {name}={value!r}.")
    return int(value)


def make_synthetic_dataset(
    root: str | Path,
    name: str = "cifar10",
    *,
    num_train: int = 2000,
    num_test: int = 2000,
    seed: int = 0,
    noise: float = 40.0,
    overwrite: bool = False,
) -> Path:
    """Write a seeded synthetic dataset into ``root`` in the layout ``name`` is read from.

    Parameters
    ----------
    root : str or Path
        Data root (created when missing); pass the same folder to
        :func:`nasnc.data.load_dataset`.
    name : str, default "cifar10"
        ``"cifar10"``, ``"cifar100"`` or ``"ImageNet16-120"`` (the names
        ``load_dataset`` accepts). CIFAR-10 training images go to
        ``data_batch_1``, ``data_batch_2``, ... 10,000 per file as in the
        official archive; CIFAR-100 writes ``train``/``test``/``meta``.
    num_train, num_test : int
        Number of training and test images (classes balanced, shuffled); the
        defaults cover load_dataset's default of 2000 validation images.
    seed : int
        The same arguments always write the same bytes.
    noise : float, default 40.0
        Standard deviation of the per-pixel noise (0..255 units); the class
        signal (colour and stripes) has an amplitude of about 45-100.
    overwrite : bool, default False
        Replace the dataset's files when the folder already holds some
        (otherwise a :class:`~nasnc.DataError`, so real data is never replaced).

    Returns
    -------
    Path
        The dataset folder written, e.g. ``root / "cifar-10-batches-py"``.

    Examples
    --------
    >>> import tempfile
    >>> from nasnc.data import load_dataset
    >>> from nasnc.testing import make_synthetic_dataset
    >>> root = tempfile.mkdtemp()
    >>> make_synthetic_dataset(root, num_train=64, num_test=32).name
    'cifar-10-batches-py'
    >>> load_dataset("cifar10", root, valid_size=16).train_x.shape
    torch.Size([64, 3, 32, 32])
    """
    spec = _spec(name)
    num_train = _check_count("num_train", num_train, 1)
    num_test = _check_count("num_test", num_test, 0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an int, but got {seed=}.")
    if not math.isfinite(noise) or noise < 0:
        raise ConfigError(f"noise must be a finite number >= 0, but got {noise=}.")
    folder = Path(root).expanduser() / spec.folders[0]
    names = [*spec.train_files, spec.test_file]
    present = [f for f in names if (folder / f).exists()]
    if present and not overwrite:
        raise DataError(
            f"{folder} already holds {', '.join(present)}; pass overwrite=True to replace them"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {folder}: {exc}") from exc
    for f in present:
        (folder / f).unlink()

    first_label = 1 if spec.max_label is not None else 0  # ImageNet16 labels are 1-based
    label_names = [f"synthetic_{c}" for c in range(spec.num_classes)]

    def batch(n: int, stream: int, title: str) -> dict[str, object]:
        rng = np.random.default_rng([int(seed), stream])
        labels = _labels(n, spec.num_classes, rng)
        obj: dict[str, object] = {
            "batch_label": f"synthetic {title} (seed {seed}), not {spec.name}",
            "data": _images(labels, spec, rng, noise),
            spec.label_key: (labels + first_label).tolist(),
        }
        if spec.label_key == "fine_labels":
            obj["coarse_labels"] = (labels // 5).tolist()
        return obj

    # training images: files of _PER_FILE as in the official archives, the last takes the rest
    files = spec.train_files
    n_files = 1 if len(files) == 1 else min(len(files), -(-num_train // _PER_FILE))
    sizes = [_PER_FILE] * (n_files - 1) + [num_train - _PER_FILE * (n_files - 1)]
    for i, n in enumerate(sizes):
        _write(folder / files[i], batch(n, i + 1, f"training batch {i + 1} of {n_files}"))
    _write(folder / spec.test_file, batch(num_test, 0, "test batch"))
    if spec.name == "cifar10":
        meta = {"label_names": label_names, "num_cases_per_batch": _PER_FILE, "num_vis": 3072}
        _write(folder / "batches.meta", meta)
    elif spec.name == "cifar100":
        coarse = [f"synthetic_group_{g}" for g in range(spec.num_classes // 5)]
        _write(folder / "meta", {"fine_label_names": label_names, "coarse_label_names": coarse})
    return folder
