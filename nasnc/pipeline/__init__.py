"""One architecture through the proxy, as a library call (no Optuna).

``ProxyConfig`` says what determines a result; ``evaluate_arch`` trains (or
reads from the cache) and returns the :class:`~nasnc.store.Entry`;
``screen_archs`` scores many cells at initialisation (cached, no training).
"""

from nasnc.pipeline._config import DATASET_CLASSES, SNAPSHOT_MODES, ProxyConfig
from nasnc.pipeline._evaluate import (
    Evaluation,
    ReportPoint,
    beta_eff_from_snapshots,
    evaluate_arch,
    load_proxy_data,
    proxy_key,
    resolved_config,
    run_precision,
)
from nasnc.pipeline._screen import (
    ScreenResult,
    score_only_entry,
    screen_archs,
    screen_config,
    threads_per_worker,
    usable_cores,
)

__all__ = [
    "DATASET_CLASSES",
    "SNAPSHOT_MODES",
    "Evaluation",
    "ProxyConfig",
    "ReportPoint",
    "ScreenResult",
    "beta_eff_from_snapshots",
    "evaluate_arch",
    "load_proxy_data",
    "proxy_key",
    "resolved_config",
    "run_precision",
    "score_only_entry",
    "screen_archs",
    "screen_config",
    "threads_per_worker",
    "usable_cores",
]
