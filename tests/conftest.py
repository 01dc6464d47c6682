"""Shared fixtures: the read-only real data in ../shared/data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NASNC_SHARED_DATA", REPO.parent / "shared" / "data"))


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
def shared_data() -> Path:
    """Root of ../shared/data (CIFAR-10, the NB201 table, the NATS miniature)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nb201_csv(shared_data: Path) -> Path:
    return shared_data / "nb201" / "nb201_dev.csv"


@pytest.fixture(scope="session")
def cifar_root(shared_data: Path) -> Path:
    """A data root holding ``cifar-10-batches-py/`` (the layout the loaders expect)."""
    return shared_data / "cifar10"
