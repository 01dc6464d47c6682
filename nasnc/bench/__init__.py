"""Ground truth: what NAS-Bench-201 cells reach after full training, behind one interface.

Sources (:func:`open_benchmark`):

==========  =======================================================  ==========================
kind        what                                                     needs
==========  =======================================================  ==========================
builtin     200-epoch validation accuracy per seed (cifar10-valid,    ``nasnc[bench]``, offline
            cifar100, ImageNet16-120), params, latency, train time
nb201       the official NAS-Bench-201 ``.pth`` (everything, curves)  ``nasnc[nb201]``, the file
nats        NATS-Bench ``tss`` directory or file (everything)         ``nasnc[nb201]``, the file
table       an HDF5 table made by ``nasnc bench import`` (no pickle)  h5py
==========  =======================================================  ==========================

Every source answers :meth:`GroundTruth.get` / :meth:`GroundTruth.query` by
:class:`~nasnc.space.Arch`, :class:`Dataset`, :class:`Metric`, ``epochs`` and
:class:`Schedule`; see :mod:`nasnc.bench._types` for the splits and the
traps of the official API that nasnc handles (``hp='12'``, ``is_random``,
``cifar10`` vs ``cifar10-valid``, index order). Rank correlations against it,
calibration and plots are analysis: :mod:`nasnc.analysis`.

>>> from nasnc.bench import open_benchmark, Dataset
>>> bench = open_benchmark("builtin")
>>> arch, acc = bench.best(Dataset.CIFAR10_VALID)
>>> round(acc, 2)
91.61
"""

from nasnc.bench._builtin import BuiltinBenchmark
from nasnc.bench._official import NATSBenchmark, NB201Benchmark
from nasnc.bench._open import open_benchmark
from nasnc.bench._table import (
    TABLE_FORMAT,
    TABLE_SCHEMA_VERSION,
    TableBenchmark,
    import_table,
    is_table,
)
from nasnc.bench._types import (
    ACCURACY_METRICS,
    COST_METRICS,
    Dataset,
    GroundTruth,
    Metric,
    Schedule,
    missing_reason,
    parse_arch_or_index,
)

__all__ = [
    "ACCURACY_METRICS",
    "COST_METRICS",
    "TABLE_FORMAT",
    "TABLE_SCHEMA_VERSION",
    "BuiltinBenchmark",
    "Dataset",
    "GroundTruth",
    "Metric",
    "NATSBenchmark",
    "NB201Benchmark",
    "Schedule",
    "TableBenchmark",
    "import_table",
    "is_table",
    "missing_reason",
    "open_benchmark",
    "parse_arch_or_index",
]
