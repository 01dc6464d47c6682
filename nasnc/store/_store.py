"""The :class:`Store`: a directory of immutable HDF5 files (see :mod:`nasnc.store`).

This module reads (scan, get, queries) and writes entry files; compaction is
in :mod:`nasnc.store._compact`, file-system steps in :mod:`nasnc.store._files`,
the HDF5 trees in :mod:`nasnc.store._hdf5`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasnc._errors import ConfigError, StoreError
from nasnc.space import Arch
from nasnc.store import _compact
from nasnc.store._entry import ENTRY_KINDS, KEY_PATTERN, Entry, _check, _default_version
from nasnc.store._files import (
    ENTRIES,
    ENTRY_RE,
    KNOWN,
    LOCK,
    MARKER,
    PACK_RE,
    PACKS,
    QUARANTINE,
    RETRIES,
    TMP,
    TMP_RE,
    Ident,
    check_writable,
    clean_tmp,
    exclusive_lock,
    host,
    ident_of,
    listing,
    move_aside,
    publish,
    quarantined,
    scan_dir,
)
from nasnc.store._hdf5 import (
    SNAPSHOTS_MARKER_VERSION,
    Damaged,
    EntryInfo,
    GroupOpener,
    PackIndex,
    damage_of,
    read_entry_file,
    read_entry_info,
    read_marker,
    read_pack_entries,
    read_pack_index,
    write_entry_file,
    write_marker,
)
from nasnc.store._snapshots import Snapshots

if TYPE_CHECKING:
    import h5py

__all__ = ["Damage", "Store"]

logger = logging.getLogger(__name__)

_Found = dict[Path, tuple[Ident, str]]  # damaged files found by one pass: identity, reason


@dataclass(frozen=True)
class Damage:
    """A cache file that could not be read, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class _Loc:
    """Where the winning copy of one key lives: an entry file, or a row of a pack."""

    path: Path
    ident: Ident
    row: int | None
    info: EntryInfo


def _opener(loc: _Loc, key: str) -> GroupOpener:
    if loc.row is None:
        return GroupOpener(loc.path, "entry", "snapshots")
    return GroupOpener(loc.path, "pack", f"snapshots/{key}")


class _StoreSnapshots:
    """Reads the snapshots of ``key`` from wherever the cache holds them now.

    Compaction moves an entry from its entry file into a shard (and shards
    into bigger ones), so a lazy :class:`Snapshots` handed out earlier looks
    the entry up again when its file has gone, and refuses (StoreError) when
    the copy found is another run's (its snapshots digest differs). Damage
    is reported like any other: the file is skipped from now on and a
    writing store moves it to the quarantine; a file the OS refuses to open
    (too many open files, permissions) is this process's problem, not the
    file's, so the read fails (StoreError) and the file is left alone.
    """

    def __init__(self, store: Store, key: str, digest: str, loc: _Loc) -> None:
        self.store, self.key, self.digest, self.loc = store, key, digest, loc

    @contextmanager
    def __call__(self) -> Iterator[h5py.Group]:
        with ExitStack() as stack:
            for _ in range(RETRIES):
                try:
                    group = stack.enter_context(_opener(self.loc, self.key)())
                    break
                except FileNotFoundError:
                    self.loc = self.store._snapshot_loc(self.key, self.digest)
            else:
                raise StoreError(
                    f"the cache {self.store.path} kept changing while being read; try again."
                )
            yield group

    def damaged(self, reason: str, cause: Exception | None) -> None:
        exc = damage_of(reason, cause)
        if not exc.movable:  # the OS refused this process the file: it stays, served later
            raise StoreError(
                f"{self.loc.path}: the weight snapshots of entry {self.key} cannot be read "
                f"now ({reason}); the file is left in place"
            )
        self.store._mark_damaged(self.loc, exc)
        raise StoreError(
            f"{self.loc.path}: the weight snapshots of entry {self.key} are damaged ({reason}); "
            "the file is skipped from now on"
        )


@dataclass(frozen=True)
class _Filter:
    """Which index records :meth:`Store.index` and its kin keep (``None``: any)."""

    dataset: str | None
    form: str | None
    config_hash: str | None
    kinds: frozenset[str] | None

    @classmethod
    def of(
        cls,
        dataset: str | None,
        arch: str | Arch | None,
        config_hash: str | None,
        kinds: Collection[str] | None,
    ) -> _Filter:
        for name, value in (("dataset", dataset), ("config_hash", config_hash)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name} must be a str, but got {name}={value!r}.")
        chosen = None
        if kinds is not None:
            if isinstance(kinds, str) or not isinstance(kinds, Collection):
                raise ConfigError(
                    f"kinds must be a collection of entry kinds such as ('complete',), "
                    f"but got kinds={kinds!r}."
                )
            unknown = [k for k in kinds if k not in ENTRY_KINDS]
            if unknown:
                raise ConfigError(
                    f"unknown entry kind {unknown[0]!r} in kinds; known: {', '.join(ENTRY_KINDS)}."
                )
            chosen = frozenset(kinds)
        form = None if arch is None else Arch.parse(arch).graph_form()
        return cls(dataset, form, config_hash, chosen)

    def matches(self, info: EntryInfo) -> bool:
        return (
            (self.dataset is None or info.dataset == self.dataset)
            and (self.form is None or Arch.from_str(info.arch).graph_form() == self.form)
            and (self.config_hash is None or info.config_hash == self.config_hash)
            and (self.kinds is None or info.kind in self.kinds)
        )


class Store:
    """A cache of evaluations in a directory of HDF5 files, safe for many processes.

    Parameters
    ----------
    path : str or Path
        The cache directory. Created (with parents) when missing and ``create``
        is true; an existing directory must be a nasnc cache or empty.
    writer_id : str, optional
        Recorded in every file this object writes (default ``"<host>-<pid>"``).
    create : bool
        With ``False`` a missing or uninitialised path is a :class:`StoreError`
        (for readers such as ``nasnc scores``) and nothing is ever created or
        moved. With ``True`` the store checks at once that it can write, and
        moves damaged files it meets to ``quarantine/``.
    durable : bool
        ``fsync`` each file and its directory before and after the rename, so
        an entry that :meth:`put` returned survives a power loss too (a
        ``SIGKILL`` never loses one either way).
    compact_every : int or None
        :meth:`put` packs the entry files into a shard once this many exist
        (``None``: only explicit :meth:`compact` calls). Ranking reads every
        entry file but only one index per shard, so this bounds its cost.
    fanout : int
        Size-tiered merging: once ``fanout`` shards of the same size tier
        (entry count within a factor ``fanout``) exist, they are merged into
        one, so a cache of ``n`` entries keeps ``O(fanout * log(n))`` shards
        and every entry is rewritten ``O(log(n))`` times in its life.
    min_free_bytes : int
        A writing store refuses to open (:class:`StoreError`) when its file
        system has less free space than this (default 64 MiB), so a full
        disk stops a command before it trains rather than when it stores.
    warn_damaged : bool, default True
        Log a warning for each damaged file left in place (once per version
        of the file). A caller that reports :attr:`damaged` itself passes
        ``False``, so that each file is reported once.

    Notes
    -----
    No HDF5 handle is held between calls, so a store can be pickled into
    worker processes (each opens files lazily). ``put`` may be called from
    many processes at once; readers see either the old or the new state of
    any entry, never a partial one. A Store object caches shard indexes and
    is meant for one thread; give each thread its own.

    Examples
    --------
    >>> from nasnc.testing import make_entry
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"
    >>> key = store.put(make_entry(arch))
    >>> key in store, len(store)
    (True, 1)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        writer_id: str | None = None,
        create: bool = True,
        durable: bool = True,
        compact_every: int | None = 32,
        fanout: int = 4,
        min_free_bytes: int = 64 * 2**20,
        warn_damaged: bool = True,
    ) -> None:
        if compact_every is not None and (
            isinstance(compact_every, bool)
            or not isinstance(compact_every, int)
            or compact_every < 1
        ):
            raise ConfigError(
                f"compact_every must be a positive int or None, but got {compact_every=}."
            )
        if isinstance(fanout, bool) or not isinstance(fanout, int) or fanout < 2:
            raise ConfigError(f"fanout must be an int >= 2, but got {fanout=}.")
        if writer_id is not None and not isinstance(writer_id, str):
            raise ConfigError(f"writer_id must be a str or None, but got {writer_id=}.")
        if (
            isinstance(min_free_bytes, bool)
            or not isinstance(min_free_bytes, int)
            or min_free_bytes < 0
        ):
            raise ConfigError(
                f"min_free_bytes must be a non-negative int, but got {min_free_bytes=}."
            )
        if not str(os.fspath(path)).strip():  # abspath('') is the working folder
            raise ConfigError(f"the cache path is empty, but got path={path!r}.")
        self.path = Path(os.path.abspath(os.fspath(path)))
        self._writer_id = writer_id
        self.create = create
        self.durable = durable
        self.compact_every = compact_every
        self.fanout = fanout
        self.min_free_bytes = min_free_bytes
        self.warn_damaged = warn_damaged
        self._loose_cache: dict[str, tuple[Ident, EntryInfo | Damaged]] = {}
        self._pack_cache: dict[str, tuple[Ident, PackIndex | Damaged]] = {}
        self._locs: dict[str, tuple[Ident, list[tuple[_Loc, int]]]] = {}
        self._damaged: dict[Path, str] = {}
        self._warned: set[tuple[str, Ident]] = set()
        self._open()

    # ------------------------------------------------------------ opening
    def _open(self) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise StoreError(f"cache path {path} is a file; a nasnc cache is a directory.")
        if not path.exists():
            if not self.create:
                raise StoreError(f"no nasnc cache at {path} (the path does not exist).")
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the cache directory {path}: {exc}") from None
        marker = path / MARKER
        self._snapshots_marked = False
        if marker.exists():
            self._snapshots_marked = self._read_marker_version() >= SNAPSHOTS_MARKER_VERSION
        else:
            others = sorted(p.name for p in path.iterdir() if p.name not in KNOWN)
            if others:
                raise StoreError(
                    f"{path} is not a nasnc cache (no {MARKER}) and is not empty "
                    f"(holds {', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); "
                    "refusing to use it."
                )
            if not self.create:
                raise StoreError(f"{path} is not a nasnc cache (no {MARKER}).")
        for sub in (ENTRIES, PACKS, TMP, QUARANTINE):
            if (path / sub).exists() and not (path / sub).is_dir():
                raise StoreError(
                    f"{path / sub} is a file; a nasnc cache keeps a folder there "
                    "(move the file away)."
                )
        if self.create:
            try:
                for sub in (ENTRIES, PACKS, TMP):
                    (path / sub).mkdir(exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot initialise the cache {path}: {exc}") from None
            check_writable(path, self._tmp_path("probe"), self.min_free_bytes)
            if not marker.exists():
                tmp = self._tmp_path("store")
                try:
                    write_marker(tmp, nasnc_version=_default_version(), created=time.time())
                    os.replace(tmp, marker)
                except OSError as exc:
                    raise StoreError(f"cannot initialise the cache {path}: {exc}") from None

    def _read_marker_version(self) -> int:
        marker = self.path / MARKER
        try:
            return int(read_marker(marker)["schema_version"])
        except (Damaged, FileNotFoundError) as exc:
            raise StoreError(f"{marker}: {exc}") from None

    def _mark_snapshots(self) -> None:
        """Raise the marker to :data:`SNAPSHOTS_MARKER_VERSION` before the first snapshots.

        nasnc from before snapshots then refuses the cache at open instead of
        taking the snapshot digests for damage (see ``docs/cache-format.md``).
        """
        if self._snapshots_marked:
            return
        marker = self.path / MARKER
        attrs = read_marker(marker) if marker.exists() else {}
        if int(attrs.get("schema_version", 0)) < SNAPSHOTS_MARKER_VERSION:
            tmp = self._tmp_path("store")
            created = float(attrs.get("created", time.time()))
            try:
                write_marker(
                    tmp,
                    nasnc_version=_default_version(),
                    created=created,
                    schema_version=SNAPSHOTS_MARKER_VERSION,
                )
                os.replace(tmp, marker)
            except OSError as exc:
                raise StoreError(f"cannot update the cache marker {marker}: {exc}") from None
            logger.info("%s now holds weight snapshots (marker schema_version 2)", self.path)
        self._snapshots_marked = True

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_loose_cache"] = {}
        state["_pack_cache"] = {}
        state["_locs"] = {}
        state["_warned"] = set()
        return state

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @property
    def writer_id(self) -> str:
        """The id recorded in written files (``"<host>-<pid>"`` unless given)."""
        return self._writer_id or f"{host()}-{os.getpid()}"

    @property
    def damaged(self) -> list[Damage]:
        """Damaged files skipped by the latest scan (or :meth:`get`), with reasons.

        A writing store (``create=True``) moves them to the quarantine at
        once, so this lists what it could not move (or a reader found).
        """
        return [Damage(p, r) for p, r in sorted(self._damaged.items())]

    @property
    def quarantined(self) -> list[Path]:
        """Files moved to ``<cache>/quarantine/`` as damaged, by any process, oldest first.

        Each has a ``<name>.why.txt`` note beside it (original path, reason).
        Their entries are recomputed when needed; the files are kept for
        inspection and can be deleted at will.
        """
        return quarantined(self.path)

    def _tmp_path(self, what: str) -> Path:
        return self.path / TMP / f"{what}.{host()}.{os.getpid()}.{os.urandom(4).hex()}.tmp"

    def _entry_path(self, key: str) -> Path:
        return self.path / ENTRIES / f"{key}.h5"

    # ------------------------------------------------------------ writing
    def put(self, entry: Entry) -> str:
        """Write ``entry`` and return its key; an existing entry with that key is replaced.

        The entry is written to a temporary file, flushed, and renamed into
        place in one atomic step: readers and a ``SIGKILL`` at any moment see
        either no entry or the complete one.

        Raises
        ------
        StoreError
            The entry is malformed (the message names the field), the file
            cannot be written, or the store was opened with ``create=False``.
        ArchError
            ``entry.arch`` does not parse or ``entry.canonical`` is not its
            canonical form.
        """
        self._check_writable("put")
        checked = _check(entry)
        if checked.snapshots is not None:
            self._mark_snapshots()
        final = self._entry_path(checked.key)
        tmp = self._tmp_path(checked.key)
        publish(
            tmp,
            final,
            lambda path: write_entry_file(
                path, checked, writer=self.writer_id, stored_ns=time.time_ns()
            ),
            durable=self.durable,
            error=f"cannot write entry {checked.key} to {final}",
        )
        logger.debug(
            "stored %s (%s, %s, seed %d)", checked.key, entry.arch, entry.dataset, entry.seed
        )
        if self.compact_every is not None:
            loose = len(scan_dir(self.path / ENTRIES, ENTRY_RE))
            if loose >= self.compact_every:
                try:
                    self.compact(wait=False)
                except (StoreError, OSError) as exc:
                    logger.warning("automatic compaction of %s failed: %s", self.path, exc)
        return checked.key

    def compact(self, *, full: bool = False, wait: bool = True) -> int:
        """Pack the entry files into a shard and merge shards of the same size tier.

        Crash-safe: a new shard is written under a temporary name, flushed
        and renamed into ``packs/`` before any merged file is deleted, so a
        kill at any point leaves every entry readable (possibly in two places
        for a moment; readers take entry files over shards and, between
        shards, the copy stored last). Damaged files are moved to the
        quarantine; the entries of a damaged shard that still verify are
        kept. One compaction runs at a time (an exclusive ``flock`` on
        ``compact.lock``, released by the kernel if its holder dies).

        Parameters
        ----------
        full : bool
            Merge everything into a single shard.
        wait : bool
            Wait for a compaction running in another process (default), or
            return 0 at once.

        Returns
        -------
        int
            Number of entries written into new shards (0: nothing to do).
        """
        self._check_writable("compact")
        with exclusive_lock(self.path / LOCK, wait) as acquired:
            if not acquired:
                return 0
            return _compact.compact_locked(self, full)

    def _check_writable(self, action: str) -> None:
        if not self.create:
            raise StoreError(
                f"cannot {action} in {self.path}: this store was opened read-only "
                "(create=False); open it with create=True to write"
            )

    def clean(self, *, older_than_s: float = 3600.0, min_age_s: float = 600.0) -> list[Path]:
        """Remove temporary files left by killed writers; return the removed paths.

        A temporary file is removed when it is older than ``older_than_s``
        seconds, or older than ``min_age_s`` and written by a process of
        this host that no longer runs (containers may share a host name but
        not process ids, so a pid alone proves nothing). Readers never look
        at temporary files, so cleaning is only about disk space; every
        compaction cleans with ``older_than_s`` of one day.
        """
        self._check_writable("clean")
        return clean_tmp(self.path, older_than_s=older_than_s, min_age_s=min_age_s)

    # --------------------------------------------------------- quarantine
    def _quarantine(self, found: _Found) -> bool:
        """Move damaged files aside if this store writes and no compaction runs.

        What stays in place is warned about (once per file version). Returns
        whether anything changed on disk (then callers list again).
        """
        moved = False
        if self.create and found:
            try:
                with exclusive_lock(self.path / LOCK, wait=False) as acquired:
                    if acquired:  # else a compaction runs: it sets damaged files aside itself
                        moved = bool(self._quarantine_locked(found))
            except (StoreError, OSError) as exc:
                logger.warning("cannot move damaged files of %s aside: %s", self.path, exc)
        for path, (ident, reason) in found.items():
            if path in self._damaged:  # still in place
                self._warn(path, ident, reason)
            else:
                moved = True
        return moved

    def _warn(self, path: Path, ident: Ident, reason: str) -> None:
        if self.warn_damaged and (path.name, ident) not in self._warned:
            self._warned.add((path.name, ident))
            logger.warning("skipping damaged cache file %s: %s", path, reason)

    def _quarantine_locked(self, found: _Found, *, salvage: bool = True) -> list[tuple[str, int]]:
        """Move ``found`` to the quarantine (lock held); a shard's verified rows are kept.

        Returns the shards written with the salvaged rows.
        """
        made = []
        for path, (ident, reason) in sorted(found.items()):
            kept = 0
            if salvage and path.parent.name == PACKS:
                try:
                    rows = _compact.salvage_pack(path)
                except FileNotFoundError:
                    continue
                if rows:
                    made.append(_compact.write_shard(self, rows))
                    kept = len(rows)
            try:
                dest = move_aside(self.path, path, ident, reason)
            except OSError as exc:
                logger.warning("cannot move damaged %s aside: %s", path, exc)
                continue
            if dest is None:
                continue
            self._damaged.pop(path, None)
            logger.warning(
                "moved damaged cache file %s to %s (%s)%s; its entries will be recomputed "
                "when needed",
                path,
                dest,
                reason,
                f"; {kept} entries that still verify were kept" if kept else "",
            )
        return made

    # ------------------------------------------------------------ reading
    def _pack_index(self, name: str, ident: Ident) -> PackIndex:
        cached = self._pack_cache.get(name)
        if cached is None or cached[0] != ident:
            value: PackIndex | Damaged
            try:
                value = read_pack_index(self.path / PACKS / name)
            except Damaged as exc:
                if not exc.movable:  # the OS refused the file this time: ask again next time
                    raise
                value = exc
            cached = (ident, value)
            self._pack_cache[name] = cached
        if isinstance(cached[1], Damaged):
            raise cached[1]
        return cached[1]

    def _pack_locs(self, name: str, ident: Ident) -> list[tuple[_Loc, int]]:
        cached = self._locs.get(name)
        if cached is None or cached[0] != ident:
            index = self._pack_index(name, ident)
            path = self.path / PACKS / name
            locs = [
                (_Loc(path, ident, row, index.infos[row]), index.stored_ns[row])
                for row in sorted(index.rows.values())
            ]
            cached = (ident, locs)
            self._locs[name] = cached
        return cached[1]

    def _loose_info(self, name: str, ident: Ident) -> EntryInfo:
        cached = self._loose_cache.get(name)
        if cached is None or cached[0] != ident:
            value: EntryInfo | Damaged
            try:
                value = read_entry_info(self.path / ENTRIES / name)
                if value.key != name[:-3]:
                    value = Damaged(f"holds the entry {value.key}, not the one its name says")
            except Damaged as exc:
                if not exc.movable:  # the OS refused the file this time: ask again next time
                    raise
                value = exc
            cached = (ident, value)
            self._loose_cache[name] = cached
        if isinstance(cached[1], Damaged):
            raise cached[1]
        return cached[1]

    def _note(self, found: _Found, path: Path, ident: Ident, exc: Damaged | str) -> None:
        """Record a damaged file; collect it into ``found`` to be set aside, or warn now."""
        reason = str(exc)
        self._damaged[path] = reason
        if isinstance(exc, Damaged) and not exc.movable:
            self._warn(path, ident, reason)
        else:
            found[path] = (ident, reason)

    def _scan(self) -> dict[str, _Loc]:
        """Map every readable key to its winning copy; record (and set aside) damaged files.

        The listing is taken when two in a row agree (see
        :func:`~nasnc.store._files.listing`). A file that vanishes while being
        read makes the scan start again. An entry file wins over shards;
        between shards, the copy stored last (``stored_ns``) wins. A shard
        with rows failing their checksums serves its other rows.
        """
        moved = False
        for _ in range(RETRIES):
            loose, packs = listing(self.path)
            catalog: dict[str, _Loc] = {}
            stored: dict[str, int] = {}
            self._damaged = {}
            found: _Found = {}
            try:
                for name, ident in packs:
                    path = self.path / PACKS / name
                    try:
                        locs = self._pack_locs(name, ident)
                    except Damaged as exc:
                        self._note(found, path, ident, exc)
                        continue
                    bad = self._pack_index(name, ident).bad
                    if bad:
                        self._note(found, path, ident, "; ".join(bad.values()))
                    for loc, when in locs:
                        key = loc.info.key
                        if key not in stored or stored[key] <= when:
                            stored[key] = when
                            catalog[key] = loc
                for name, ident in loose:  # entry files override shards
                    path = self.path / ENTRIES / name
                    try:
                        info = self._loose_info(name, ident)
                    except Damaged as exc:
                        self._note(found, path, ident, exc)
                        continue
                    catalog[info.key] = _Loc(path, ident, None, info)
            except FileNotFoundError:
                continue
            seen_loose = {n for n, _ in loose}
            seen_packs = {n for n, _ in packs}
            self._loose_cache = {k: v for k, v in self._loose_cache.items() if k in seen_loose}
            self._pack_cache = {k: v for k, v in self._pack_cache.items() if k in seen_packs}
            self._locs = {k: v for k, v in self._locs.items() if k in seen_packs}
            if found and not moved and self._quarantine(found):
                moved = True  # list again: files moved, salvaged rows in new shards
                continue
            return catalog
        raise StoreError(f"the cache {self.path} kept changing while being read; try again.")

    def _mark_damaged(self, loc: _Loc, exc: Damaged) -> None:
        """A file found damaged while reading its arrays: skipped from now on, set aside."""
        cache: dict[str, Any] = self._loose_cache if loc.row is None else self._pack_cache
        cache[loc.path.name] = (loc.ident, exc)
        self._locs.pop(loc.path.name, None)
        found: _Found = {}
        self._note(found, loc.path, loc.ident, exc)
        self._quarantine(found)

    def _load(self, keys: Sequence[str], catalog: dict[str, _Loc]) -> tuple[list[Entry], bool]:
        """Full entries for ``keys`` (in that order) and whether a file proved damaged.

        Index records are verified without the trajectories, so damage to
        array data shows only here; the file is then skipped by every later
        scan (and set aside by a writing store).
        """
        for _ in range(RETRIES):
            found: dict[str, Entry] = {}
            by_pack: dict[Path, list[_Loc]] = {}
            damaged = False
            try:
                for key in keys:
                    loc = catalog.get(key)
                    if loc is None:
                        continue
                    if loc.row is None:
                        try:
                            found[key] = self._bind(read_entry_file(loc.path)[0], loc)
                        except Damaged as exc:
                            self._mark_damaged(loc, exc)
                            damaged = True
                    else:
                        by_pack.setdefault(loc.path, []).append(loc)
                for path, locs in by_pack.items():
                    try:
                        index = self._pack_index(path.name, locs[0].ident)
                        entries = read_pack_entries(path, index, [loc.row or 0 for loc in locs])
                    except Damaged as exc:
                        self._mark_damaged(locs[0], exc)
                        damaged = True
                        continue
                    for entry, loc in zip(entries, locs):
                        found[entry.key] = self._bind(entry, loc)
            except FileNotFoundError:
                catalog = self._scan()
                continue
            return [found[k] for k in keys if k in found], damaged
        raise StoreError(f"the cache {self.path} kept changing while being read; try again.")

    def get(self, key: str) -> Entry | None:
        """The entry stored under ``key``, or ``None`` when there is none.

        A damaged copy is never returned: it is skipped with a warning naming
        the file (and moved to the quarantine by a writing store), and the
        newest healthy copy in a shard, if any, is returned instead; with
        none, the key is a miss and its evaluation is simply redone.
        """
        if not isinstance(key, str):
            raise ConfigError(f"a cache key is a str, but got {key=}.")
        if not KEY_PATTERN.fullmatch(key):
            return None
        path = self._entry_path(key)
        for _ in range(RETRIES):
            try:
                ident = ident_of(path.stat())
                entry, _ = read_entry_file(path)
            except FileNotFoundError:
                break
            except Damaged as exc:
                with_same = path.exists() and ident_of(path.stat()) == ident
                if not with_same:
                    continue  # replaced while being read: read the new file
                self._mark_damaged(_Loc(path, ident, None, _NO_INFO), exc)
                break
            if entry.key != key:
                damage = Damaged(f"holds the entry {entry.key}, not the one its name says")
                self._mark_damaged(_Loc(path, ident, None, _NO_INFO), damage)
                break
            return self._bind(entry, _Loc(path, ident, None, _NO_INFO))
        for _ in range(RETRIES):
            try:
                best: tuple[int, _Loc, PackIndex] | None = None
                for name, ident in listing(self.path, entries=False)[1]:
                    pack = self.path / PACKS / name
                    try:
                        index = self._pack_index(name, ident)
                    except Damaged as exc:
                        self._quarantine_found(pack, ident, exc)
                        continue
                    if index.bad and self._quarantine_found(
                        pack, ident, Damaged("; ".join(index.bad.values()))
                    ):
                        raise FileNotFoundError(pack)  # moved, good rows re-packed: list again
                    row = index.rows.get(key)
                    if row is not None and (best is None or best[0] <= index.stored_ns[row]):
                        loc = _Loc(pack, ident, row, index.infos[row])
                        best = (index.stored_ns[row], loc, index)
                if best is None:
                    return None
                _, loc, index = best
                try:
                    return self._bind(read_pack_entries(loc.path, index, [loc.row or 0])[0], loc)
                except Damaged as exc:
                    self._mark_damaged(loc, exc)  # then the next best copy, if any
            except FileNotFoundError:
                continue
        raise StoreError(f"the cache {self.path} kept changing while being read; try again.")

    def _bind(self, entry: Entry, loc: _Loc) -> Entry:
        """Let ``entry``'s lazy snapshots follow the entry through compaction."""
        snaps = entry.snapshots
        if snaps is not None:
            source = _StoreSnapshots(self, entry.key, snaps.digest, loc)
            snaps._bind(source, source.damaged)
        return entry

    def _snapshot_loc(self, key: str, digest: str) -> _Loc:
        loc = self._scan().get(key)
        if loc is None or loc.info.snapshots_digest != digest:
            raise StoreError(
                f"the weight snapshots of entry {key} are no longer in the cache {self.path} "
                "(the entry was replaced or removed since it was read)"
            )
        return loc

    def snapshots(self, key: str) -> Snapshots | None:
        """The weight snapshots of the entry stored under ``key`` (lazy), or ``None``.

        ``None`` when there is no such entry or it kept no snapshots
        (``ProxyConfig.snapshots = "none"``). Nothing is read until the
        returned :class:`Snapshots` is used; what is read is verified, and a
        damaged file raises :class:`StoreError` (and is skipped from then on).
        """
        entry = self.get(key)
        return None if entry is None else entry.snapshots

    def _quarantine_found(self, path: Path, ident: Ident, exc: Damaged) -> bool:
        found: _Found = {}
        self._note(found, path, ident, exc)
        return self._quarantine(found)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._scan()

    def __len__(self) -> int:
        return len(self._scan())

    def keys(self) -> list[str]:
        """Every readable key, sorted."""
        return sorted(self._scan())

    def _select(self, catalog: Mapping[str, _Loc], where: _Filter) -> list[EntryInfo]:
        return [loc.info for loc in catalog.values() if where.matches(loc.info)]

    def index(
        self,
        *,
        dataset: str | None = None,
        arch: str | Arch | None = None,
        config_hash: str | None = None,
        kinds: Collection[str] | None = None,
    ) -> list[EntryInfo]:
        """Index records (no trajectories) of the matching entries, oldest first.

        Cheap over many thousands of entries: shards keep these columns
        together and are read once per process.

        Parameters
        ----------
        dataset : str, optional
            Exactly as stored (``"cifar10"``, not ``"CIFAR-10"``).
        arch : Arch or str, optional
            Matches every cell that builds the same network (same
            :meth:`~nasnc.space.Arch.graph_form`).
        config_hash : str, optional
            :func:`config_hash` of the proxy configuration.
        kinds : collection of str, optional
            Only entries of these :data:`ENTRY_KINDS` (as Optuna's
            ``get_trials(states=...)``): e.g. ``("complete",)`` leaves out runs
            a pruner stopped, whose trained readings are partial, and a
            screen's score-only entries. Default: every kind.

        Raises
        ------
        ConfigError
            A filter of the wrong type, or an unknown kind.
        ArchError
            ``arch`` does not parse.
        """
        where = _Filter.of(dataset, arch, config_hash, kinds)
        infos = self._select(self._scan(), where)
        infos.sort(key=lambda i: (i.created, i.key))
        return infos

    def rank(
        self,
        by: str = "beta_eff",
        *,
        k: int | None = None,
        dataset: str | None = None,
        arch: str | Arch | None = None,
        config_hash: str | None = None,
        kinds: Collection[str] | None = None,
    ) -> list[EntryInfo]:
        """Index records sorted by a summary or score, descending, NaN and missing last.

        Ties keep key order. ``k`` limits the result (``None``: all). Filters
        as in :meth:`index`; every kind by default, so a pruned run's partial
        reading is ranked beside complete runs (its :attr:`EntryInfo.kind`
        says so; ``kinds=("complete",)`` ranks finished runs only, as Optuna's
        ``best_trial`` does).

        Raises
        ------
        ConfigError
            ``by`` names neither a summary scalar nor a score of any entry in
            a non-empty cache, ``k`` is negative, or a filter is bad.
        """
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
            raise ConfigError(f"k must be a non-negative int, but got {k=}.")
        where = _Filter.of(dataset, arch, config_hash, kinds)
        return self._rank(self._scan(), by, k, where)

    def _rank(
        self, catalog: Mapping[str, _Loc], by: str, k: int | None, where: _Filter
    ) -> list[EntryInfo]:
        if not isinstance(by, str) or not by:
            raise ConfigError(f"by must name a summary scalar or a score, but got {by=}.")
        if catalog and not any(
            by in loc.info.summary or by in loc.info.scores for loc in catalog.values()
        ):
            known = sorted(
                {n for loc in catalog.values() for n in (*loc.info.summary, *loc.info.scores)}
            )
            raise ConfigError(
                f"no cached entry has a summary scalar or score named {by!r}; "
                f"known: {', '.join(known)}."
            )
        infos = self._select(catalog, where)

        def order(info: EntryInfo) -> tuple[bool, float, str]:
            value = info.value(by)
            missing = math.isnan(value)
            return (missing, 0.0 if missing else -value, info.key)

        infos.sort(key=order)
        return infos if k is None else infos[:k]

    def top(
        self,
        k: int,
        *,
        by: str = "beta_eff",
        dataset: str | None = None,
        arch: str | Arch | None = None,
        config_hash: str | None = None,
        kinds: Collection[str] | None = None,
    ) -> list[Entry]:
        """The ``k`` best entries by a summary scalar or score (descending, NaN last).

        Parameters
        ----------
        k : int
            How many (fewer when the cache holds fewer).
        by : str
            A summary key (``"beta_eff"``, ``"proxy_valid_acc"``, ...) or a
            score name (``"synflow"``, ...).
        dataset, arch, config_hash, kinds : optional
            Filters as in :meth:`index`. Every kind by default: pass
            ``kinds=("complete",)`` to leave out runs a pruner stopped.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ConfigError(f"k must be a non-negative int, but got {k=}.")
        where = _Filter.of(dataset, arch, config_hash, kinds)
        for _ in range(RETRIES):  # a file found damaged while loading: rank again without it
            catalog = self._scan()
            infos = self._rank(catalog, by, k, where)
            entries, damaged = self._load([i.key for i in infos], catalog)
            if not damaged:
                break
        return entries

    def entries(
        self,
        *,
        dataset: str | None = None,
        arch: str | Arch | None = None,
        config_hash: str | None = None,
        kinds: Collection[str] | None = None,
    ) -> list[Entry]:
        """Every matching entry with its trajectory, oldest first (filters as in :meth:`index`).

        Damaged files are skipped with a logged warning and listed in
        :attr:`damaged`; they never hide healthy entries.
        """
        where = _Filter.of(dataset, arch, config_hash, kinds)
        for _ in range(RETRIES):  # a file found damaged while loading: list again without it
            catalog = self._scan()
            infos = self._select(catalog, where)
            infos.sort(key=lambda i: (i.created, i.key))
            entries, damaged = self._load([i.key for i in infos], catalog)
            if not damaged:
                break
        return entries

    def stats(self) -> dict[str, int]:
        """Counts of entries, entry files, shards, damaged, quarantined and temporary files."""
        catalog = self._scan()
        try:
            tmp = sum(1 for n in os.listdir(self.path / TMP) if TMP_RE.fullmatch(n))
        except FileNotFoundError:
            tmp = 0
        return {
            "entries": len(catalog),
            "loose_files": len(scan_dir(self.path / ENTRIES, ENTRY_RE)),
            "packs": len(scan_dir(self.path / PACKS, PACK_RE)),
            "damaged": len(self._damaged),
            "quarantined": len(self.quarantined),
            "temporary": tmp,
        }


_NO_INFO = EntryInfo(
    key="", arch="", canonical="", dataset="", seed=0, config_hash="", created=math.nan, summary={}
)
