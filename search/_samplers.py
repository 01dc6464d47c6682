"""Optuna samplers and pruners from their config sections, checked against the installed Optuna.

Every sampler named here handles the six categorical edge parameters
(``edge_1_0`` ... ``edge_3_2``): TPE, random, GP (categorical kernels),
NSGA-II/III (categorical crossover and mutation), brute force (enumerates the
5^6 cells) and QMC (samples categorical parameters with its independent
sampler, i.e. at random; useful only as a baseline). CMA-ES is left out: it
samples categorical parameters independently at random.

Keyword arguments are passed through to the Optuna constructor; a name the
installed Optuna does not accept is refused with the key path
(``sampler.kwargs.<key>``) and the accepted names.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from nasnc import ConfigError

from ._config import PrunerConfig, SamplerConfig
from ._pruner import CapacitancePruner

__all__ = ["make_pruner", "make_sampler", "sampler_class"]

logger = logging.getLogger(__name__)

_SAMPLERS: dict[str, str] = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "gp": "GPSampler",
    "nsga2": "NSGAIISampler",
    "nsga3": "NSGAIIISampler",
    "bruteforce": "BruteForceSampler",
    "qmc": "QMCSampler",
}
#: The ``pruner`` options beside ``name`` and ``kwargs``, and the pruners that read each.
_PRUNER_OPTIONS: dict[str, tuple[str, ...]] = {
    "percentile": ("capacitance",),
    "use_uncertainty": ("capacitance",),
    "k": ("capacitance",),
    "z": ("capacitance",),
    "n_startup_trials": ("capacitance", "median"),
    "n_warmup_steps": ("capacitance", "median"),
    "interval_steps": ("capacitance", "median"),
}
_PRUNERS: dict[str, str] = {
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
}


def sampler_class(name: str) -> type[optuna.samplers.BaseSampler]:
    """The Optuna sampler class configured by ``name``."""
    try:
        cls: type[optuna.samplers.BaseSampler] = getattr(optuna.samplers, _SAMPLERS[name])
    except (KeyError, AttributeError):
        raise ConfigError(
            f"sampler.name must be one of {', '.join(_SAMPLERS)} (in Optuna "
            f"{optuna.__version__}), but got {name!r}"
        ) from None
    return cls


def _checked_kwargs(
    where: str, fn: Callable[..., Any], kwargs: Mapping[str, Any], reserved: tuple[str, ...] = ()
) -> dict[str, Any]:
    params = {
        p.name: p
        for p in inspect.signature(fn).parameters.values()
        if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    out = dict(kwargs)
    for key, value in kwargs.items():
        if key not in params or key in reserved:
            known = [a for a in params if a not in reserved]
            raise ConfigError(
                f"{where}.kwargs.{key}: not an argument of {getattr(fn, '__qualname__', fn)} "
                f"(Optuna {optuna.__version__}); accepted: {', '.join(known) or 'none'}"
            )
        out[key] = _typed_kwarg(f"{where}.kwargs.{key}", params[key].annotation, value)
    return out


#: Annotations of Optuna's arguments a config value is checked against (others,
#: such as callables, cannot come from a YAML file anyway and pass unchecked).
_PLAIN_TYPES = {"int", "float", "bool", "str", "None"}


def _typed_kwarg(where: str, annotation: Any, value: Any) -> Any:
    """``value`` checked against an argument's plain annotation (``int``, ``float |
    None``, ``str | int``...), so that a bad value is named at config time instead of
    failing inside Optuna after the first trials; an integral float is taken for int."""
    if annotation is inspect.Parameter.empty:
        return value
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    types = {t.strip() for t in str(text).split("|")}
    if not types <= _PLAIN_TYPES:
        return value
    if value is None and "None" in types:
        return value
    if isinstance(value, bool):
        if "bool" in types:
            return value
    elif isinstance(value, int):
        if types & {"int", "float"}:
            return value
    elif isinstance(value, float):
        if "float" in types:
            return value
        if "int" in types and value.is_integer():
            return int(value)
    elif isinstance(value, str) and "str" in types:
        return value
    raise ConfigError(f"{where} must be {' | '.join(sorted(types))}, but got {value!r}")


def make_sampler(config: SamplerConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded; TPE gets ``constant_liar`` unless told otherwise.

    A constant liar makes TPE workers treat running trials as bad, so that
    parallel workers, in this process or on other machines sharing the
    storage, do not all propose the same cell (Optuna's advice for
    distributed TPE, and Optuna 5.0's own default); a single sequential worker
    never sees a running trial, so it changes nothing there.
    ``sampler.kwargs.constant_liar`` overrides it.
    """
    cls = sampler_class(config.name)
    kwargs = _checked_kwargs("sampler", cls.__init__, config.kwargs, reserved=("seed",))
    if config.name in ("tpe", "gp"):
        kwargs.setdefault("n_startup_trials", config.n_startup_trials)
    if config.name == "tpe":
        kwargs.setdefault("constant_liar", True)
    with warnings.catch_warnings():  # GP, NSGA-III and QMC are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            sampler: optuna.samplers.BaseSampler = cls(seed=seed, **kwargs)  # type: ignore[call-arg]
            return sampler
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"sampler {config.name!r} with kwargs {kwargs}: {exc}") from None


def make_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    """The configured pruner (see :class:`~nasnc_search.PrunerConfig`).

    An option set away from its default that the named pruner does not read
    (``percentile`` with ``median``, say) is logged as ignored.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(PrunerConfig)}
    ignored = [
        f"{key}={getattr(config, key)!r}"
        for key, readers in _PRUNER_OPTIONS.items()
        if config.name not in readers and getattr(config, key) != defaults[key]
    ]
    if ignored:
        logger.warning(
            "pruner %r ignores %s", config.name, ", ".join(f"pruner.{i}" for i in ignored)
        )
    if config.name == "none":
        return optuna.pruners.NopPruner()
    if config.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=config.n_startup_trials,
            n_warmup_steps=config.n_warmup_steps,
            interval_steps=config.interval_steps,
        )
    if config.name in _PRUNERS:
        cls = getattr(optuna.pruners, _PRUNERS[config.name])
        kwargs = _checked_kwargs("pruner", cls.__init__, config.kwargs)
        # Optuna's Hyperband accepts these and divides by them only once trials report
        for key, least in (("min_resource", 1), ("max_resource", 1), ("reduction_factor", 2)):
            value = kwargs.get(key)
            if isinstance(value, str) and (value != "auto" or key == "reduction_factor"):
                raise ConfigError(
                    f"pruner.kwargs.{key} must be a number"
                    + (" or 'auto'" if key != "reduction_factor" else "")
                    + f", but got {key}={value!r}"
                )
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < least:
                raise ConfigError(
                    f"pruner.kwargs.{key} must be >= {least}"
                    + (" or 'auto'" if key != "reduction_factor" else "")
                    + f", but got {key}={value!r}"
                )
        try:
            pruner: optuna.pruners.BasePruner = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"pruner {config.name!r} with kwargs {kwargs}: {exc}") from None
        return pruner
    return CapacitancePruner(
        config.percentile,
        n_startup_trials=config.n_startup_trials,
        n_warmup_steps=config.n_warmup_steps,
        interval_steps=config.interval_steps,
        use_uncertainty=config.use_uncertainty,
        k=config.k,
        z=config.z,
    )
