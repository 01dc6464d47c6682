"""Typed, validated dataclasses from plain mappings (YAML, JSON, CLI overrides).

``from_mapping(cls, data, where="proxy")`` builds a frozen dataclass from a
mapping, rejecting unknown keys (with a close-match suggestion) and values of
the wrong type, naming the offending key path and value in a
:class:`~nasnc.ConfigError`. Supported field types: ``int``, ``float``,
``bool``, ``str``, ``X | None``, ``tuple[int, ...]``/``tuple[str, ...]``,
``Literal[...]`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeGuard, TypeVar, get_args, get_origin, get_type_hints

from nasnc._errors import ConfigError

__all__ = ["DEFAULT_CACHE", "SEED_BOUND", "check_int", "from_mapping", "is_real", "to_mapping"]

#: Where the HDF5 trajectory cache lives unless a config or ``--cache`` says otherwise.
DEFAULT_CACHE = "runs/cache"

#: Seeds lie in ``[0, SEED_BOUND)``: numpy, torch and Optuna take a signed 64-bit int.
SEED_BOUND = 2**63

T = TypeVar("T")


def is_real(value: object) -> TypeGuard[float]:
    """Whether ``value`` is a real number (Python's or numpy's), a bool not counted."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: object, *, low: int = 0, high: int | None = None) -> int:
    """``value`` as an int when it is an integer (Python's or numpy's, not a bool) in
    ``[low, high)``; a :class:`ConfigError` naming ``name`` and the value otherwise
    (2.5 is not truncated to 2, nor True read as 1)."""
    number = (
        int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else None
    )
    if number is None or number < low or (high is not None and number >= high):
        if high is not None:
            big_power = high > 2**20 and high & (high - 1) == 0  # a seed's 2**63, as written
            kind = f"an integer in [{low}, {f'2**{high.bit_length() - 1}' if big_power else high})"
        else:
            kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
                low, f"an integer >= {low}"
            )
        raise ConfigError(f"{name} must be {kind}, but got {name}={value!r}.")
    return number


def _unknown_key(where: str, key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
    return ConfigError(f"unknown key {_path(where, key)!r}{hint}")


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{path}: bad value {value!r}")
    if origin is typing.Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(
                f"{path} must be one of {', '.join(map(repr, choices))}, but got {value!r}"
            )
        return value
    if origin is tuple:
        (item_tp, *_rest) = get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, but got {value!r}")
        return tuple(_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping, but got {value!r}")
        return from_mapping(tp, value, where=path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{path} must be true or false, but got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{path} must be an integer, but got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{path} must be an integer, but got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path} must be a number, but got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path} must be a number, but got {value!r}") from None
        if not math.isfinite(out):
            raise ConfigError(f"{path} must be finite, but got {value!r}")
        return out
    if tp is str:
        if not isinstance(value, str):
            hint = (  # study_name: 1e5 is read by YAML as the number 100000.0
                "; YAML reads an unquoted 1e5, 12 or true as a number or a flag: quote it"
                if isinstance(value, (int, float))
                else ""
            )
            raise ConfigError(f"{path} must be a string, but got {value!r}{hint}")
        return value
    return value  # pragma: no cover - unsupported annotations pass through


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad values raise ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'} must be a mapping, but got {data!r}")
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    given: dict[str, str] = {}
    for spelled, value in data.items():
        key = str(spelled).replace("-", "_")
        if key not in fields:
            raise _unknown_key(where, key, sorted(fields))
        if key in kwargs:  # n_trials and n-trials: one key, given twice
            raise ConfigError(
                f"{_path(where, key)} is given twice (as {given[key]!r} and {str(spelled)!r})"
            )
        given[key] = str(spelled)
        kwargs[key] = _coerce(value, hints[key], _path(where, key))
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if where and not str(exc).startswith(where):
            raise ConfigError(f"{where}.{exc}") from None
        raise


def to_mapping(obj: Any) -> dict[str, Any]:
    """A JSON-serialisable dict of a (nested) dataclass; tuples become lists."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): convert(v) for k, v in value.items()}
        return value

    out = convert(obj)
    if not isinstance(out, dict):
        raise TypeError(f"{obj!r} is not a dataclass instance")
    return out
