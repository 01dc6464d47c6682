"""Byte-flip harness for the cache's damage handling (``tests/`` and ``benchmarks/store_fuzz.py``).

One pristine cache (entry files and one packed shard, written by :class:`Store`)
is copied for every flip; one byte of one file is XOR-ed with a random
non-zero mask at an offset drawn from one *class* of bytes:

``superblock``
    the first 48 bytes (HDF5 superblock, version 3, checksummed);
``metadata``
    object headers, B-trees, heaps: every byte not in another class;
``strings``
    the bytes of the variable-length strings the file holds (arch, canonical
    form, key, config JSON, dataset, versions, pack layouts), which HDF5
    keeps in an unchecksummed global heap;
``data``
    the bytes of every dataset's storage (chunks and scalars), the float16
    weight snapshots of the two entries that keep them included.

Every read path then runs on the damaged copy, first as a reader
(``create=False``: ``keys``, ``rank``, ``entries``, ``get`` of every key;
``index`` and ``top`` share their code paths), then as a writer (``get`` of
every key, ``put`` of what is missing, then everything read back). Every
entry served is compared with what was written, its lazy weight snapshots
read layer by layer; a snapshot read that reports damage (``StoreError``)
counts as a miss, as the entry's own damage does. Each flip is classed by its
worst outcome: ``crash`` (an exception escaped), ``corrupt`` (a value that
differs from what was written was served), ``blocked`` (a writer could not
store the entry again), ``detected`` (some entries were skipped as damaged,
none wrong) or ``harmless`` (everything served, all equal).
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import traceback
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from nasnc._errors import StoreError
from nasnc.store._entry import Entry
from nasnc.store._hdf5 import EntryInfo
from nasnc.store._snapshots import Snapshots
from nasnc.store._store import Store

__all__ = ["CLASSES", "FuzzReport", "build_cache", "flip_fuzz"]

CLASSES = ("superblock", "metadata", "strings", "data")
OUTCOMES = ("crash", "corrupt", "blocked", "detected", "harmless")
_SUPERBLOCK = 48


@dataclass
class FuzzReport:
    """Counts of flips by (file kind, byte class, outcome), and the first failures seen."""

    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def total(self, outcome: str) -> int:
        return sum(n for (_, _, o), n in self.counts.items() if o == outcome)

    @property
    def flips(self) -> int:
        return sum(self.counts.values())


def _snapshots(seed: int) -> Snapshots:
    rng = np.random.default_rng(seed)
    shapes = ((3, 8, 4), (3, 2, 8))  # three steps of two small dense layers
    return Snapshots(
        "probe",
        ["probe.layers.0", "probe.layers.1"],
        [0, 40, 80],
        [rng.standard_normal(s).astype(np.float16) for s in shapes],
    )


def build_cache(root: Path) -> dict[str, Entry]:
    """Write the pristine cache at ``root`` (4 entries packed, 2 loose; one of each with
    weight snapshots); return it by key."""
    from nasnc.space import Arch
    from nasnc.testing import make_entry

    entries = []
    for i in range(6):
        arch = Arch.from_indices([(i * 7 + j) % 5 for j in range(6)])
        e = make_entry(
            arch,
            seed=i,
            n_points=5 + i,
            created=1_700_000_000.0 + i,
            beta_eff=math.nan if i == 3 else None,
            diverged=i == 2,
        )
        e.summary["steps"] = 2**60 + i  # beyond float64's exact integers
        e.scores["nan_score"] = math.nan
        if i in (1, 5):
            e.snapshots = _snapshots(i)
        entries.append(e)
    store = Store(root, compact_every=None, durable=False)
    for e in entries[:4]:
        store.put(e)
    store.compact()
    for e in entries[4:]:
        store.put(e)
    return {e.key: e for e in entries}


def _ranges(path: Path, strings: Iterable[str]) -> dict[str, list[tuple[int, int]]]:
    """Byte ranges of each class in one file (``metadata`` is the rest)."""
    data = path.read_bytes()
    found: dict[str, list[tuple[int, int]]] = {
        "superblock": [(0, _SUPERBLOCK)],
        "strings": [],
        "data": [],
    }
    for text in set(strings):
        raw = text.encode("utf-8")
        start = data.find(raw)
        while raw and start >= 0:
            found["strings"].append((start, start + len(raw)))
            start = data.find(raw, start + 1)

    def visit(_: str, obj: object) -> None:
        if not isinstance(obj, h5py.Dataset) or obj.dtype.kind == "O":
            return
        if obj.chunks is None:
            offset = obj.id.get_offset()
            if offset is not None:
                found["data"].append((offset, offset + obj.id.get_storage_size()))
            return
        for i in range(obj.id.get_num_chunks()):
            info = obj.id.get_chunk_info(i)
            found["data"].append((info.byte_offset, info.byte_offset + info.size))

    with h5py.File(path, "r", locking=False) as f:
        f.visititems(visit)
    taken = np.zeros(len(data), dtype=bool)
    for spans in found.values():
        for lo, hi in spans:
            taken[lo:hi] = True
    rest = np.flatnonzero(~taken)
    found["metadata"] = [(int(i), int(i) + 1) for i in rest]
    return found


def _strings(entries: Mapping[str, Entry], store: Store) -> list[str]:
    out = ["entry", "pack", "store"]
    for e in entries.values():
        out += [e.key, e.arch, e.canonical, e.dataset, e.config_hash, e.nasnc_version]
        from nasnc.store._entry import canonical_json

        out.append(canonical_json(e.config))
    for pack in (store.path / "packs").glob("pack-*.h5"):
        with h5py.File(pack, "r", locking=False) as f:
            out += f["index/layouts"].asstr()[()].tolist()
    return out


def _same_value(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _same_mapping(a: Mapping[str, object], b: Mapping[str, object]) -> bool:
    return list(a) == list(b) and all(_same_value(a[k], b[k]) for k in a)


def _same_snapshots(got: Snapshots | None, want: Snapshots | None) -> bool:
    """Same layers, steps and float16 bytes (reading ``got`` may raise StoreError)."""
    if got is None or want is None:
        return got is None and want is None
    return (got.kind, got.names, got.steps.tolist()) == (
        want.kind,
        want.names,
        want.steps.tolist(),
    ) and all(got.layer(i).tobytes() == want.layer(i).tobytes() for i in range(len(want.names)))


def _same_entry(got: Entry, want: Entry) -> bool:
    return (
        (got.arch, got.canonical, got.dataset, got.seed, got.nasnc_version)
        == (want.arch, want.canonical, want.dataset, want.seed, want.nasnc_version)
        and got.config == want.config
        and _same_value(got.created, want.created)
        and got.key == want.key
        and list(got.trajectory) == list(want.trajectory)
        and all(
            got.trajectory[k].dtype == np.float64
            and got.trajectory[k].tobytes() == np.asarray(v, np.float64).tobytes()
            for k, v in want.trajectory.items()
        )
        and _same_mapping(got.summary, want.summary)
        and _same_mapping(got.scores, want.scores)
        and _same_snapshots(got.snapshots, want.snapshots)
    )


def _same_info(got: EntryInfo, want: Entry) -> bool:
    return (
        (got.key, got.arch, got.canonical, got.dataset, got.seed, got.config_hash)
        == (want.key, want.arch, want.canonical, want.dataset, want.seed, want.config_hash)
        and _same_value(got.created, want.created)
        and _same_mapping(got.summary, want.summary)
        and _same_mapping(got.scores, want.scores)
    )


def _check(root: Path, expected: Mapping[str, Entry]) -> tuple[str, str]:
    """Run every read path on the cache at ``root``; the outcome and what went wrong."""
    wrong: list[str] = []
    missing = False

    def entry_ok(e: Entry | None, what: str) -> bool:
        """Whether ``e`` was served whole and right (a miss or damage found: False)."""
        nonlocal missing
        if e is None:
            missing = True
            return False
        try:
            same = e.key in expected and _same_entry(e, expected[e.key])
        except StoreError:  # its snapshots were found damaged on reading: a miss
            missing = True
            return False
        if not same:
            wrong.append(f"{what} served a wrong entry {e.key}")
        return same

    def infos_ok(infos: list[EntryInfo], what: str) -> None:
        nonlocal missing
        missing |= len(infos) < len(expected)
        for info in infos:
            if info.key not in expected or not _same_info(info, expected[info.key]):
                wrong.append(f"{what} served a wrong record {info.key}")

    reader = Store(root, create=False)
    keys = reader.keys()
    missing |= len(keys) < len(expected)
    wrong += [f"keys() lists unknown {k}" for k in keys if k not in expected]
    infos_ok(reader.rank("steps"), "rank()")  # index() and scores read the same records
    for e in reader.entries():  # top() loads entries the same way
        entry_ok(e, "entries()")
    for key in expected:
        entry_ok(reader.get(key), "get()")

    writer = Store(root, compact_every=None, durable=False)
    blocked = []
    # first read everything (damage found in snapshots may set a whole shard aside),
    # then recompute and store what is missing, as commands do after a miss
    for key in expected:
        entry_ok(writer.get(key), "writer get()")
    for key, want in expected.items():
        if not entry_ok(writer.get(key), "writer get() again"):
            writer.put(want)
            if not entry_ok(writer.get(key), "writer get() after put()"):
                blocked.append(key)
    after = Store(root, create=False)
    for e in after.entries():
        entry_ok(e, "entries() after recomputing")
    if sorted(after.keys()) != sorted(expected):
        blocked.append("keys() after recomputing")
    if wrong:
        return "corrupt", "; ".join(wrong[:3])
    if blocked:
        return "blocked", f"could not store again: {blocked[:3]}"
    return ("detected" if missing else "harmless"), ""


def flip_fuzz(n_flips: int, *, seed: int = 0, workdir: Path | None = None) -> FuzzReport:
    """Flip ``n_flips`` single bytes (spread over file kinds and byte classes) and check.

    Deterministic for a given ``seed``. Returns the counts by outcome.
    """
    rng = random.Random(seed)
    report = FuzzReport()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        pristine = Path(tmp) / "pristine"
        expected = build_cache(pristine)
        store = Store(pristine, create=False)
        strings = _strings(expected, store)
        files = {
            "entry": sorted((pristine / "entries").glob("*.h5")),
            "pack": sorted((pristine / "packs").glob("pack-*.h5")),
        }
        ranges = {p: _ranges(p, strings) for paths in files.values() for p in paths}
        plan = [(kind, cls) for kind in files for cls in CLASSES]
        for i in range(n_flips):
            kind, cls = plan[i % len(plan)]
            path = rng.choice(files[kind])
            spans = ranges[path][cls]
            if not spans:
                continue
            lo, hi = rng.choice(spans)
            offset = rng.randrange(lo, hi)
            mask = rng.randrange(1, 256)
            work = Path(tmp) / "work"
            shutil.copytree(pristine, work)
            target = work / path.relative_to(pristine)
            data = bytearray(target.read_bytes())
            data[offset] ^= mask
            target.write_bytes(bytes(data))
            try:
                outcome, why = _check(work, expected)
            except Exception:
                outcome, why = "crash", traceback.format_exc(limit=4)
            report.counts[(kind, cls, outcome)] += 1
            if outcome in ("crash", "corrupt", "blocked") and len(report.failures) < 10:
                report.failures.append(f"{kind} {path.name} {cls} @{offset} ^{mask:#04x}: {why}")
            shutil.rmtree(work)
    return report
