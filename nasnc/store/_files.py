"""File-system steps of the cache: names, listings, atomic publish, lock, cleaning, quarantine.

Nothing here knows HDF5; the layout these names make is drawn in :mod:`nasnc.store`.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from nasnc._errors import StoreError

__all__ = [
    "ENTRIES",
    "ENTRY_RE",
    "KNOWN",
    "LOCK",
    "MARKER",
    "PACKS",
    "PACK_RE",
    "QUARANTINE",
    "RETRIES",
    "TMP",
    "TMP_RE",
    "Ident",
    "check_writable",
    "clean_tmp",
    "exclusive_lock",
    "fsync",
    "host",
    "ident_of",
    "listing",
    "move_aside",
    "publish",
    "quarantined",
    "scan_dir",
]

logger = logging.getLogger(__name__)

MARKER = "nasnc-store.h5"
ENTRIES = "entries"
PACKS = "packs"
TMP = "tmp"
QUARANTINE = "quarantine"
LOCK = "compact.lock"
KNOWN = {MARKER, ENTRIES, PACKS, TMP, QUARANTINE, LOCK}
ENTRY_RE = re.compile(r"[0-9a-f]{24}\.h5")
PACK_RE = re.compile(r"pack-(?P<ns>\d{20})-(?P<n>\d{8})-[0-9a-f]{8}\.h5")
TMP_RE = re.compile(
    r"(?P<what>[0-9a-z]+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp"
)
RETRIES = 20
_LISTINGS = 200  # attempts at two agreeing listings before giving up

Ident = tuple[int, int, int]  # (inode, size, mtime_ns): a visible file never changes in place


def host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def ident_of(st: os.stat_result) -> Ident:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------ writing
def publish(
    tmp: Path, final: Path, write: Callable[[Path], None], *, durable: bool, error: str
) -> None:
    """Write ``tmp``, then rename it atomically to ``final`` (fsynced when ``durable``).

    Readers see ``final`` whole or not at all; on any failure ``tmp`` is
    removed and an ``OSError`` becomes :class:`StoreError` starting with ``error``.
    """
    try:
        write(tmp)
        if durable:
            fsync(tmp)
        os.replace(tmp, final)
        if durable:
            fsync(final.parent)
    except BaseException as exc:
        with suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise StoreError(f"{error}: {exc}") from exc
        raise


def fsync(path: Path) -> None:
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


def check_writable(path: Path, probe: Path, min_free_bytes: int) -> None:
    """Raise :class:`StoreError` unless a file can be written in ``probe``'s folder
    and the file system of ``path`` has ``min_free_bytes`` free.

    Called when a writing :class:`~nasnc.store.Store` opens, so a read-only
    folder or a full disk stops a command before it trains anything.
    """
    try:
        with open(probe, "xb") as fh:
            fh.write(b"nasnc write probe\n")
            fh.flush()
        probe.unlink()
    except OSError as exc:
        with suppress(OSError):
            probe.unlink()
        raise StoreError(
            f"the cache {path} is not writable ({exc.strerror or exc}); results could not "
            "be stored. Choose another cache folder or fix its permissions."
        ) from None
    try:
        free = shutil.disk_usage(path).free
    except OSError:  # pragma: no cover - file systems without statvfs
        return
    if free < min_free_bytes:
        raise StoreError(
            f"the cache {path} has {free / 2**20:.1f} MiB free, less than the "
            f"{min_free_bytes / 2**20:.0f} MiB needed to store results safely; free some "
            "space or choose another cache folder."
        )


@contextmanager
def exclusive_lock(path: Path, wait: bool) -> Iterator[bool]:
    """``flock`` ``path`` exclusively; yields whether it was acquired (``wait=False`` may fail)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX platforms
        raise StoreError("compaction needs POSIX file locks (fcntl)") from None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open the lock file {path}: {exc}") from None
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


# ------------------------------------------------------------------ listing
def scan_dir(directory: Path, pattern: re.Pattern[str]) -> list[tuple[str, Ident]]:
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
                out.append((item.name, ident_of(st)))
    except FileNotFoundError:
        return []
    out.sort()
    return out


Listing = tuple[list[tuple[str, Ident]], list[tuple[str, Ident]]]


def listing(root: Path, *, entries: bool = True) -> Listing:
    """Entry files and shards of the cache at ``root``, as two consecutive listings agree.

    ``readdir`` is no snapshot: while a compaction renames a merged shard in
    and deletes its sources, one listing can miss both. Every file a
    compaction deletes has its replacement in place before, so when two
    listings in a row agree, no entry was missed between them.
    """
    previous: Listing | None = None
    for attempt in range(_LISTINGS):
        current = (
            scan_dir(root / ENTRIES, ENTRY_RE) if entries else [],
            scan_dir(root / PACKS, PACK_RE),
        )
        if current == previous:
            return current
        previous = current
        if attempt >= 10:
            time.sleep(0.001 * attempt)
    raise StoreError(f"the cache {root} kept changing while being listed; try again.")


# ----------------------------------------------------------------- cleaning
def clean_tmp(root: Path, *, older_than_s: float, min_age_s: float) -> list[Path]:
    """Remove temporary files of dead writers (older than ``min_age_s``) or stale ones."""
    removed = []
    now = time.time()
    me = host()
    try:
        items = list(os.scandir(root / TMP))
    except FileNotFoundError:
        return []
    for item in items:
        match = TMP_RE.fullmatch(item.name)
        if match is None:
            continue
        try:
            age = now - item.stat().st_mtime
        except FileNotFoundError:
            continue
        # a pid is only meaningful on this host, and containers may share a host name
        # with separate pid spaces: a "dead" writer must also have been silent a while
        dead = match["host"] == me and age > min_age_s and not _pid_alive(int(match["pid"]))
        if dead or age > older_than_s:
            try:
                os.unlink(item.path)
            except FileNotFoundError:
                continue
            removed.append(Path(item.path))
    if removed:
        logger.info("removed %d temporary file(s) from %s", len(removed), root / TMP)
    return removed


def _take(path: Path, ident: Ident, dest: Path) -> bool:
    """Rename ``path`` to ``dest`` if it is still the file ``ident`` names; whether it did.

    A file already replaced is left alone. One replaced by a writer between
    the check and the rename is put back (for that instant a reader may see
    an older copy elsewhere): the writer keeps its file.
    """
    try:
        if ident_of(path.stat()) != ident:  # replaced before now: never moved at all
            return False
        os.rename(path, dest)
    except FileNotFoundError:
        return False
    if ident_of(dest.stat()) != ident:  # lost a race with a writer: restore its file
        with suppress(FileExistsError):  # unless a newer one still is already there
            os.link(dest, path)
        dest.unlink()
        return False
    return True


def retire(root: Path, path: Path, ident: Ident) -> bool:
    """Delete ``path`` if it is still the file ``ident`` names; whether it did.

    It is taken into ``<root>/tmp/`` (:func:`_take`) and deleted there: a plain
    unlink after a check would delete a newer file a writer put in between.
    """
    dest = root / TMP / f"gone.{host()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    if not _take(path, ident, dest):
        return False
    dest.unlink()
    return True


# --------------------------------------------------------------- quarantine
_NOTE = ".why.txt"


def move_aside(root: Path, path: Path, ident: Ident, reason: str) -> Path | None:
    """Move the damaged file ``path`` into ``<root>/quarantine/`` with a note saying why.

    Returns the new path, or ``None`` when ``path`` is gone or is no longer
    the file found damaged (a writer replaced it with a fresh copy: that one
    stays). A file replaced in the instant between the check and the move is
    put back.
    """
    folder = root / QUARANTINE
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    dest = folder / f"{stamp}-{uuid.uuid4().hex[:6]}-{path.parent.name}-{path.name}"
    if not _take(path, ident, dest):
        return None
    with suppress(OSError):
        dest.with_name(dest.name + _NOTE).write_text(
            f"{path}\n{reason}\nmoved by {host()} pid {os.getpid()} at {stamp}\n",
            encoding="utf-8",
        )
    fsync(path.parent)
    fsync(folder)
    return dest


def quarantined(root: Path) -> list[Path]:
    """The files in ``<root>/quarantine/`` (not their notes), oldest first."""
    try:
        names = sorted(n for n in os.listdir(root / QUARANTINE) if not n.endswith(_NOTE))
    except FileNotFoundError:
        return []
    return [root / QUARANTINE / n for n in names]
