"""The study configuration: ``configs/*.yaml`` into a typed, validated ``SearchConfig``.

A config file is a YAML mapping::

    study_name: quickstart        # Optuna study name
    storage: null                 # default sqlite:///runs/<study_name>.db
    n_trials: 12                  # total trials of the study (a rerun resumes to this count)
    workers: 1                    # worker processes on this machine
    device: auto                  # auto | cpu | cuda | cuda:1 | mps
    data_root: null               # else $NASNC_DATA_DIR
    cache: runs/cache             # HDF5 trajectory cache
    seed: 0
    benchmark: null               # ground truth for the summary: builtin | FILE
    proxies: []                   # baseline proxies stored beside βeff
    threads: null                 # torch threads per worker (null: cores // workers)
    download: false               # fetch CIFAR into data_root when missing
    sampler: {name: tpe, n_startup_trials: 5}
    pruner: {name: capacitance, percentile: 75, n_startup_trials: 4, n_warmup_steps: 1}
    proxy: {...}                  # nasnc.pipeline.ProxyConfig fields

Unknown keys and bad values raise :class:`~nasnc.ConfigError` naming the key
path (``proxy.epochs``) and the value. CLI options override the file through
:func:`apply_overrides`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from nasnc._config import from_mapping, to_mapping
from nasnc._errors import ConfigError
from nasnc.pipeline import ProxyConfig

__all__ = [
    "PrunerConfig",
    "SamplerConfig",
    "SearchConfig",
    "apply_overrides",
    "load_config",
]

_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class SamplerConfig:
    """Optuna sampler: ``tpe`` (default) or ``random``; seeded by the study seed."""

    name: Literal["tpe", "random"] = "tpe"
    n_startup_trials: int = 5

    def __post_init__(self) -> None:
        if self.n_startup_trials < 0:
            raise ConfigError(
                f"n_startup_trials must be >= 0, but got n_startup_trials={self.n_startup_trials}"
            )


@dataclass(frozen=True)
class PrunerConfig:
    """Pruner: ``capacitance`` (CapacitancePruner), ``median`` (Optuna's) or ``none``."""

    name: Literal["capacitance", "median", "none"] = "capacitance"
    #: percentage of peers kept (Optuna's meaning): 75 prunes the bottom 25 %
    percentile: float = 75.0
    n_startup_trials: int = 5
    n_warmup_steps: int = 1
    interval_steps: int = 1
    use_uncertainty: bool = False
    k: int = 1
    z: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.percentile <= 100:
            raise ConfigError(
                f"percentile must be in [0, 100], but got percentile={self.percentile}"
            )
        for name in ("n_startup_trials", "n_warmup_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, but got {name}={getattr(self, name)}")
        for name in ("interval_steps", "k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, but got {name}={getattr(self, name)}")
        if self.z < 0:
            raise ConfigError(f"z must be >= 0, but got z={self.z}")


@dataclass(frozen=True)
class SearchConfig:
    """Everything ``nasnc search`` needs; see the module docstring for the file layout."""

    study_name: str = "nasnc"
    storage: str | None = None
    n_trials: int = 20
    workers: int = 1
    timeout: float | None = None
    device: str = "auto"
    data_root: str | None = None
    cache: str = "runs/cache"
    seed: int = 0
    benchmark: str | None = None
    benchmark_dataset: str | None = None
    proxies: tuple[str, ...] = ()
    threads: int | None = None
    download: bool = False
    heartbeat_interval: int = 60
    heartbeat_grace: int = 300
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)

    def __post_init__(self) -> None:
        if not _STUDY_NAME.match(self.study_name):
            raise ConfigError(
                "study_name must be 1-128 characters of letters, digits, '_', '.', '-', "
                f"but got study_name={self.study_name!r}"
            )
        if self.n_trials < 1:
            raise ConfigError(f"n_trials must be >= 1, but got n_trials={self.n_trials}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, but got workers={self.workers}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"timeout must be positive, but got timeout={self.timeout}")
        if not re.match(r"^(auto|cpu|mps|cuda(:\d+)?)$", self.device):
            raise ConfigError(
                f"device must be auto, cpu, cuda, cuda:N or mps, but got device={self.device!r}"
            )
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 or null, but got threads={self.threads}")
        if self.proxies:
            from nasnc.proxies import PROXIES

            unknown = [p for p in self.proxies if p not in PROXIES]
            if unknown:
                raise ConfigError(
                    f"proxies: unknown proxy {unknown[0]!r}; known: {', '.join(PROXIES)}"
                )
        if self.benchmark_dataset is not None:
            from nasnc.bench import Dataset

            known = [d.value for d in Dataset]
            if self.benchmark_dataset not in known:
                raise ConfigError(
                    f"benchmark_dataset must be one of {', '.join(known)}, "
                    f"but got benchmark_dataset={self.benchmark_dataset!r}"
                )
        if self.heartbeat_interval < 1 or self.heartbeat_grace <= self.heartbeat_interval:
            raise ConfigError(
                "need heartbeat_interval >= 1 and heartbeat_grace > heartbeat_interval, but got "
                f"heartbeat_interval={self.heartbeat_interval}, "
                f"heartbeat_grace={self.heartbeat_grace}"
            )

    @property
    def storage_url(self) -> str:
        """The storage to use: explicit, else SQLite (one worker) or a journal file (several)."""
        if self.storage:
            return self.storage
        if self.workers > 1:
            return f"journal:runs/{self.study_name}.journal"
        return f"sqlite:///runs/{self.study_name}.db"

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)


def load_config(path: str | Path) -> SearchConfig:
    """Read and validate a YAML config file; errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path} must hold a mapping of keys, but holds {type(data).__name__}")
    try:
        return from_mapping(SearchConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def apply_overrides(config: SearchConfig, overrides: Mapping[str, Any]) -> SearchConfig:
    """A copy with the non-None ``overrides`` applied (dotted keys reach sections)."""
    data = config.to_dict()
    for key, value in overrides.items():
        if value is None:
            continue
        *sections, leaf = key.split(".")
        target = data
        for section in sections:
            target = target[section]
        target[leaf] = value
    return from_mapping(SearchConfig, data)
