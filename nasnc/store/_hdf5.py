"""Reading and writing the three kinds of HDF5 file a cache holds.

The trees are drawn in :mod:`nasnc.store`. Every function here takes a path,
opens it with ``with h5py.File(...)`` and closes it before returning: no
handle outlives a call, so a :class:`~nasnc.store.Store` can be pickled into
worker processes and never holds a file open between operations.

A file that cannot be read raises :class:`Damaged` (the reason, without the
path; the caller decides between raising :class:`~nasnc.StoreError` and
skipping it). A file that disappeared between listing and reading raises
:class:`FileNotFoundError` (compaction removes merged files; callers rescan).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nasnc.store._entry import (
    Entry,
    _Checked,
    checked_digests,
    content_digest,
    entry_kind,
    legacy_problem,
    trajectory_digest,
)
from nasnc.store._snapshots import Snapshots, write_snapshots

__all__ = [
    "LIBVER",
    "SCHEMA_VERSION",
    "SNAPSHOTS_MARKER_VERSION",
    "Damaged",
    "EntryInfo",
    "PackIndex",
    "Unreadable",
    "damage_of",
    "read_entry_file",
    "read_entry_info",
    "read_marker",
    "read_pack_entries",
    "read_pack_index",
    "write_entry_file",
    "write_marker",
    "write_pack",
]

#: Version of the on-disk layout, stored as the root attribute ``schema_version``
#: of every file. Readers refuse any other value.
SCHEMA_VERSION = 1
#: ``schema_version`` of the marker of a cache that holds weight snapshots (its
#: files stay at :data:`SCHEMA_VERSION`). Entry digests cover the snapshots, so
#: nasnc from before them would take such entries for damage and quarantine
#: them; it reads only marker version 1, so it refuses this cache loudly
#: (StoreError at open) and moves nothing. Set by the first put with snapshots.
SNAPSHOTS_MARKER_VERSION = 2
#: HDF5 1.10 object format: checksummed superblock, object headers and B-trees,
#: readable by any h5py built on HDF5 >= 1.10.
LIBVER = ("v110", "v110")
_STR = h5py.string_dtype("utf-8")
_CHUNK_ROWS = 8192  # index and summary columns: read whole
_TRAJ_CHUNK_ROWS = 1024  # packed trajectories: read one entry's slice at a time


class Damaged(Exception):
    """A file that exists but cannot be read as what it claims to be.

    ``movable`` says whether the file itself is at fault (so a writer may move
    it to the quarantine) rather than the reading process (see :class:`Unreadable`).
    """

    movable = True


class Unreadable(Damaged):
    """A file the operating system refused to open (permissions, descriptors)."""

    movable = False


@dataclass(frozen=True)
class EntryInfo:
    """The index record of one entry: everything but the trajectory.

    What :meth:`Store.index` and :meth:`Store.rank` return; cheap to list for
    thousands of entries (packed shards keep these columns together).
    """

    key: str
    arch: str
    canonical: str
    dataset: str
    seed: int
    config_hash: str
    created: float
    summary: Mapping[str, float | int | bool]
    scores: Mapping[str, float] = field(default_factory=dict)
    #: Manifest digest of the entry's weight snapshots; ``None`` when it has none.
    snapshots_digest: str | None = None

    @property
    def kind(self) -> str:
        """``"complete"``, ``"pruned"``, ``"diverged"`` or ``"score_only"`` (:func:`entry_kind`)."""
        return entry_kind(self)

    def value(self, name: str) -> float:
        """``summary[name]`` or ``scores[name]`` as a float; NaN when absent."""
        if name in self.summary:
            return float(self.summary[name])
        return float(self.scores.get(name, math.nan))


# ----------------------------------------------------------------- opening
@contextmanager
def _open_read(
    path: Path, kind: str, versions: tuple[int, ...] = (SCHEMA_VERSION,)
) -> Iterator[h5py.File]:
    """Open ``path`` read-only, check its root attributes, and turn any failure into damage.

    Files are immutable once visible in a cache, so HDF5's advisory file
    locking protects nothing here; it is turned off (``locking=False``) so that
    readers work on file systems without ``flock`` (some NFS/Lustre mounts).
    ``HDF5_USE_FILE_LOCKING``, when set, takes precedence inside HDF5.

    Whatever goes wrong while the file is read (h5py raises ``OSError``,
    ``KeyError``, ``RuntimeError``, ``ValueError``... on corrupt metadata)
    becomes :class:`Damaged`; a file the OS refuses to open (permissions, too
    many open files) becomes :class:`Unreadable`; a file that vanished stays
    :class:`FileNotFoundError`.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise Unreadable(f"cannot be opened ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        f = h5py.File(path, "r", locking=False)
    except Exception as exc:
        if not os.path.exists(path):
            raise FileNotFoundError(str(path)) from None
        raise Damaged(f"is not a readable HDF5 file ({_short(exc)})") from None
    with f:
        try:
            version = f.attrs.get("schema_version")
            if version is None:
                raise Damaged("has no root attribute 'schema_version' (not a nasnc cache file)")
            try:
                number = int(version)
            except (TypeError, ValueError):
                raise Damaged(f"has a malformed schema_version {version!r}") from None
            if number not in versions:
                raise Damaged(
                    f"has schema_version {number}, but this nasnc reads only "
                    f"schema_version {' or '.join(map(str, versions))}"
                )
            found = _str(f.attrs.get("kind", ""))
            if found != kind:
                raise Damaged(f"is a {found or 'unknown'!r} file, expected a {kind!r} file")
            yield f
        except Damaged:
            raise
        except Exception as exc:  # any failure to read a file is damage of that file
            reason = f"{type(exc).__name__}: {_short(exc)}"
            raise Damaged(f"is incomplete or corrupt ({reason})") from None


@dataclass(frozen=True)
class GroupOpener:
    """Opens ``path`` (a verified cache file of ``kind``) and yields its group ``group``."""

    path: Path
    kind: str
    group: str

    @contextmanager
    def __call__(self) -> Iterator[h5py.Group]:
        with _open_read(self.path, self.kind) as f:
            yield f[self.group]


def damage_of(reason: str, cause: Exception | None) -> Damaged:
    """The damage to report for a failed lazy read: :class:`Unreadable` (never moved)
    when the cause was the OS refusing this process the file, else :class:`Damaged`."""
    if isinstance(cause, Damaged) and not cause.movable:
        return Unreadable(reason)
    return Damaged(reason)


def _damaged(reason: str, cause: Exception | None) -> None:
    raise damage_of(reason, cause)


def _lazy_snapshots(path: Path, kind: str, group: str, digest: str | None) -> Snapshots | None:
    if not digest:
        return None
    return Snapshots._lazy(GroupOpener(path, kind, group), digest, _damaged)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


def _str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _typed(value: Any) -> float | int | bool:
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return float(value)


def _write_attrs(f: h5py.File, kind: str, **attrs: Any) -> None:
    f.attrs["schema_version"] = SCHEMA_VERSION
    f.attrs["kind"] = kind
    for name, value in attrs.items():
        f.attrs[name] = value


# -------------------------------------------------------------- the marker
def write_marker(
    path: Path, *, nasnc_version: str, created: float, schema_version: int = SCHEMA_VERSION
) -> None:
    with h5py.File(path, "w", libver=LIBVER, locking=False) as f:
        _write_attrs(
            f,
            "store",
            nasnc_version=nasnc_version,
            created=created,
            schema_version=np.int64(schema_version),
        )


def read_marker(path: Path) -> dict[str, Any]:
    with _open_read(path, "store", (SCHEMA_VERSION, SNAPSHOTS_MARKER_VERSION)) as f:
        return {k: f.attrs[k] for k in f.attrs}


# ------------------------------------------------------------- entry files
def write_entry_file(path: Path, entry: _Checked, *, writer: str, stored_ns: int) -> None:
    """Write one entry file at ``path`` (a temporary name; the caller renames it).

    ``stored_ns`` (time of the put, ns) orders copies of one key across shards.
    """
    digest, traj_digest = checked_digests(entry)
    with h5py.File(path, "w", libver=LIBVER, locking=False) as f:
        _write_attrs(
            f,
            "entry",
            key=entry.key,
            arch=entry.arch,
            canonical=entry.canonical,
            dataset=entry.dataset,
            seed=np.int64(entry.seed),
            config=entry.config_json,
            config_hash=entry.config_hash,
            nasnc_version=entry.nasnc_version,
            created=np.float64(entry.created),
            stored_ns=np.int64(stored_ns),
            writer=writer,
            digest=np.bytes_(digest),
            trajectory_digest=np.bytes_(traj_digest),
        )
        traj = f.create_group("trajectory", track_order=True)
        n = entry_length(entry.trajectory)
        traj.attrs["n_points"] = np.int64(n)
        for name, column in entry.trajectory.items():
            traj.create_dataset(
                name,
                data=column,
                maxshape=(None,),
                chunks=(max(1, min(n, _CHUNK_ROWS)),),
                fletcher32=True,
            )
        summary = f.create_group("summary", track_order=True)
        for name, value in entry.summary.items():
            summary.create_dataset(name, data=_scalar(value))
        scores = f.create_group("scores", track_order=True)
        for name, score in entry.scores.items():
            scores.create_dataset(name, data=np.float64(score))
        if entry.snapshots is not None:
            f.attrs["snapshots_digest"] = np.bytes_(
                write_snapshots(f, "snapshots", entry.snapshots)
            )


def entry_length(trajectory: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(trajectory.values()))) if trajectory else 0


def _scalar(value: float | int | bool) -> Any:
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.int64(value)
    return np.float64(value)


@dataclass(frozen=True)
class _Record:
    """What an entry file holds besides its trajectory, verified."""

    info: EntryInfo
    config_json: str
    nasnc_version: str
    stored_ns: int
    trajectory_digest: str | None


def _verify(
    info: EntryInfo,
    config_json: str,
    nasnc_version: str,
    digest: str | None,
    traj_digest: str | None,
) -> str | None:
    """Why a record does not match its digest (or, without one, its key), or ``None``."""
    if digest is None or traj_digest is None:
        return legacy_problem(
            key=info.key,
            arch=info.arch,
            canonical=info.canonical,
            dataset=info.dataset,
            seed=info.seed,
            config_json=config_json,
            config_hash_=info.config_hash,
        )
    want = content_digest(
        key=info.key,
        arch=info.arch,
        canonical=info.canonical,
        dataset=info.dataset,
        seed=info.seed,
        config_json=config_json,
        config_hash=info.config_hash,
        created=info.created,
        nasnc_version=nasnc_version,
        summary=info.summary,
        scores=info.scores,
        trajectory_sha=traj_digest,
        snapshots_sha=info.snapshots_digest,
    )
    if want != digest:
        return f"entry {info.key!r} fails its checksum (its content changed after it was written)"
    return None


def _read_record(f: h5py.File) -> _Record:
    a = f.attrs
    info = EntryInfo(
        key=_str(a["key"]),
        arch=_str(a["arch"]),
        canonical=_str(a["canonical"]),
        dataset=_str(a["dataset"]),
        seed=int(a["seed"]),
        config_hash=_str(a["config_hash"]),
        created=float(a["created"]),
        summary={name: _typed(ds[()]) for name, ds in f["summary"].items()},
        scores={name: float(ds[()]) for name, ds in f["scores"].items()},
        snapshots_digest=_str(a["snapshots_digest"]) if "snapshots_digest" in a else None,
    )
    config_json = _str(a["config"])
    version = _str(a["nasnc_version"])
    digest = _str(a["digest"]) if "digest" in a else None
    traj = _str(a["trajectory_digest"]) if "trajectory_digest" in a else None
    problem = _verify(info, config_json, version, digest, traj)
    if problem is not None:
        raise Damaged(problem)
    return _Record(info, config_json, version, int(a["stored_ns"]), traj)


def read_entry_info(path: Path) -> EntryInfo:
    """The verified index record of an entry file (no trajectory)."""
    with _open_read(path, "entry") as f:
        return _read_record(f).info


def read_entry_file(path: Path) -> tuple[Entry, int]:
    """The whole verified entry stored in an entry file, and its ``stored_ns``."""
    with _open_read(path, "entry") as f:
        record = _read_record(f)
        trajectory = {
            name: np.asarray(ds[()], dtype=np.float64) for name, ds in f["trajectory"].items()
        }
        lengths = {len(v) for v in trajectory.values()}
        n = int(f["trajectory"].attrs["n_points"])
        if lengths and lengths != {n}:
            raise Damaged(f"has trajectory columns of lengths {sorted(lengths)}, expected {n}")
    if record.trajectory_digest is not None and (
        trajectory_digest(trajectory) != record.trajectory_digest
    ):
        raise Damaged(f"the trajectory of entry {record.info.key!r} fails its checksum")
    info = record.info
    entry = Entry(
        arch=info.arch,
        canonical=info.canonical,
        dataset=info.dataset,
        seed=info.seed,
        config=json.loads(record.config_json),
        trajectory=trajectory,
        summary=dict(info.summary),
        scores=dict(info.scores),
        created=info.created,
        nasnc_version=record.nasnc_version,
        snapshots=_lazy_snapshots(path, "entry", "snapshots", info.snapshots_digest),
    ).mark_stored(info.key)
    return entry, record.stored_ns


# -------------------------------------------------------------------- packs
_INDEX_STR = ("key", "arch", "canonical", "dataset", "config", "config_hash", "nasnc_version")


def _layout(entry: _Checked) -> str:
    kinds = {
        name: "b" if isinstance(v, bool) else "i" if isinstance(v, int) else "f"
        for name, v in entry.summary.items()
    }
    return json.dumps(
        {"t": list(entry.trajectory), "s": kinds, "c": list(entry.scores)}, separators=(",", ":")
    )


def _column(group: h5py.Group, name: str, data: np.ndarray, chunk: int = _CHUNK_ROWS) -> None:
    n = len(data)
    group.create_dataset(
        name,
        data=data,
        maxshape=(None,),
        chunks=(max(1, min(n, chunk)),),
        fletcher32=True,
    )


def write_pack(
    path: Path,
    entries: Sequence[_Checked],
    stored_ns: Sequence[int],
    *,
    writer: str,
    created: float,
    nasnc_version: str,
) -> None:
    """Write ``entries`` (distinct keys, with their ``stored_ns``) as one packed shard."""
    n = len(entries)
    lengths = np.array([entry_length(e.trajectory) for e in entries], dtype=np.int64)
    offset = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offset[1:])
    layouts: dict[str, int] = {}
    layout_id = np.array(
        [layouts.setdefault(_layout(e), len(layouts)) for e in entries], dtype=np.int32
    )
    digests = [checked_digests(e) for e in entries]
    summary_names = list(dict.fromkeys(k for e in entries for k in e.summary))
    int_names = list(
        dict.fromkeys(
            k
            for e in entries
            for k, v in e.summary.items()
            if isinstance(v, int) and not isinstance(v, bool)
        )
    )
    score_names = list(dict.fromkeys(k for e in entries for k in e.scores))
    column_names = list(dict.fromkeys(k for e in entries for k in e.trajectory))
    with h5py.File(path, "w", libver=LIBVER, locking=False) as f:
        _write_attrs(
            f,
            "pack",
            n_entries=np.int64(n),
            created=np.float64(created),
            nasnc_version=nasnc_version,
            writer=writer,
        )
        index = f.create_group("index", track_order=True)
        for name in _INDEX_STR:
            attr = "config_json" if name == "config" else name
            index.create_dataset(
                name,
                data=np.array([getattr(e, attr) for e in entries], dtype=object),
                dtype=_STR,
            )
        _column(index, "seed", np.array([e.seed for e in entries], dtype=np.int64))
        _column(index, "created", np.array([e.created for e in entries], dtype=np.float64))
        _column(index, "stored_ns", np.asarray(stored_ns, dtype=np.int64))
        _column(index, "offset", offset)
        _column(index, "layout_id", layout_id)
        _column(index, "digest", np.array([d for d, _ in digests], dtype="S64"))
        _column(index, "trajectory_digest", np.array([t for _, t in digests], dtype="S64"))
        if any(e.snapshots is not None for e in entries):
            snaps = f.create_group("snapshots")
            written = [
                "" if e.snapshots is None else write_snapshots(snaps, e.key, e.snapshots)
                for e in entries
            ]
            _column(index, "snapshots_digest", np.array(written, dtype="S64"))
        index.create_dataset("layouts", data=np.array(list(layouts), dtype=object), dtype=_STR)
        for group_name, names, source in (
            ("summary", summary_names, "summary"),
            ("scores", score_names, "scores"),
        ):
            group = f.create_group(group_name, track_order=True)
            for name in names:
                values = np.array(
                    [float(getattr(e, source).get(name, math.nan)) for e in entries],
                    dtype=np.float64,
                )
                _column(group, name, values)
        exact = f.create_group("summary_int", track_order=True)  # ints beyond 2**53 stay exact
        for name in int_names:
            ints = [e.summary.get(name, 0) for e in entries]
            _column(exact, name, np.array([v if type(v) is int else 0 for v in ints], np.int64))
        traj = f.create_group("trajectory", track_order=True)
        total = int(offset[-1])
        for name in column_names:
            data = np.full(total, np.nan)
            for i, e in enumerate(entries):
                if name in e.trajectory:
                    data[offset[i] : offset[i + 1]] = e.trajectory[name]
            _column(traj, name, data, chunk=_TRAJ_CHUNK_ROWS)  # one entry's rows: few chunks


@dataclass
class PackIndex:
    """The index columns of one pack, read and verified once, kept while the pack exists.

    ``infos`` is aligned with the pack's rows; ``bad`` maps the rows whose
    record fails its checksum to the reason (they are never served), and
    ``rows`` maps the key of every good row to its row.
    """

    infos: list[EntryInfo]
    stored_ns: list[int]
    configs: list[str]
    versions: list[str]
    offset: np.ndarray
    layouts: list[dict[str, Any]]
    layout_id: np.ndarray
    rows: dict[str, int]
    trajectory_digests: list[str] | None = None
    bad: dict[int, str] = field(default_factory=dict)


def read_pack_index(path: Path) -> PackIndex:
    """The index of a pack; rows failing their checksum are listed in ``bad``.

    Raises :class:`Damaged` when the index itself cannot be read.
    """
    casts = {"b": bool, "i": int, "f": float}
    with _open_read(path, "pack") as f:
        n = int(f.attrs["n_entries"])
        index = f["index"]
        text = {name: index[name].asstr()[()].tolist() for name in _INDEX_STR}
        seeds = index["seed"][()].tolist()
        created = index["created"][()].tolist()
        stored = index["stored_ns"][()].tolist()
        offset = index["offset"][()]
        layout_id = index["layout_id"][()]
        layouts = [json.loads(s) for s in index["layouts"].asstr()[()].tolist()]
        digests: list[str] | None = None
        traj_digests: list[str] | None = None
        if "digest" in index or "trajectory_digest" in index:
            digests = [_str(d) for d in index["digest"][()].tolist()]
            traj_digests = [_str(d) for d in index["trajectory_digest"][()].tolist()]
        snap_digests: list[str | None] = [None] * n
        if "snapshots_digest" in index:
            snap_digests = [_str(d) or None for d in index["snapshots_digest"][()].tolist()]
        summary = {name: ds[()].tolist() for name, ds in f["summary"].items()}
        ints = f["summary_int"].items() if "summary_int" in f else ()
        exact = {name: ds[()].tolist() for name, ds in ints}
        scores = {name: ds[()].tolist() for name, ds in f["scores"].items()}
        columns: list[Sequence[Any]] = [
            *text.values(),
            seeds,
            created,
            stored,
            layout_id,
            *summary.values(),
            *exact.values(),
            *scores.values(),
        ]
        if digests is not None and traj_digests is not None:
            columns += [digests, traj_digests]
        columns.append(snap_digests)
        sizes = {len(v) for v in columns}
        if sizes - {n} or len(offset) != n + 1:
            raise Damaged(f"has index columns of lengths {sorted(sizes)}, expected {n}")
        if n and not 0 <= int(layout_id.min()) <= int(layout_id.max()) < len(layouts):
            raise Damaged("has layout ids out of range")
        if n and (offset[0] != 0 or np.any(np.diff(offset) < 0)):
            raise Damaged("has trajectory offsets out of order")
        infos = []
        bad: dict[int, str] = {}
        ids = layout_id.tolist()
        for i in range(n):
            lay = layouts[ids[i]]
            info = EntryInfo(
                key=text["key"][i],
                arch=text["arch"][i],
                canonical=text["canonical"][i],
                dataset=text["dataset"][i],
                seed=seeds[i],
                config_hash=text["config_hash"][i],
                created=created[i],
                summary={
                    k: exact[k][i] if t == "i" and k in exact else casts[t](summary[k][i])
                    for k, t in lay["s"].items()
                },
                scores={k: scores[k][i] for k in lay["c"]},
                snapshots_digest=snap_digests[i],
            )
            infos.append(info)
            problem = _verify(
                info,
                text["config"][i],
                text["nasnc_version"][i],
                None if digests is None else digests[i],
                None if traj_digests is None else traj_digests[i],
            )
            if problem is not None:
                bad[i] = f"row {i}: {problem}"
    rows: dict[str, int] = {}
    for i, info in enumerate(infos):
        if i not in bad:
            rows[info.key] = i
    return PackIndex(
        infos=infos,
        stored_ns=stored,
        configs=text["config"],
        versions=text["nasnc_version"],
        offset=offset,
        layouts=layouts,
        layout_id=layout_id,
        rows=rows,
        trajectory_digests=traj_digests,
        bad=bad,
    )


def read_pack_entries(path: Path, index: PackIndex, rows: Sequence[int]) -> list[Entry]:
    """Full verified entries of ``rows`` of a pack (whole columns are read when many rows are)."""
    if not rows:
        return []
    out: list[Entry] = []
    with _open_read(path, "pack") as f:
        traj = f["trajectory"]
        whole = len(rows) > 16
        columns: dict[str, np.ndarray] = {}
        if whole:
            wanted = {c for r in rows for c in index.layouts[int(index.layout_id[r])]["t"]}
            columns = {name: traj[name][()] for name in wanted}
        for r in rows:
            info = index.infos[r]
            if r in index.bad:
                raise Damaged(index.bad[r])
            lo, hi = int(index.offset[r]), int(index.offset[r + 1])
            names = index.layouts[int(index.layout_id[r])]["t"]
            if whole:
                trajectory = {c: columns[c][lo:hi].copy() for c in names}
            else:
                trajectory = {c: np.asarray(traj[c][lo:hi], dtype=np.float64) for c in names}
            if any(len(v) != hi - lo for v in trajectory.values()):
                raise Damaged(f"row {r}: entry {info.key!r} has a truncated trajectory")
            if index.trajectory_digests is not None and (
                trajectory_digest(trajectory) != index.trajectory_digests[r]
            ):
                raise Damaged(f"row {r}: the trajectory of entry {info.key!r} fails its checksum")
            out.append(
                Entry(
                    arch=info.arch,
                    canonical=info.canonical,
                    dataset=info.dataset,
                    seed=info.seed,
                    config=json.loads(index.configs[r]),
                    trajectory=trajectory,
                    summary=dict(info.summary),
                    scores=dict(info.scores),
                    created=info.created,
                    nasnc_version=index.versions[r],
                    snapshots=_lazy_snapshots(
                        path, "pack", f"snapshots/{info.key}", info.snapshots_digest
                    ),
                ).mark_stored(info.key)
            )
    return out
