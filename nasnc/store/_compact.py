"""Compaction: entry files and shards merged into packed shards, damaged files set aside.

Runs under the cache's exclusive ``compact.lock`` (see :meth:`Store.compact`);
the policy (size-tiered merging) and its crash-safety are described in
:mod:`nasnc.store`.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from nasnc._errors import ArchError, ConfigError, StoreError
from nasnc.store._entry import Entry, _check, _Checked, _default_version
from nasnc.store._files import (
    ENTRIES,
    ENTRY_RE,
    PACK_RE,
    PACKS,
    Ident,
    fsync,
    ident_of,
    publish,
    retire,
    scan_dir,
)
from nasnc.store._hdf5 import (
    Damaged,
    PackIndex,
    read_entry_file,
    read_pack_entries,
    read_pack_index,
    write_pack,
)

if TYPE_CHECKING:
    from nasnc.store._store import Store

__all__ = ["compact_locked", "salvage_pack", "write_shard"]

logger = logging.getLogger(__name__)


def write_shard(store: Store, merged: Sequence[tuple[_Checked, int]]) -> tuple[str, int]:
    """Publish ``merged`` (checked entries with their ``stored_ns``) as a new shard."""
    n = len(merged)
    name = f"pack-{time.time_ns():020d}-{n:08d}-{uuid.uuid4().hex[:8]}.h5"
    pack = store.path / PACKS / name
    publish(
        store._tmp_path("pack"),
        pack,
        lambda path: write_pack(
            path,
            [c for c, _ in merged],
            [t for _, t in merged],
            writer=store.writer_id,
            created=time.time(),
            nasnc_version=_default_version(),
        ),
        durable=True,  # always: what it replaces is deleted or moved next
        error=f"cannot write the packed shard {pack}",
    )
    return name, n


def _checked(entry: Entry, where: Path) -> _Checked | None:
    try:
        return _check(entry)
    except (StoreError, ArchError, ConfigError) as exc:  # a verified old file, invalid today
        logger.warning("%s holds an entry that cannot be stored again: %s", where, exc)
        return None


def _verify_snapshots(entries: Sequence[Entry]) -> None:
    """Read every entry's snapshots once and check them, keeping nothing.

    Raises :class:`Damaged`, or :class:`Unreadable` (the file is fine, this
    process could not open it: never quarantined) when the OS refused the open.

    The index record vouches only for the snapshot manifest's digest; what is
    packed must verify, or a damaged snapshot would travel into the new shard.
    """
    for entry in entries:
        if entry.snapshots is not None:
            entry.snapshots.verify()


def salvage_pack(path: Path, index: PackIndex | None = None) -> list[tuple[_Checked, int]]:
    """The rows of a damaged shard that still pass their checksums, one row at a time."""
    if index is None:
        try:
            index = read_pack_index(path)
        except Damaged:
            return []
    out = []
    for row in range(len(index.infos)):
        if row in index.bad:
            continue
        try:
            (entry,) = read_pack_entries(path, index, [row])
            _verify_snapshots([entry])
        except Damaged:
            continue
        checked = _checked(entry, path)
        if checked is not None:
            out.append((checked, index.stored_ns[row]))
    return out


def _tier(n: int, fanout: int) -> int:
    return int(math.log(max(n, 1), fanout))


def compact_locked(store: Store, full: bool) -> int:
    """The body of :meth:`Store.compact`; the caller holds the lock."""
    store.clean(older_than_s=86400.0)  # leftovers of killed writers (same host) or stale
    damaged: dict[Path, tuple[Ident, str]] = {}
    packs: list[tuple[str, int]] = []  # (name, entries) of healthy shards
    for name, ident in scan_dir(store.path / PACKS, PACK_RE):
        try:
            index = store._pack_index(name, ident)
        except Damaged as exc:
            if not exc.movable:  # the OS refused this process the file: it stays as it is
                logger.warning("compaction skips unreadable %s: %s", store.path / PACKS / name, exc)
                continue
            damaged[store.path / PACKS / name] = (ident, str(exc))
            continue
        except FileNotFoundError:
            continue
        if index.bad:
            damaged[store.path / PACKS / name] = (ident, "; ".join(index.bad.values()))
            continue
        packs.append((name, int(name.split("-")[2])))  # pack-<ns>-<n>-<id>.h5
    written = 0
    if damaged:  # salvaged rows come back as new shards, to be merged like any other
        for name, n in store._quarantine_locked(damaged):
            packs.append((name, n))
    loose = scan_dir(store.path / ENTRIES, ENTRY_RE)
    if loose or (full and len(packs) > 1):
        made = _merge(store, loose, packs if full else [])
        if made is not None:
            if full:
                packs = []
            packs.append(made)
            written += made[1]
    while not full:  # size-tiered merging, smallest tier first
        tiers: dict[int, list[tuple[str, int]]] = {}
        for pack in packs:
            tiers.setdefault(_tier(pack[1], store.fanout), []).append(pack)
        group = next((g for _, g in sorted(tiers.items()) if len(g) >= store.fanout), None)
        if group is None:
            break
        made = _merge(store, [], group)
        packs = [p for p in packs if p not in group]
        if made is None:
            break
        packs.append(made)
        written += made[1]
    return written


def _merge(
    store: Store, loose: list[tuple[str, Ident]], packs: list[tuple[str, int]]
) -> tuple[str, int] | None:
    """Write the entries of ``loose`` files and ``packs`` into one new shard.

    A source found damaged on the way gives what still verifies and is moved
    to the quarantine instead of being deleted.
    """
    merged: dict[str, tuple[_Checked, int]] = {}
    sources: list[str] = []
    bad: dict[Path, tuple[Ident, str]] = {}

    def offer(checked: _Checked, stored: int) -> None:  # between shards the copy stored last wins
        if checked.key not in merged or merged[checked.key][1] < stored:
            merged[checked.key] = (checked, stored)

    for name, _ in packs:
        path = store.path / PACKS / name
        try:
            ident = ident_of(path.stat())
            index = store._pack_index(name, ident)
            entries = read_pack_entries(path, index, range(len(index.infos)))
            _verify_snapshots(entries)
        except FileNotFoundError:
            continue
        except Damaged as exc:
            if not exc.movable:  # this process cannot open it now: the shard stays as it is
                logger.warning("compaction skips unreadable %s: %s", path, exc)
                continue
            logger.warning("compaction found %s damaged (%s); keeping what verifies", path, exc)
            for checked, stored in salvage_pack(path):
                offer(checked, stored)
            bad[path] = (ident, str(exc))
            continue
        rows = [_checked(entry, path) for entry in entries]
        valid = [row for row in rows if row is not None]
        if len(valid) < len(rows):  # unlinking the shard would lose the rows invalid today
            logger.warning("compaction keeps %s as it is: it holds entries invalid today", path)
            continue
        sources.append(name)
        for row, stored in zip(valid, index.stored_ns):
            offer(row, stored)
    used: list[tuple[str, Ident]] = []
    for name, ident in loose:  # entry files win over shards
        path = store.path / ENTRIES / name
        try:
            entry, stored = read_entry_file(path)
            _verify_snapshots([entry])
        except FileNotFoundError:
            continue
        except Damaged as exc:
            if exc.movable:
                bad[path] = (ident, str(exc))
            else:
                logger.warning("compaction skips unreadable %s: %s", path, exc)
            continue
        if entry.key != name[:-3]:
            bad[path] = (ident, f"holds the entry {entry.key}, not the one its name says")
            continue
        fresh = _checked(entry, path)
        if fresh is not None:
            merged[fresh.key] = (fresh, stored)
            used.append((name, ident))
    made = write_shard(store, list(merged.values())) if merged else None
    for loose_name, ident in used:  # a file replaced meanwhile by a newer put stays
        retire(store.path, store.path / ENTRIES / loose_name, ident)
    for source in sources:
        with suppress(FileNotFoundError):
            (store.path / PACKS / source).unlink()
    if bad:
        store._quarantine_locked(bad, salvage=False)  # what verified is in the new shard
    fsync(store.path / ENTRIES)
    fsync(store.path / PACKS)
    if made is not None:
        logger.info(
            "packed %d entries (%d entry files, %d shards) into %s",
            made[1],
            len(used),
            len(sources),
            made[0],
        )
    return made
