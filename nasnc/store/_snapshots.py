"""Float16 weight snapshots of one run, stored beside its trajectory and read lazily.

A run may keep its weights at every report point (``ProxyConfig.snapshots``):
the probe's dense layers, or every conv/linear layer of the network, as
float16, with step 0 the initialisation (``W0``). A new βeff variant can then
be recomputed from stored runs without training again.

Layout (one group per entry; ``snapshots/`` in an entry file,
``snapshots/<key>/`` in a packed shard)::

    snapshots/                 attrs: format=1, kind ("probe" | "network"),
    │                          names, shapes, digests (JSON lists, one per layer)
    ├── step   int64 (S,)      optimiser step of each snapshot (0: initialisation)
    └── <i>    float16 (S, *shape_i)   layer i (names[i]) at every step; chunks of
                                       whole layers over as many steps as fit in
                                       1 MiB, shuffle + gzip(4) + fletcher32

One dataset per layer, chunked along the steps, because the access pattern is
"read all snapshots of one layer" (a βeff variant, W - W0); a mapping
``step -> [arrays]`` is served from those layer reads.

Integrity: each layer's SHA-256 (of its float16 bytes) is in ``digests``; the
*manifest digest* (kind, names, shapes, steps, layer digests) enters the
entry's content digest, so the index record vouches for the manifest, the
manifest for each layer. Nothing is read until asked for, and every read is
verified: a changed byte raises :class:`~nasnc.store._hdf5.Damaged` there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NoReturn

import h5py
import numpy as np

from nasnc._errors import StoreError

__all__ = ["SNAPSHOT_KINDS", "Snapshots", "write_snapshots"]

#: What a run can keep: the probe's dense layers, or every conv/linear layer.
SNAPSHOT_KINDS: tuple[str, ...] = ("probe", "network")
_FORMAT = 1
_CHUNK_BYTES = 2**20


class SnapshotDamage(Exception):
    """Stored snapshots that fail their checksums or cannot be decoded (the reason)."""


def _raise_store_error(reason: str, cause: Exception | None) -> None:
    raise StoreError(f"stored weight snapshots are damaged: {reason}")


@dataclass(frozen=True)
class _Manifest:
    kind: str
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    steps: np.ndarray
    digests: tuple[str, ...]

    @property
    def digest(self) -> str:
        record = [
            _FORMAT,
            self.kind,
            list(self.names),
            [list(s) for s in self.shapes],
            [int(s) for s in self.steps],
            list(self.digests),
        ]
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("ascii")).hexdigest()


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


def _layer_digest(data: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(data, dtype="<f2").tobytes()).hexdigest()


#: Opens the group holding an entry's snapshots (a context manager yielding it).
Opener = Callable[[], AbstractContextManager[h5py.Group]]
#: Called when stored snapshots fail to read or verify, with the reason and the
#: exception that stopped the read (``None`` for a failed checksum), so that the
#: caller can tell a damaged file from one this process could not open; raises.
OnDamage = Callable[[str, Exception | None], None]


class Snapshots(Mapping[int, list[np.ndarray]]):
    """Float16 weight snapshots of one run: ``snapshots[step]`` is the list of its layers.

    Build one from arrays to store it (``Entry(..., snapshots=Snapshots(...))``);
    an entry read from a cache holds a lazy one that reads nothing until asked
    (:meth:`layer` reads one layer at all steps; ``snapshots[step]`` reads
    every layer) and verifies what it reads.

    Parameters
    ----------
    kind : {"probe", "network"}
    names : sequence of str
        One name per layer (module names, e.g. ``classifier.layers.0``).
    steps : sequence of int
        Optimiser step of each snapshot, increasing; step 0 is the initialisation.
    layers : sequence of array
        One array per layer, shape ``(len(steps), *weight_shape)``; stored as float16.
    """

    def __init__(
        self,
        kind: str,
        names: Sequence[str],
        steps: Sequence[int] | np.ndarray,
        layers: Sequence[np.ndarray],
    ) -> None:
        if kind not in SNAPSHOT_KINDS:
            raise StoreError(f"snapshot kind must be one of {SNAPSHOT_KINDS}, but got {kind=}.")
        names = tuple(names)
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise StoreError(f"snapshot layer names must be distinct strings, got {names!r}.")
        step_arr = np.asarray(steps, dtype=np.int64).reshape(-1)
        if np.any(np.diff(step_arr) <= 0):
            raise StoreError(f"snapshot steps must increase, got {step_arr.tolist()!r}.")
        if len(layers) != len(names):
            raise StoreError(f"need one array per layer ({len(names)}), got {len(layers)}.")
        data = [np.ascontiguousarray(a, dtype=np.float16) for a in layers]
        for name, a in zip(names, data):
            if a.ndim < 1 or a.shape[0] != len(step_arr):
                raise StoreError(
                    f"snapshot layer {name!r} has shape {a.shape}; its first axis must be "
                    f"the {len(step_arr)} steps."
                )
        self._manifest: _Manifest | None = _Manifest(
            kind=kind,
            names=names,
            shapes=tuple(tuple(int(d) for d in a.shape[1:]) for a in data),
            steps=step_arr,
            digests=tuple(_layer_digest(a) for a in data),
        )
        self._layers: dict[int, np.ndarray] = dict(enumerate(data))
        self._open: Opener | None = None
        self._expected: str | None = None
        self._on_damage: OnDamage = _raise_store_error

    @classmethod
    def _lazy(cls, opener: Opener, digest: str, on_damage: OnDamage) -> Snapshots:
        """Snapshots read through ``opener`` when needed, verified against ``digest``.

        ``on_damage(reason, cause)`` is called (and must raise) when what is
        read cannot be decoded (``cause``: the exception) or fails its
        checksum (``cause``: ``None``).
        """
        self = cls.__new__(cls)
        self._manifest = None
        self._layers = {}
        self._open = opener
        self._expected = digest
        self._on_damage = on_damage
        return self

    def _bind(self, opener: Opener, on_damage: OnDamage) -> None:
        """Read through ``opener`` and report damage to ``on_damage`` from now on."""
        if self._open is not None:
            self._open, self._on_damage = opener, on_damage

    def _fail(self, reason: str, cause: Exception | None = None) -> NoReturn:
        self._on_damage(reason, cause)
        raise SnapshotDamage(reason)  # on_damage must raise; never serve damaged data

    # -------------------------------------------------------------- reading
    def _read_manifest(self) -> _Manifest:
        if self._manifest is None:
            assert self._open is not None
            try:
                with self._open() as group:
                    attrs = group.attrs
                    manifest = _Manifest(
                        kind=_text(attrs["kind"]),
                        names=tuple(json.loads(attrs["names"])),
                        shapes=tuple(tuple(s) for s in json.loads(attrs["shapes"])),
                        steps=np.asarray(group["step"][()], dtype=np.int64),
                        digests=tuple(json.loads(attrs["digests"])),
                    )
            except (FileNotFoundError, StoreError):
                raise
            except Exception as exc:
                self._fail(f"the snapshot manifest cannot be read ({_short(exc)})", exc)
            if manifest.digest != self._expected:
                self._fail("the snapshot manifest fails its checksum")
            self._manifest = manifest
        return self._manifest

    def _read_layer(self, i: int, *, keep: bool = True) -> np.ndarray:
        if i in self._layers:
            return self._layers[i]
        manifest = self._read_manifest()
        assert self._open is not None
        try:
            with self._open() as group:
                data = np.asarray(group[str(i)][()], dtype=np.float16)
        except (FileNotFoundError, StoreError):
            raise
        except Exception as exc:
            self._fail(f"snapshot layer {manifest.names[i]!r} cannot be read ({_short(exc)})", exc)
        if data.shape != (len(manifest.steps), *manifest.shapes[i]) or (
            _layer_digest(data) != manifest.digests[i]
        ):
            self._fail(f"snapshot layer {manifest.names[i]!r} fails its checksum")
        if keep:
            self._layers[i] = data
        return data

    @property
    def kind(self) -> str:
        """``"probe"`` or ``"network"``."""
        return self._read_manifest().kind

    @property
    def names(self) -> tuple[str, ...]:
        """Layer names, in stored order."""
        return self._read_manifest().names

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """Weight shape of each layer (without the step axis)."""
        return self._read_manifest().shapes

    @property
    def steps(self) -> np.ndarray:
        """Optimiser step of each snapshot (int64; 0 is the initialisation)."""
        return self._read_manifest().steps.copy()

    @property
    def digest(self) -> str:
        """SHA-256 of the manifest (what the entry's digest covers)."""
        return self._expected if self._expected is not None else self._read_manifest().digest

    @property
    def nbytes(self) -> int:
        """Uncompressed size of all layers at all steps (float16)."""
        m = self._read_manifest()
        return 2 * len(m.steps) * sum(int(np.prod(s, dtype=np.int64)) for s in m.shapes)

    def layer(self, name: str | int) -> np.ndarray:
        """One layer at every step: float16, shape ``(len(steps), *weight_shape)``."""
        names = self.names
        if isinstance(name, str):
            if name not in names:
                raise KeyError(f"no snapshot layer {name!r}; layers: {', '.join(names)}")
            i = names.index(name)
        else:
            i = int(name)
            if not 0 <= i < len(names):
                raise KeyError(f"no snapshot layer {i}; there are {len(names)}")
        return self._read_layer(i)

    def load(self) -> Snapshots:
        """Read and verify every layer now (then nothing is read again)."""
        for i in range(len(self.names)):
            self._read_layer(i)
        return self

    def verify(self) -> None:
        """Read every layer once and check it, keeping nothing in memory."""
        for i in range(len(self.names)):
            self._read_layer(i, keep=False)

    # -------------------------------------------------------------- Mapping
    def __getitem__(self, step: int) -> list[np.ndarray]:
        steps = self._read_manifest().steps
        hit = np.flatnonzero(steps == int(step))
        if not len(hit):
            raise KeyError(f"no snapshot at step {step}; steps: {steps.tolist()}")
        k = int(hit[0])
        return [self._read_layer(i)[k] for i in range(len(self.names))]

    def __iter__(self) -> Iterator[int]:
        return iter(int(s) for s in self._read_manifest().steps)

    def __len__(self) -> int:
        return len(self._read_manifest().steps)

    def __repr__(self) -> str:
        if self._manifest is None:
            return "Snapshots(<not read>)"
        m = self._manifest
        return f"Snapshots(kind={m.kind!r}, layers={len(m.names)}, steps={m.steps.tolist()})"

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__


def write_snapshots(parent: h5py.Group, name: str, snaps: Snapshots) -> str:
    """Write ``snaps`` as group ``name`` of ``parent``, one layer at a time; its digest.

    A lazy source is read (and verified) layer by layer without keeping the
    layers, so packing many entries holds one layer in memory at a time.
    """
    manifest = snaps._read_manifest()
    group = parent.create_group(name)
    group.attrs["format"] = np.int64(_FORMAT)
    group.attrs["kind"] = manifest.kind
    group.attrs["names"] = json.dumps(list(manifest.names))
    group.attrs["shapes"] = json.dumps([list(s) for s in manifest.shapes])
    group.attrs["digests"] = json.dumps(list(manifest.digests))
    group.create_dataset("step", data=manifest.steps)
    n = len(manifest.steps)
    for i, shape in enumerate(manifest.shapes):
        data = snaps._read_layer(i, keep=False)
        per_step = max(1, 2 * int(np.prod(shape, dtype=np.int64)))
        rows = max(1, min(n, _CHUNK_BYTES // per_step))
        group.create_dataset(
            str(i),
            data=data,
            maxshape=(None, *shape),
            chunks=(rows, *shape) if n else None,
            compression="gzip",
            compression_opts=4,
            shuffle=True,
            fletcher32=True,
        )
    return manifest.digest
