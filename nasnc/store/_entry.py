"""The :class:`Entry` record, its key, and validation before it is written.

A key names one evaluation: the cell's graph form (cells that build the same
network share it, :meth:`~nasnc.space.Arch.graph_form`), the dataset, the hash
of the resolved proxy configuration and the seed. Caches written before key
format 2 keyed cells by the benchmark's coarser canonical form; their entries
stay readable under their old keys, which no new lookup produces.
Keys are 24 lowercase hex digits (96 bits of SHA-256), safe as file names.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasnc._errors import ArchError, ConfigError, StoreError
from nasnc.space import Arch
from nasnc.store._snapshots import Snapshots

__all__ = [
    "ENTRY_KINDS",
    "KEY_PATTERN",
    "REQUIRED_SUMMARY",
    "Entry",
    "canonical_json",
    "config_hash",
    "content_digest",
    "entry_kind",
    "make_key",
    "trajectory_digest",
]

#: Summary scalars every entry carries.
REQUIRED_SUMMARY: tuple[str, ...] = (
    "beta_eff",
    "beta_eff_std",
    "beta_eff_last",
    "proxy_valid_acc",
    "cost_s",
    "diverged",
)
#: What an entry is (:func:`entry_kind`): a finished run, a run a pruner stopped
#: (its trained readings are partial), a run whose loss went non-finite, or a
#: screen's free scores with nothing trained.
ENTRY_KINDS: tuple[str, ...] = ("complete", "pruned", "diverged", "score_only")


def entry_kind(record: Any) -> str:
    """The :data:`ENTRY_KINDS` member of an :class:`Entry` or an index record, read
    from its summary flags ``score_only``, ``pruned`` and ``diverged`` (in that
    order; an entry without a flag does not have it)."""
    summary = record.summary or {}
    for kind in ("score_only", "pruned", "diverged"):
        if summary.get(kind):
            return kind
    return "complete"


#: What a key looks like (also what makes a file name in the cache an entry).
KEY_PATTERN = re.compile(r"[0-9a-f]{24}")
# Bump only with a migration: changing it changes every key. 1 keyed the
# benchmark's canonical form, which merges different networks; 2 the graph form.
_KEY_FORMAT = 2
_LEGACY_KEY_FORMAT = 1


def _default_version() -> str:
    from nasnc import __version__

    return __version__


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable: {value!r}")


def _check_keys(value: Any, where: str) -> None:
    """Every mapping key in ``value`` a str: JSON turns 1 and True into "1" and "true",
    so {1: "a"} and {"1": "a"} would share one key and one cache entry."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where} keys must be strings, but got {key!r}.")
            _check_keys(inner, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, inner in enumerate(value):
            _check_keys(inner, f"{where}[{i}]")


def canonical_json(config: Mapping[str, Any]) -> str:
    """The canonical JSON text of ``config``: sorted keys, no spaces, no NaN.

    Numpy scalars and arrays become plain numbers and lists. ``1`` and ``1.0``
    stay different (they hash differently).

    Raises
    ------
    ConfigError
        ``config`` is not a mapping or holds something JSON cannot represent
        (NaN, infinity, arbitrary objects).
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config must be a mapping, but got {type(config).__name__}.")
    _check_keys(config, "config")
    try:
        return json.dumps(
            config,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
            default=_json_default,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config is not JSON-serialisable ({exc}): {config!r}") from None


def config_hash(config: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit hash of the canonical JSON of ``config``.

    Key order does not matter; any change of a value does.

    >>> config_hash({"lr": 0.1, "epochs": 8}) == config_hash({"epochs": 8, "lr": 0.1})
    True
    """
    return hashlib.sha256(canonical_json(config).encode("ascii")).hexdigest()[:16]


def make_key(arch: Arch | str, dataset: str, config: Mapping[str, Any], seed: int) -> str:
    """The cache key of one evaluation.

    Parameters
    ----------
    arch : Arch or str
        The evaluated cell (anything :meth:`Arch.parse` reads). Cells with the
        same :meth:`~nasnc.space.Arch.graph_form` build the same network and
        share the key.
    dataset : str
    config : mapping
        The resolved proxy configuration (JSON-serialisable).
    seed : int

    Returns
    -------
    str
        24 lowercase hex digits.
    """
    return _key(_KEY_FORMAT, Arch.parse(arch).graph_form(), dataset, config, seed)


def legacy_key(canonical: str, dataset: str, config: Mapping[str, Any], seed: int) -> str:
    """The key format 1 gave: over ``Arch.canonical()``, read for old caches only."""
    return _key(_LEGACY_KEY_FORMAT, canonical, dataset, config, seed)


def _key(version: int, form: str, dataset: str, config: Mapping[str, Any], seed: int) -> str:
    if not isinstance(form, str) or not form:
        raise ConfigError(f"the cell form must be a non-empty str, but got {form=}.")
    if not isinstance(dataset, str) or not dataset:
        raise ConfigError(f"dataset must be a non-empty str, but got {dataset=}.")
    seed = _as_seed(seed)
    payload = json.dumps([version, form, dataset, config_hash(config), seed])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


_INT64 = np.iinfo(np.int64)  # an HDF5 attribute holds integers of this range


def _in_int64(value: int) -> bool:
    return int(_INT64.min) <= value <= int(_INT64.max)


def _as_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an int, but got {seed=}.")
    if not _in_int64(int(seed)):
        raise ConfigError(f"seed must fit in a 64-bit signed integer, but got {seed=}.")
    return int(seed)


@dataclass(eq=False)
class Entry:
    """One cached evaluation: metadata, trajectory columns and summary scalars.

    Attributes
    ----------
    arch : str
        The benchmark string of the evaluated cell.
    canonical : str
        ``Arch.parse(arch).canonical()``.
    dataset : str
    seed : int
    config : dict
        The resolved proxy configuration, JSON-serialisable.
    trajectory : dict of str to ndarray
        Equal-length 1-D float columns, one row per report point (``step``,
        ``epoch``, ``train_loss``, ``train_acc``, ``valid_acc``, ``wall_s`` and
        every observer key such as ``beta_eff``). Stored as float64.
    summary : dict of str to float, int or bool
        At least :data:`REQUIRED_SUMMARY`. Bools and ints keep their type.
    scores : dict of str to float
        Baseline proxies (higher is better); NaN allowed.
    created : float
        Unix time of the evaluation.
    nasnc_version : str
        Version of nasnc that produced it.
    snapshots : Snapshots or None
        Float16 weight snapshots at the report points (``ProxyConfig.snapshots``),
        or ``None``. An entry read from a cache holds a lazy :class:`Snapshots`:
        nothing of it is read until it is used.
    stored_key : str or None
        The key the entry was read under, set by the cache (not an argument;
        ``dataclasses.replace`` makes a new entry without it). It is the
        entry's :attr:`key` only while it is the format-1 key of these very
        fields and arch (an entry from an old cache); otherwise the key is
        computed afresh.

    Entries compare by identity (they hold arrays); compare :attr:`key` and
    fields explicitly.
    """

    arch: str
    canonical: str
    dataset: str
    seed: int
    config: dict[str, Any]
    trajectory: dict[str, np.ndarray]
    summary: dict[str, float | bool]
    scores: dict[str, float] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    nasnc_version: str = field(default_factory=_default_version)
    snapshots: Snapshots | None = None
    stored_key: str | None = field(default=None, init=False, repr=False)
    _stored_arch: str | None = field(default=None, init=False, repr=False)

    @property
    def key(self) -> str:
        """``make_key(arch, dataset, config, seed)``, or an old cache's key (``stored_key``)."""
        key = make_key(self.arch, self.dataset, self.config, self.seed)
        old = self.stored_key
        if (
            old not in (None, key)
            and self.arch == self._stored_arch
            and old == legacy_key(self.canonical, self.dataset, self.config, self.seed)
        ):
            return old
        return key

    def mark_stored(self, key: str) -> Entry:
        """Record that the cache holds this entry under ``key`` (what a read does)."""
        self.stored_key = key
        self._stored_arch = self.arch
        return self

    @property
    def config_hash(self) -> str:
        """``config_hash(config)``."""
        return config_hash(self.config)

    @property
    def kind(self) -> str:
        """``"complete"``, ``"pruned"``, ``"diverged"`` or ``"score_only"`` (:func:`entry_kind`)."""
        return entry_kind(self)

    @property
    def n_points(self) -> int:
        """Number of trajectory rows."""
        return len(next(iter(self.trajectory.values()))) if self.trajectory else 0

    @classmethod
    def from_arch(
        cls,
        arch: Arch | str,
        *,
        dataset: str,
        seed: int,
        config: Mapping[str, Any],
        trajectory: Mapping[str, Any],
        summary: Mapping[str, float | bool],
        scores: Mapping[str, float] | None = None,
    ) -> Entry:
        """Build an entry, deriving ``arch`` and ``canonical`` from one :class:`Arch`."""
        a = Arch.parse(arch)
        return cls(
            arch=str(a),
            canonical=a.canonical(),
            dataset=dataset,
            seed=seed,
            config=dict(config),
            trajectory={k: np.asarray(v, dtype=np.float64) for k, v in trajectory.items()},
            summary=dict(summary),
            scores=dict(scores or {}),
        )


# ------------------------------------------------------------------ validation
def _check_name(kind: str, name: Any, where: str) -> str:
    if (
        not isinstance(name, str)
        or not name
        or "/" in name
        or "\x00" in name
        or name in (".", "..")
        or name != name.strip()
    ):
        raise StoreError(
            f"cannot store {where}: {kind} names must be non-empty strings without '/', "
            f"NUL or surrounding spaces, and not '.' or '..', but got {name!r}."
        )
    return name


@dataclass(frozen=True)
class _Checked:
    """An entry's fields in the exact form they are written."""

    key: str
    arch: str
    canonical: str
    dataset: str
    seed: int
    config_json: str
    config_hash: str
    trajectory: dict[str, np.ndarray]
    summary: dict[str, float | int | bool]
    scores: dict[str, float]
    created: float
    nasnc_version: str
    snapshots: Snapshots | None = None


def _utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (a lone surrogate such as '\\udc80' does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check(entry: Entry) -> _Checked:
    """Validate ``entry`` at the public boundary (``Store.put``) and normalise it."""
    if not isinstance(entry, Entry):
        raise StoreError(f"Store.put expects an Entry, but got {type(entry).__name__}.")
    if not isinstance(entry.arch, str):
        raise ArchError(f"entry.arch must be a benchmark string, but got {entry.arch!r}.")
    arch = Arch.from_str(entry.arch)
    if entry.canonical != arch.canonical():
        raise ArchError(
            f"entry.canonical {entry.canonical!r} is not the canonical form of "
            f"{entry.arch!r} ({arch.canonical()!r})."
        )
    key = entry.key
    where = f"entry {key} ({entry.arch}, {entry.dataset}, seed {entry.seed})"
    for name in ("dataset", "nasnc_version"):
        value = getattr(entry, name)
        if isinstance(value, str) and ("\x00" in value or not _utf8(value)):
            raise StoreError(  # h5py's own errors named neither field nor entry
                f"cannot store {where}: {name} must be UTF-8 text without NUL, got {value!r}."
            )
    text = canonical_json(entry.config)

    if not isinstance(entry.trajectory, Mapping):
        raise StoreError(f"cannot store {where}: trajectory must be a mapping of columns.")
    trajectory: dict[str, np.ndarray] = {}
    length: int | None = None
    for name, values in entry.trajectory.items():
        _check_name("trajectory column", name, where)
        try:
            column = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise StoreError(
                f"cannot store {where}: trajectory column {name!r} is not numeric."
            ) from None
        if column.ndim != 1:
            raise StoreError(
                f"cannot store {where}: trajectory column {name!r} must be 1-D, "
                f"but got shape {column.shape}."
            )
        if length is None:
            length = len(column)
        elif len(column) != length:
            raise StoreError(
                f"cannot store {where}: trajectory columns differ in length "
                f"({name!r} has {len(column)} rows, earlier columns {length})."
            )
        trajectory[name] = np.ascontiguousarray(column)

    if not isinstance(entry.summary, Mapping):
        raise StoreError(f"cannot store {where}: summary must be a mapping.")
    missing = [k for k in REQUIRED_SUMMARY if k not in entry.summary]
    if missing:
        raise StoreError(f"cannot store {where}: summary lacks {', '.join(map(repr, missing))}.")
    summary: dict[str, float | int | bool] = {}
    for name, value in entry.summary.items():
        _check_name("summary", name, where)
        if isinstance(value, (bool, np.bool_)):
            summary[name] = bool(value)
        elif isinstance(value, (int, np.integer)):
            if not _in_int64(int(value)):
                raise StoreError(
                    f"cannot store {where}: summary {name!r} must fit in a 64-bit signed "
                    f"integer, but got {value!r}."
                )
            summary[name] = int(value)
        elif isinstance(value, (float, np.floating)):
            summary[name] = float(value)
        else:
            raise StoreError(
                f"cannot store {where}: summary {name!r} must be a float, int or bool, "
                f"but got {value!r}."
            )

    if not isinstance(entry.scores, Mapping):
        raise StoreError(f"cannot store {where}: scores must be a mapping.")
    scores: dict[str, float] = {}
    for name, value in entry.scores.items():
        _check_name("score", name, where)
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise StoreError(
                f"cannot store {where}: score {name!r} must be a float, got {value!r}."
            )
        try:
            scores[name] = float(value)
        except OverflowError:  # an int beyond a float's range
            raise StoreError(
                f"cannot store {where}: score {name!r} is beyond a float's range, got {value!r}."
            ) from None

    created = entry.created
    if isinstance(created, bool) or not isinstance(created, (int, float)):
        raise StoreError(f"cannot store {where}: created must be a unix time, got {created!r}.")
    if not math.isfinite(created):
        raise StoreError(f"cannot store {where}: created must be finite, got {created!r}.")
    if not isinstance(entry.nasnc_version, str):
        raise StoreError(f"cannot store {where}: nasnc_version must be a str.")
    if entry.snapshots is not None and not isinstance(entry.snapshots, Snapshots):
        raise StoreError(
            f"cannot store {where}: snapshots must be a Snapshots or None, "
            f"but got {type(entry.snapshots).__name__}."
        )
    return _Checked(
        key=key,
        arch=entry.arch,
        canonical=entry.canonical,
        dataset=entry.dataset,
        seed=int(entry.seed),
        config_json=text,
        config_hash=config_hash(entry.config),
        trajectory=trajectory,
        summary=summary,
        scores=scores,
        created=float(created),
        nasnc_version=entry.nasnc_version,
        snapshots=entry.snapshots,
    )


# ------------------------------------------------------------------ integrity
def trajectory_digest(trajectory: Mapping[str, np.ndarray]) -> str:
    """SHA-256 (hex) of the trajectory: column names, order, lengths and float64 bytes."""
    h = hashlib.sha256(b"nasnc-trajectory-1")
    for name, column in trajectory.items():
        data = np.ascontiguousarray(column, dtype="<f8")
        h.update(name.encode("utf-8") + b"\x00" + len(data).to_bytes(8, "little"))
        h.update(data.tobytes())
    return h.hexdigest()


def _tagged(value: float | int | bool) -> list[Any]:
    if isinstance(value, bool):
        return ["b", int(value)]
    if isinstance(value, int):
        return ["i", str(value)]
    return ["f", float(value).hex()]


def content_digest(
    *,
    key: str,
    arch: str,
    canonical: str,
    dataset: str,
    seed: int,
    config_json: str,
    config_hash: str,
    created: float,
    nasnc_version: str,
    summary: Mapping[str, float | int | bool],
    scores: Mapping[str, float],
    trajectory_sha: str,
    snapshots_sha: str | None = None,
) -> str:
    """SHA-256 (hex) of everything an entry serves, exactly as written.

    Types are part of it (an int summary read back as a float is a mismatch)
    and so is :func:`trajectory_digest`, so the index record of an entry can
    be verified without reading its arrays, and the arrays when they are read.
    ``snapshots_sha`` (the manifest digest of its weight snapshots) enters
    only when the entry has snapshots, so digests of entries without them
    are those written before snapshots existed.
    """
    record = [
        1,
        key,
        arch,
        canonical,
        dataset,
        str(int(seed)),
        config_json,
        config_hash,
        float(created).hex(),
        nasnc_version,
        [[name, *_tagged(v)] for name, v in summary.items()],
        [[name, float(v).hex()] for name, v in scores.items()],
        trajectory_sha,
    ]
    if snapshots_sha is not None:
        record.append(["snapshots", snapshots_sha])
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def checked_digests(entry: _Checked) -> tuple[str, str]:
    """``(content_digest, trajectory_digest)`` of a validated entry."""
    traj = trajectory_digest(entry.trajectory)
    return (
        content_digest(
            key=entry.key,
            arch=entry.arch,
            canonical=entry.canonical,
            dataset=entry.dataset,
            seed=entry.seed,
            config_json=entry.config_json,
            config_hash=entry.config_hash,
            created=entry.created,
            nasnc_version=entry.nasnc_version,
            summary=entry.summary,
            scores=entry.scores,
            trajectory_sha=traj,
            snapshots_sha=None if entry.snapshots is None else entry.snapshots.digest,
        ),
        traj,
    )


def legacy_problem(
    *,
    key: str,
    arch: str,
    canonical: str,
    dataset: str,
    seed: int,
    config_json: str,
    config_hash_: str,
) -> str | None:
    """Why the identity fields of a file written without digests disagree, or ``None``.

    Files from before digests existed are checked by recomputing what can be
    recomputed: the canonical form of ``arch``, the config hash and the key.
    """
    try:
        config = json.loads(config_json)
        if Arch.from_str(arch).canonical() != canonical:
            return f"its canonical form {canonical!r} is not that of {arch!r}"
        if config_hash(config) != config_hash_:
            return "its config does not match its config_hash"
        if key not in (
            make_key(arch, dataset, config, seed),
            legacy_key(canonical, dataset, config, seed),
        ):
            return f"its fields do not give its key {key}"
    except (ArchError, ConfigError, ValueError, TypeError) as exc:
        return f"its identity fields are malformed ({exc})"
    return None
