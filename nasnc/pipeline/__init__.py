"""One architecture through the proxy, as a library call (no Optuna).

``ProxyConfig`` says what determines a result; ``evaluate_arch`` trains (or
reads from the cache) and returns the :class:`~nasnc.store.Entry`.
"""

from nasnc.pipeline._config import DATASET_CLASSES, ProxyConfig
from nasnc.pipeline._evaluate import (
    Evaluation,
    ReportPoint,
    evaluate_arch,
    load_proxy_data,
    proxy_key,
    resolved_config,
)

__all__ = [
    "DATASET_CLASSES",
    "Evaluation",
    "ProxyConfig",
    "ReportPoint",
    "evaluate_arch",
    "load_proxy_data",
    "proxy_key",
    "resolved_config",
]
