"""Benchmark files that are pickles are named in a warning before they are opened."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nasnc import BenchmarkError
from nasnc.bench import open_benchmark


@pytest.mark.parametrize("name", ["NAS-Bench-201-v1_1-096897.pth", "NATS-tss.pickle.pbz2"])
def test_opening_a_pickle_warns_naming_the_file(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / name
    path.write_bytes(b"not a pickle")
    with caplog.at_level(logging.WARNING, logger="nasnc.bench"), pytest.raises(BenchmarkError):
        open_benchmark(path)
    assert f"{path} is a Python pickle: loading it can run code" in caplog.text


def test_tables_and_builtin_do_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "t.h5"
    path.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="nasnc.bench"), pytest.raises(BenchmarkError):
        open_benchmark(path)
    with caplog.at_level(logging.WARNING, logger="nasnc.bench"):
        open_benchmark("builtin")
    assert "pickle" not in caplog.text


def test_a_folder_that_is_not_nats_is_refused_before_the_pickle_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="nasnc.bench"),
        pytest.raises(
            BenchmarkError, match=rf"{tmp_path} is not a NATS-Bench directory: meta.pickle.pbz2"
        ),
    ):
        open_benchmark(tmp_path)
    assert "pickle: loading it can run code" not in caplog.text
