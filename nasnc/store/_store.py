"""The :class:`Store`: a directory of immutable HDF5 files (see :mod:`nasnc.store`)."""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasnc._errors import ConfigError, StoreError
from nasnc.space import Arch
from nasnc.store._entry import KEY_PATTERN, Entry, _check, _Checked, _default_version
from nasnc.store._hdf5 import (
    Damaged,
    EntryInfo,
    PackIndex,
    read_entry_file,
    read_entry_info,
    read_marker,
    read_pack_entries,
    read_pack_index,
    write_entry_file,
    write_marker,
    write_pack,
)

__all__ = ["Damage", "Store"]

logger = logging.getLogger(__name__)

MARKER = "nasnc-store.h5"
ENTRIES = "entries"
PACKS = "packs"
TMP = "tmp"
LOCK = "compact.lock"
_KNOWN = {MARKER, ENTRIES, PACKS, TMP, LOCK}
_PACK_RE = re.compile(r"pack-(?P<ns>\d{20})-(?P<n>\d{8})-[0-9a-f]{8}\.h5")
_TMP_RE = re.compile(
    r"(?P<what>[0-9a-z]+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp"
)
_RETRIES = 20

_Ident = tuple[int, int, int]  # (inode, size, mtime_ns): a visible file never changes in place


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
    ident: _Ident
    row: int | None
    info: EntryInfo


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _publish(
    tmp: Path, final: Path, write: Callable[[Path], None], *, durable: bool, error: str
) -> None:
    """Write ``tmp``, then rename it atomically to ``final`` (fsynced when ``durable``).

    Readers see ``final`` whole or not at all; on any failure ``tmp`` is
    removed and an ``OSError`` becomes :class:`StoreError` starting with ``error``.
    """
    try:
        write(tmp)
        if durable:
            _fsync(tmp)
        os.replace(tmp, final)
        if durable:
            _fsync(final.parent)
    except BaseException as exc:
        with suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise StoreError(f"{error}: {exc}") from exc
        raise


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # pragma: no cover - file systems without fsync on directories
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _list(directory: Path, pattern: re.Pattern[str]) -> list[tuple[str, _Ident]]:
    """Names matching ``pattern`` in ``directory`` with their identity, sorted by name."""
    out = []
    try:
        with os.scandir(directory) as it:
            for item in it:
                if not pattern.fullmatch(item.name):
                    continue
                try:
                    st = item.stat()
                except FileNotFoundError:
                    continue
                out.append((item.name, (st.st_ino, st.st_size, st.st_mtime_ns)))
    except FileNotFoundError:
        return []
    out.sort()
    return out


_ENTRY_RE = re.compile(r"[0-9a-f]{24}\.h5")


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
        (for readers such as ``nasnc scores``) and nothing is ever created.
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
        self.path = Path(os.path.abspath(os.fspath(path)))
        self._writer_id = writer_id
        self.create = create
        self.durable = durable
        self.compact_every = compact_every
        self.fanout = fanout
        self._loose_cache: dict[str, tuple[_Ident, EntryInfo | str]] = {}
        self._pack_cache: dict[str, tuple[_Ident, PackIndex | str]] = {}
        self._locs: dict[str, tuple[_Ident, list[tuple[_Loc, int]]]] = {}
        self._damaged: dict[Path, str] = {}
        self._warned: set[tuple[str, _Ident]] = set()
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
        if marker.exists():
            try:
                read_marker(marker)
            except (Damaged, FileNotFoundError) as exc:
                raise StoreError(f"{marker}: {exc}") from None
        else:
            others = sorted(p.name for p in path.iterdir() if p.name not in _KNOWN)
            if others:
                raise StoreError(
                    f"{path} is not a nasnc cache (no {MARKER}) and is not empty "
                    f"(holds {', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); "
                    "refusing to use it."
                )
            if not self.create:
                raise StoreError(f"{path} is not a nasnc cache (no {MARKER}).")
        if self.create:
            try:
                for sub in (ENTRIES, PACKS, TMP):
                    (path / sub).mkdir(exist_ok=True)
                if not marker.exists():
                    tmp = self._tmp_path("store")
                    write_marker(tmp, nasnc_version=_default_version(), created=time.time())
                    os.replace(tmp, marker)
            except OSError as exc:
                raise StoreError(f"cannot initialise the cache {path}: {exc}") from None

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
        return self._writer_id or f"{_host()}-{os.getpid()}"

    @property
    def damaged(self) -> list[Damage]:
        """Files skipped by the latest scan (or failed by :meth:`get`), with reasons."""
        return [Damage(p, r) for p, r in sorted(self._damaged.items())]

    def _tmp_path(self, what: str) -> Path:
        return self.path / TMP / f"{what}.{_host()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"

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
            The entry is malformed (the message names the field) or the file
            cannot be written.
        ArchError
            ``entry.arch`` does not parse or ``entry.canonical`` is not its
            canonical form.
        """
        checked = _check(entry)
        final = self._entry_path(checked.key)
        tmp = self._tmp_path(checked.key)
        _publish(
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
            loose = len(_list(self.path / ENTRIES, _ENTRY_RE))
            if loose >= self.compact_every:
                try:
                    self.compact(wait=False)
                except (StoreError, OSError) as exc:
                    logger.warning("automatic compaction of %s failed: %s", self.path, exc)
        return checked.key

    @contextmanager
    def _lock(self, wait: bool) -> Iterator[bool]:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX platforms
            raise StoreError("compaction needs POSIX file locks (fcntl)") from None
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def compact(self, *, full: bool = False, wait: bool = True) -> int:
        """Pack the entry files into a shard and merge shards of the same size tier.

        Crash-safe: a new shard is written under a temporary name, flushed
        and renamed into ``packs/`` before any merged file is deleted, so a
        kill at any point leaves every entry readable (possibly in two places
        for a moment; readers take entry files over shards and, between
        shards, the copy stored last). Damaged files are left in place and
        never merged. One compaction runs at a time (an exclusive ``flock``
        on ``compact.lock``, released by the kernel if its holder dies).

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
        with self._lock(wait) as acquired:
            if not acquired:
                return 0
            return self._compact(full)

    def _tier(self, n: int) -> int:
        return int(math.log(max(n, 1), self.fanout))

    def _compact(self, full: bool) -> int:
        self.clean(older_than_s=86400.0)  # leftovers of killed writers (same host) or stale
        packs: list[tuple[str, int]] = []  # (name, entries) of healthy shards
        for name, ident in _list(self.path / PACKS, _PACK_RE):
            try:
                self._pack_index(name, ident)
            except (Damaged, FileNotFoundError):
                continue
            packs.append((name, int(name.split("-")[2])))  # pack-<ns>-<n>-<id>.h5
        written = 0
        loose = _list(self.path / ENTRIES, _ENTRY_RE)
        if loose or (full and len(packs) > 1):
            made = self._merge(loose, packs if full else [])
            if made is not None:
                if full:
                    packs = []
                packs.append(made)
                written += made[1]
        while not full:  # size-tiered merging, smallest tier first
            tiers: dict[int, list[tuple[str, int]]] = {}
            for pack in packs:
                tiers.setdefault(self._tier(pack[1]), []).append(pack)
            group = next((g for _, g in sorted(tiers.items()) if len(g) >= self.fanout), None)
            if group is None:
                break
            made = self._merge([], group)
            packs = [p for p in packs if p not in group]
            if made is None:
                break
            packs.append(made)
            written += made[1]
        return written

    def _merge(
        self, loose: list[tuple[str, _Ident]], packs: list[tuple[str, int]]
    ) -> tuple[str, int] | None:
        """Write the entries of ``loose`` files and ``packs`` into one new shard."""
        merged: dict[str, tuple[_Checked, int]] = {}
        sources: list[str] = []
        for name, _ in packs:  # between shards the copy stored last wins
            path = self.path / PACKS / name
            try:
                st = path.stat()
                index = self._pack_index(name, (st.st_ino, st.st_size, st.st_mtime_ns))
                entries = read_pack_entries(path, index, range(len(index.infos)))
            except (Damaged, FileNotFoundError) as exc:
                logger.warning("compaction skips %s: %s", path, exc)
                continue
            sources.append(name)
            for entry, stored in zip(entries, index.stored_ns):
                if entry.key not in merged or merged[entry.key][1] < stored:
                    merged[entry.key] = (_check(entry), stored)
        used: list[tuple[str, _Ident]] = []
        for name, ident in loose:  # entry files win over shards
            path = self.path / ENTRIES / name
            try:
                entry, stored = read_entry_file(path)
            except FileNotFoundError:
                continue
            except Damaged as exc:
                logger.warning("compaction skips damaged %s: %s", path, exc)
                continue
            if entry.key != name[:-3]:
                logger.warning("compaction skips %s: it holds key %s", path, entry.key)
                continue
            merged[entry.key] = (_check(entry), stored)
            used.append((name, ident))
        if not merged:
            return None
        n = len(merged)
        name = f"pack-{time.time_ns():020d}-{n:08d}-{uuid.uuid4().hex[:8]}.h5"
        pack = self.path / PACKS / name
        tmp = self._tmp_path("pack")
        _publish(
            tmp,
            pack,
            lambda path: write_pack(
                path,
                [c for c, _ in merged.values()],
                [t for _, t in merged.values()],
                writer=self.writer_id,
                created=time.time(),
                nasnc_version=_default_version(),
            ),
            durable=True,  # always: the merged files are deleted next
            error=f"cannot write the packed shard {pack}",
        )
        for loose_name, ident in used:
            path = self.path / ENTRIES / loose_name
            with suppress(FileNotFoundError):
                st = path.stat()
                if (st.st_ino, st.st_size, st.st_mtime_ns) == ident:  # not replaced meanwhile
                    path.unlink()
        for source in sources:
            with suppress(FileNotFoundError):
                (self.path / PACKS / source).unlink()
        _fsync(self.path / ENTRIES)
        _fsync(self.path / PACKS)
        logger.info(
            "packed %d entries (%d entry files, %d shards) into %s",
            n,
            len(used),
            len(sources),
            name,
        )
        return name, n

    def clean(self, *, older_than_s: float = 3600.0) -> list[Path]:
        """Remove temporary files left by killed writers; return the removed paths.

        A temporary file is removed when its writer (same host) is no longer
        running, or when it is older than ``older_than_s`` seconds. Readers
        never look at temporary files, so cleaning is only about disk space;
        every compaction cleans with ``older_than_s`` of one day.
        """
        removed = []
        now = time.time()
        host = _host()
        try:
            items = list(os.scandir(self.path / TMP))
        except FileNotFoundError:
            return []
        for item in items:
            match = _TMP_RE.fullmatch(item.name)
            if match is None:
                continue
            try:
                age = now - item.stat().st_mtime
            except FileNotFoundError:
                continue
            dead = match["host"] == host and not _pid_alive(int(match["pid"]))
            if dead or age > older_than_s:
                try:
                    os.unlink(item.path)
                except FileNotFoundError:
                    continue
                removed.append(Path(item.path))
        if removed:
            logger.info("removed %d temporary file(s) from %s", len(removed), self.path / TMP)
        return removed

    # ------------------------------------------------------------ reading
    def _pack_index(self, name: str, ident: _Ident) -> PackIndex:
        cached = self._pack_cache.get(name)
        if cached is None or cached[0] != ident:
            try:
                value: PackIndex | str = read_pack_index(self.path / PACKS / name)
            except Damaged as exc:
                value = str(exc)
            cached = (ident, value)
            self._pack_cache[name] = cached
        if isinstance(cached[1], str):
            raise Damaged(cached[1])
        return cached[1]

    def _pack_locs(self, name: str, ident: _Ident) -> list[tuple[_Loc, int]]:
        cached = self._locs.get(name)
        if cached is None or cached[0] != ident:
            index = self._pack_index(name, ident)
            path = self.path / PACKS / name
            locs = [
                (_Loc(path, ident, row, info), when)
                for row, (info, when) in enumerate(zip(index.infos, index.stored_ns))
            ]
            cached = (ident, locs)
            self._locs[name] = cached
        return cached[1]

    def _loose_info(self, name: str, ident: _Ident) -> EntryInfo:
        cached = self._loose_cache.get(name)
        if cached is None or cached[0] != ident:
            try:
                info = read_entry_info(self.path / ENTRIES / name)
                value: EntryInfo | str = info
                if info.key != name[:-3]:
                    value = f"holds the entry {info.key}, not the one its name says"
            except Damaged as exc:
                value = str(exc)
            cached = (ident, value)
            self._loose_cache[name] = cached
        if isinstance(cached[1], str):
            raise Damaged(cached[1])
        return cached[1]

    def _note_damage(
        self, damaged: dict[Path, str], path: Path, ident: _Ident, reason: str
    ) -> None:
        damaged[path] = reason
        if (path.name, ident) not in self._warned:
            self._warned.add((path.name, ident))
            logger.warning("skipping damaged cache file %s: %s", path, reason)

    def _scan(self) -> dict[str, _Loc]:
        """Map every readable key to its winning copy; record damaged files.

        Entry files are listed before shards: compaction renames a shard into
        place before deleting what it merged, so whatever vanished from the
        first listing is in the second. A file that vanishes while being read
        makes the scan start again. An entry file wins over shards; between
        shards, the copy stored last (``stored_ns``) wins.
        """
        for _ in range(_RETRIES):
            loose = _list(self.path / ENTRIES, _ENTRY_RE)
            packs = _list(self.path / PACKS, _PACK_RE)
            catalog: dict[str, _Loc] = {}
            stored: dict[str, int] = {}
            damaged: dict[Path, str] = {}
            try:
                for name, ident in packs:
                    path = self.path / PACKS / name
                    try:
                        locs = self._pack_locs(name, ident)
                    except Damaged as exc:
                        self._note_damage(damaged, path, ident, str(exc))
                        continue
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
                        self._note_damage(damaged, path, ident, str(exc))
                        continue
                    catalog[info.key] = _Loc(path, ident, None, info)
            except FileNotFoundError:
                continue
            seen_loose = {n for n, _ in loose}
            seen_packs = {n for n, _ in packs}
            self._loose_cache = {k: v for k, v in self._loose_cache.items() if k in seen_loose}
            self._pack_cache = {k: v for k, v in self._pack_cache.items() if k in seen_packs}
            self._locs = {k: v for k, v in self._locs.items() if k in seen_packs}
            self._damaged = damaged
            return catalog
        raise StoreError(f"the cache {self.path} kept changing while being read; try again.")

    def _mark_damaged(self, loc: _Loc, reason: str) -> None:
        """Remember a file found damaged while reading its arrays (skipped from now on)."""
        cache = self._loose_cache if loc.row is None else self._pack_cache
        cache[loc.path.name] = (loc.ident, reason)
        self._locs.pop(loc.path.name, None)
        self._note_damage(self._damaged, loc.path, loc.ident, reason)

    def _load(self, keys: Sequence[str], catalog: dict[str, _Loc]) -> tuple[list[Entry], bool]:
        """Full entries for ``keys`` (in that order) and whether a file proved damaged.

        Index records are read without the trajectories, so damage to array
        data shows only here; the file is then skipped by every later scan.
        """
        for _ in range(_RETRIES):
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
                            found[key] = read_entry_file(loc.path)[0]
                        except Damaged as exc:
                            self._mark_damaged(loc, str(exc))
                            damaged = True
                    else:
                        by_pack.setdefault(loc.path, []).append(loc)
                for path, locs in by_pack.items():
                    try:
                        index = self._pack_index(path.name, locs[0].ident)
                        entries = read_pack_entries(path, index, [loc.row or 0 for loc in locs])
                    except Damaged as exc:
                        self._mark_damaged(locs[0], str(exc))
                        damaged = True
                        continue
                    for entry in entries:
                        found[entry.key] = entry
            except FileNotFoundError:
                catalog = self._scan()
                continue
            return [found[k] for k in keys if k in found], damaged
        raise StoreError(f"the cache {self.path} kept changing while being read; try again.")

    def get(self, key: str) -> Entry | None:
        """The entry stored under ``key``, or ``None`` when there is none.

        Raises
        ------
        StoreError
            The file holding ``key`` is corrupt, truncated or of an unknown
            ``schema_version`` (the message names the file).
        """
        if not isinstance(key, str):
            raise ConfigError(f"a cache key is a str, but got {key=}.")
        if not KEY_PATTERN.fullmatch(key):
            return None
        path = self._entry_path(key)
        try:
            entry, _ = read_entry_file(path)
        except FileNotFoundError:
            pass
        except Damaged as exc:
            self._damaged[path] = str(exc)
            raise StoreError(f"cannot read entry {key} from {path}: {exc}") from None
        else:
            if entry.key != key:
                reason = f"holds the entry {entry.key}, not the one its name says"
                self._damaged[path] = reason
                raise StoreError(f"cannot read entry {key} from {path}: {reason}")
            return entry
        for _ in range(_RETRIES):
            try:
                best: tuple[int, _Loc, PackIndex] | None = None
                for name, ident in _list(self.path / PACKS, _PACK_RE):
                    pack = self.path / PACKS / name
                    try:
                        index = self._pack_index(name, ident)
                    except Damaged as exc:
                        self._note_damage(self._damaged, pack, ident, str(exc))
                        continue
                    row = index.rows.get(key)
                    if row is not None and (best is None or best[0] <= index.stored_ns[row]):
                        loc = _Loc(pack, ident, row, index.infos[row])
                        best = (index.stored_ns[row], loc, index)
                if best is None:
                    return None
                _, loc, index = best
                try:
                    return read_pack_entries(loc.path, index, [loc.row or 0])[0]
                except Damaged as exc:
                    self._mark_damaged(loc, str(exc))
                    raise StoreError(f"cannot read entry {key} from {loc.path}: {exc}") from None
            except FileNotFoundError:
                continue
        raise StoreError(f"the cache {self.path} kept changing while being read; try again.")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._scan()

    def __len__(self) -> int:
        return len(self._scan())

    def keys(self) -> list[str]:
        """Every readable key, sorted."""
        return sorted(self._scan())

    def _select(
        self,
        catalog: Mapping[str, _Loc],
        dataset: str | None,
        arch: str | Arch | None,
        config_hash: str | None,
    ) -> list[EntryInfo]:
        canonical = None if arch is None else Arch.parse(arch).canonical()
        return [
            loc.info
            for loc in catalog.values()
            if (dataset is None or loc.info.dataset == dataset)
            and (canonical is None or loc.info.canonical == canonical)
            and (config_hash is None or loc.info.config_hash == config_hash)
        ]

    def index(
        self,
        *,
        dataset: str | None = None,
        arch: str | Arch | None = None,
        config_hash: str | None = None,
    ) -> list[EntryInfo]:
        """Index records (no trajectories) of the matching entries, oldest first.

        Cheap over many thousands of entries: shards keep these columns
        together and are read once per process.

        Parameters
        ----------
        dataset : str, optional
        arch : Arch or str, optional
            Matches every cell isomorphic to it (same canonical form).
        config_hash : str, optional
            :func:`config_hash` of the proxy configuration.
        """
        infos = self._select(self._scan(), dataset, arch, config_hash)
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
    ) -> list[EntryInfo]:
        """Index records sorted by a summary or score, descending, NaN and missing last.

        Ties keep key order. ``k`` limits the result (``None``: all).

        Raises
        ------
        ConfigError
            ``by`` names neither a summary scalar nor a score of any entry in
            a non-empty cache, or ``k`` is negative.
        """
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
            raise ConfigError(f"k must be a non-negative int, but got {k=}.")
        return self._rank(self._scan(), by, k, dataset, arch, config_hash)

    def _rank(
        self,
        catalog: Mapping[str, _Loc],
        by: str,
        k: int | None,
        dataset: str | None,
        arch: str | Arch | None,
        config_hash: str | None,
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
        infos = self._select(catalog, dataset, arch, config_hash)

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
    ) -> list[Entry]:
        """The ``k`` best entries by a summary scalar or score (descending, NaN last).

        Parameters
        ----------
        k : int
            How many (fewer when the cache holds fewer).
        by : str
            A summary key (``"beta_eff"``, ``"proxy_valid_acc"``, ...) or a
            score name (``"synflow"``, ...).
        dataset, arch, config_hash : optional
            Filters as in :meth:`index`.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ConfigError(f"k must be a non-negative int, but got {k=}.")
        for _ in range(_RETRIES):  # a file found damaged while loading: rank again without it
            catalog = self._scan()
            infos = self._rank(catalog, by, k, dataset, arch, config_hash)
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
    ) -> list[Entry]:
        """Every matching entry with its trajectory, oldest first (see :meth:`index`).

        Damaged files are skipped with a logged warning and listed in
        :attr:`damaged`; they never hide healthy entries.
        """
        for _ in range(_RETRIES):  # a file found damaged while loading: list again without it
            catalog = self._scan()
            infos = self._select(catalog, dataset, arch, config_hash)
            infos.sort(key=lambda i: (i.created, i.key))
            entries, damaged = self._load([i.key for i in infos], catalog)
            if not damaged:
                break
        return entries

    def stats(self) -> dict[str, int]:
        """Counts of entries, loose entry files, shards, damaged and temporary files."""
        catalog = self._scan()
        try:
            tmp = sum(1 for n in os.listdir(self.path / TMP) if _TMP_RE.fullmatch(n))
        except FileNotFoundError:
            tmp = 0
        return {
            "entries": len(catalog),
            "loose_files": len(_list(self.path / ENTRIES, _ENTRY_RE)),
            "packs": len(_list(self.path / PACKS, _PACK_RE)),
            "damaged": len(self._damaged),
            "temporary": tmp,
        }
