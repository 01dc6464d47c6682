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
from collections.abc import Iterator, Mapping, Sequence
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
_PACK_RE = re.compile(r"pack-\d{20}-[0-9a-f]{8}\.h5")
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
        :meth:`put` packs the loose entry files into a shard once this many
        exist (``None``: only explicit :meth:`compact` calls).
    max_packs : int
        When a compaction would leave more shards than this, all shards are
        merged into one.

    Notes
    -----
    No HDF5 handle is held between calls, so a store can be pickled into
    worker processes (each opens files lazily). ``put`` may be called from
    many processes at once; readers see either the old or the new state of
    any entry, never a partial one.

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
        compact_every: int | None = 256,
        max_packs: int = 8,
    ) -> None:
        if compact_every is not None and (
            isinstance(compact_every, bool)
            or not isinstance(compact_every, int)
            or compact_every < 1
        ):
            raise ConfigError(
                f"compact_every must be a positive int or None, but got {compact_every=}."
            )
        if isinstance(max_packs, bool) or not isinstance(max_packs, int) or max_packs < 1:
            raise ConfigError(f"max_packs must be a positive int, but got {max_packs=}.")
        if writer_id is not None and not isinstance(writer_id, str):
            raise ConfigError(f"writer_id must be a str or None, but got {writer_id=}.")
        self.path = Path(os.path.abspath(os.fspath(path)))
        self._writer_id = writer_id
        self.create = create
        self.durable = durable
        self.compact_every = compact_every
        self.max_packs = max_packs
        self._loose_cache: dict[str, tuple[_Ident, EntryInfo | str]] = {}
        self._pack_cache: dict[str, tuple[_Ident, PackIndex | str]] = {}
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
        try:
            write_entry_file(tmp, checked, writer=self.writer_id)
            if self.durable:
                _fsync(tmp)
            os.replace(tmp, final)
            if self.durable:
                _fsync(final.parent)
        except BaseException as exc:
            with suppress(OSError):
                tmp.unlink()
            if isinstance(exc, OSError):
                raise StoreError(f"cannot write entry {checked.key} to {final}: {exc}") from exc
            raise
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
        """Merge loose entry files (and, when needed, shards) into one packed shard.

        Crash-safe: the new shard is written under a temporary name, flushed
        and renamed into ``packs/`` before any merged file is deleted, so a
        kill at any point leaves every entry readable (possibly in two places
        for a moment; readers prefer the newer copy). Damaged files are left
        in place and never merged. One compaction runs at a time (an
        exclusive ``flock`` on ``compact.lock``).

        Parameters
        ----------
        full : bool
            Merge every shard too (default: only when more than
            ``max_packs`` would remain).
        wait : bool
            Wait for a running compaction in another process (default), or
            return 0 at once.

        Returns
        -------
        int
            Number of entries in the new shard (0 when nothing was merged).
        """
        with self._lock(wait) as acquired:
            if not acquired:
                return 0
            return self._compact(full)

    def _compact(self, full: bool) -> int:
        loose = _list(self.path / ENTRIES, _ENTRY_RE)
        packs = []
        for name, ident in _list(self.path / PACKS, _PACK_RE):
            try:
                packs.append((name, ident, self._pack_index(name, ident)))
            except (Damaged, FileNotFoundError):
                continue
        merge_packs = full or len(packs) + (1 if loose else 0) > self.max_packs
        sources = packs if merge_packs else []
        if not loose and len(sources) <= 1:
            return 0
        merged: dict[str, _Checked] = {}
        for name, _, index in sources:  # oldest first: newer copies override
            try:
                entries = read_pack_entries(
                    self.path / PACKS / name, index, range(len(index.infos))
                )
            except (Damaged, FileNotFoundError) as exc:
                logger.warning("compaction skips %s: %s", self.path / PACKS / name, exc)
                sources = [s for s in sources if s[0] != name]
                continue
            for entry in entries:
                merged[entry.key] = _check(entry)
        used: list[tuple[str, _Ident]] = []
        for name, ident in loose:
            path = self.path / ENTRIES / name
            try:
                entry = read_entry_file(path)
            except FileNotFoundError:
                continue
            except Damaged as exc:
                logger.warning("compaction skips damaged %s: %s", path, exc)
                continue
            if entry.key != name[:-3]:
                logger.warning("compaction skips %s: it holds key %s", path, entry.key)
                continue
            merged[entry.key] = _check(entry)
            used.append((name, ident))
        if not merged:
            return 0
        pack = self.path / PACKS / f"pack-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.h5"
        tmp = self._tmp_path("pack")
        try:
            write_pack(
                tmp,
                list(merged.values()),
                writer=self.writer_id,
                created=time.time(),
                nasnc_version=_default_version(),
            )
            _fsync(tmp)  # always: the merged files are deleted next
            os.replace(tmp, pack)
            _fsync(pack.parent)
        except BaseException as exc:
            with suppress(OSError):
                tmp.unlink()
            if isinstance(exc, OSError):
                raise StoreError(f"cannot write the packed shard {pack}: {exc}") from exc
            raise
        for name, ident in used:
            path = self.path / ENTRIES / name
            try:
                st = path.stat()
                if (st.st_ino, st.st_size, st.st_mtime_ns) == ident:  # not replaced meanwhile
                    path.unlink()
            except FileNotFoundError:
                pass
        for name, _, _ in sources:
            with suppress(FileNotFoundError):
                (self.path / PACKS / name).unlink()
        _fsync(self.path / ENTRIES)
        _fsync(self.path / PACKS)
        logger.info(
            "packed %d entries (%d loose files, %d shards) into %s",
            len(merged),
            len(used),
            len(sources),
            pack.name,
        )
        return len(merged)

    def clean(self, *, older_than_s: float = 3600.0) -> list[Path]:
        """Remove temporary files left by killed writers; return the removed paths.

        A temporary file is removed when its writer (same host) is no longer
        running, or when it is older than ``older_than_s`` seconds. Readers
        never look at temporary files, so cleaning is only about disk space.
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
        makes the scan start again.
        """
        for _ in range(_RETRIES):
            loose = _list(self.path / ENTRIES, _ENTRY_RE)
            packs = _list(self.path / PACKS, _PACK_RE)
            catalog: dict[str, _Loc] = {}
            damaged: dict[Path, str] = {}
            try:
                for name, ident in packs:  # oldest first: newer shards override
                    path = self.path / PACKS / name
                    try:
                        index = self._pack_index(name, ident)
                    except Damaged as exc:
                        self._note_damage(damaged, path, ident, str(exc))
                        continue
                    for row, info in enumerate(index.infos):
                        catalog[info.key] = _Loc(path, row, info)
                for name, ident in loose:  # entry files override shards
                    path = self.path / ENTRIES / name
                    try:
                        info = self._loose_info(name, ident)
                    except Damaged as exc:
                        self._note_damage(damaged, path, ident, str(exc))
                        continue
                    catalog[info.key] = _Loc(path, None, info)
            except FileNotFoundError:
                continue
            seen_loose = {n for n, _ in loose}
            seen_packs = {n for n, _ in packs}
            self._loose_cache = {k: v for k, v in self._loose_cache.items() if k in seen_loose}
            self._pack_cache = {k: v for k, v in self._pack_cache.items() if k in seen_packs}
            self._damaged = damaged
            return catalog
        raise StoreError(f"the cache {self.path} kept changing while being read; try again.")

    def _load(self, keys: Sequence[str], catalog: dict[str, _Loc]) -> list[Entry]:
        """Full entries for ``keys`` (in that order); rescans when files move."""
        for _ in range(_RETRIES):
            found: dict[str, Entry] = {}
            by_pack: dict[Path, list[int]] = {}
            try:
                for key in keys:
                    loc = catalog.get(key)
                    if loc is None:
                        continue
                    if loc.row is None:
                        try:
                            found[key] = read_entry_file(loc.path)
                        except Damaged as exc:
                            self._note_damage(self._damaged, loc.path, (0, 0, 0), str(exc))
                    else:
                        by_pack.setdefault(loc.path, []).append(loc.row)
                for path, rows in by_pack.items():
                    cached = self._pack_cache.get(path.name)
                    if cached is None or isinstance(cached[1], str):
                        raise FileNotFoundError(str(path))
                    try:
                        entries = read_pack_entries(path, cached[1], rows)
                    except Damaged as exc:
                        self._note_damage(self._damaged, path, cached[0], str(exc))
                        continue
                    for entry in entries:
                        found[entry.key] = entry
            except FileNotFoundError:
                catalog = self._scan()
                continue
            return [found[k] for k in keys if k in found]
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
            entry = read_entry_file(path)
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
                for name, ident in reversed(_list(self.path / PACKS, _PACK_RE)):  # newest first
                    pack = self.path / PACKS / name
                    try:
                        index = self._pack_index(name, ident)
                    except Damaged as exc:
                        self._note_damage(self._damaged, pack, ident, str(exc))
                        continue
                    row = index.rows.get(key)
                    if row is None:
                        continue
                    try:
                        return read_pack_entries(pack, index, [row])[0]
                    except Damaged as exc:
                        self._damaged[pack] = str(exc)
                        raise StoreError(f"cannot read entry {key} from {pack}: {exc}") from None
                return None
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
        catalog = self._scan()
        infos = self._rank(catalog, by, k, dataset, arch, config_hash)
        return self._load([i.key for i in infos], catalog)

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
        catalog = self._scan()
        infos = self._select(catalog, dataset, arch, config_hash)
        infos.sort(key=lambda i: (i.created, i.key))
        return self._load([i.key for i in infos], catalog)

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
