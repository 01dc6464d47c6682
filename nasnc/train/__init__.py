"""Proxy training with observers: the channel through which βeff streams.

>>> from nasnc.train import Budget, train_proxy              # doctest: +SKIP
>>> result = train_proxy(model, data, Budget(epochs=8), observers=[obs])
>>> result.trajectory["valid_acc"], result.trajectory["beta_eff"]
"""

from nasnc.train._loop import BASE_COLUMNS, autocast_dtype, evaluate, train_proxy
from nasnc.train._types import (
    Budget,
    Observer,
    Report,
    TrainRecipe,
    TrainResult,
    resolve_device,
)

__all__ = [
    "BASE_COLUMNS",
    "Budget",
    "Observer",
    "Report",
    "TrainRecipe",
    "TrainResult",
    "autocast_dtype",
    "evaluate",
    "resolve_device",
    "train_proxy",
]
