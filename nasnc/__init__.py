"""nasnc: rank and search NAS-Bench-201 architectures with neural capacitance.

The core library. It never imports Optuna: a researcher can score a list of
architectures from a notebook with :mod:`nasnc` alone. The Optuna search layer
and the ``nasnc`` command line live in the separate ``search`` package.

Sub-packages (dependencies point downwards only)::

    space        Arch value type, parsing, enumeration, canonical form
    models       network builder for any Arch (+ capacitance probe)
    data         CIFAR-10/100 and ImageNet16-120 as tensors on the device
    train        proxy training loop with observers
    capacitance  line graph, beta_eff, probe, streaming estimator
    store        HDF5 trajectory cache
    bench        ground-truth sources behind one interface
    proxies      baseline scores
    metrics      rank correlations, top-k, regret
    analysis     cached scores against the ground truth: correlations, calibration, plots
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from nasnc._errors import (
    ArchError,
    BenchmarkError,
    ConfigError,
    DataError,
    NasncError,
    StoreError,
)
from nasnc.space import Arch

try:
    __version__ = version("nasnc")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "Arch",
    "ArchError",
    "BenchmarkError",
    "ConfigError",
    "DataError",
    "NasncError",
    "StoreError",
    "__version__",
]
