"""nasnc.store and damaged files: byte flips, quarantine and recompute, unwritable caches.

Real HDF5 files damaged byte by byte; no mocks. The long fuzz run is
``benchmarks/store_fuzz.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from nasnc import StoreError
from nasnc.space import Arch
from nasnc.store import Store
from nasnc.store._fuzz import CLASSES, _check, build_cache, flip_fuzz
from nasnc.testing import make_entry


def arch_for(seed: int) -> Arch:
    return Arch.from_indices([(seed // 5**j) % 5 for j in range(6)])


def flip(path: Path, text: str, *, nth: int = 0) -> None:
    """Flip one byte in the middle of the ``nth`` occurrence of ``text`` in ``path``."""
    data = bytearray(path.read_bytes())
    at = -1
    for _ in range(nth + 1):
        at = data.find(text.encode(), at + 1)
    assert at >= 0, f"{text!r} not found in {path}"
    data[at + len(text) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def only_pack(store: Store) -> Path:
    (pack,) = sorted((store.path / "packs").glob("pack-*.h5"))
    return pack


# --------------------------------------------------------------- byte flips
def test_byte_flips_never_crash_nor_serve_a_corrupt_value(tmp_path: Path) -> None:
    logging.disable(logging.WARNING)  # hundreds of "damaged file" warnings
    try:
        report = flip_fuzz(16, seed=14, workdir=tmp_path)
    finally:
        logging.disable(logging.NOTSET)
    assert report.flips == 16
    assert {(kind, cls) for kind, cls, _ in report.counts} == {
        (kind, cls) for kind in ("entry", "pack") for cls in CLASSES
    }
    assert report.total("crash") == 0, report.failures
    assert report.total("corrupt") == 0, report.failures
    assert report.total("blocked") == 0, report.failures
    assert report.total("detected") > 0  # the harness does damage what it reads


@pytest.mark.parametrize("where", ["entry", "pack"])
def test_a_flipped_snapshot_byte_is_a_miss_then_recomputed(tmp_path: Path, where: str) -> None:
    """The fuzzer's cache keeps snapshots in one loose entry and one packed one: a byte
    flipped in a snapshot chunk of either is found on reading (never served), and a
    writer stores the entry again."""
    expected = build_cache(tmp_path / "cache")
    files = sorted((tmp_path / "cache" / ("entries" if where == "entry" else "packs")).glob("*.h5"))
    chunks = []
    for path in files:
        with h5py.File(path, "r", locking=False) as f:

            def visit(name: str, obj: object, path: Path = path) -> None:
                if isinstance(obj, h5py.Dataset) and "snapshots/" in name and name[-1].isdigit():
                    info = obj.id.get_chunk_info(0)
                    chunks.append((path, info.byte_offset + info.size // 2))

            f.visititems(visit)
    assert len(chunks) == 2  # two layers of the one entry with snapshots in these files
    path, offset = chunks[0]
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))
    logging.disable(logging.WARNING)
    try:
        outcome, why = _check(tmp_path / "cache", expected)
    finally:
        logging.disable(logging.NOTSET)
    assert (outcome, why) == ("detected", "")


def test_a_flipped_entry_attribute_is_damage_not_a_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path, compact_every=None)
    entry = make_entry(arch_for(3), seed=3)
    key = store.put(entry)
    path = tmp_path / "entries" / f"{key}.h5"
    flip(path, entry.canonical)  # variable-length strings carry no HDF5 checksum
    reader = Store(tmp_path, create=False)
    with caplog.at_level(logging.WARNING, logger="nasnc.store"):
        assert reader.get(key) is None and reader.keys() == [] and reader.entries() == []
    assert "fails its checksum" in caplog.text and str(path) in caplog.text


def test_a_flipped_pack_string_hides_one_row_and_the_writer_keeps_the_others(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path, compact_every=None)
    entries = [make_entry(arch_for(s), seed=s) for s in (1, 2, 3)]
    keys = [store.put(e) for e in entries]
    store.compact()
    pack = only_pack(store)
    flip(pack, entries[1].arch)

    reader = Store(tmp_path, create=False)
    assert sorted(reader.keys()) == sorted([keys[0], keys[2]])
    assert reader.get(keys[1]) is None
    assert [d.path for d in reader.damaged] == [pack] and "row" in reader.damaged[0].reason
    assert {e.arch for e in reader.entries()} == {entries[0].arch, entries[2].arch}

    writer = Store(tmp_path, compact_every=None)
    assert writer.get(keys[1]) is None  # moved aside, its healthy rows re-packed
    assert not pack.exists() and len(writer.quarantined) == 1
    assert sorted(writer.keys()) == sorted([keys[0], keys[2]])
    writer.put(entries[1])  # recomputed
    assert sorted(Store(tmp_path, create=False).keys()) == sorted(keys)


def test_damaged_trajectory_chunk_in_a_pack_loses_only_that_entry(tmp_path: Path) -> None:
    store = Store(tmp_path, compact_every=None)
    entries = [make_entry(arch_for(s), seed=s, n_points=3000) for s in (1, 2, 3)]
    keys = [store.put(e) for e in entries]
    store.compact()
    pack = only_pack(store)
    with h5py.File(pack, "r") as f:  # 1024-row chunks: chunk 4 holds rows of row 1 only
        offset = f["trajectory/beta_eff"].id.get_chunk_info(4).byte_offset
        assert f["index/offset"][()].tolist() == [0, 3000, 6000, 9000]
        lost = f["index/key"].asstr()[1]
    data = bytearray(pack.read_bytes())
    data[offset + 5] ^= 0x40
    pack.write_bytes(bytes(data))
    writer = Store(tmp_path, compact_every=None)
    kept = set(keys) - {lost}
    assert {e.key for e in writer.entries()} == kept
    assert not pack.exists() and len(writer.quarantined) == 1
    for entry in entries:
        got = writer.get(entry.key)
        assert (got is None) == (entry.key == lost)
        if got is not None:
            np.testing.assert_array_equal(got.trajectory["beta_eff"], entry.trajectory["beta_eff"])


def test_get_falls_back_to_a_healthy_packed_copy(tmp_path: Path) -> None:
    store = Store(tmp_path, compact_every=None)
    old = make_entry(arch_for(4), seed=4, beta_eff=1.0)
    key = store.put(old)
    store.compact()
    store.put(make_entry(arch_for(4), seed=4, beta_eff=2.0))  # newer, loose
    got = store.get(key)
    assert got is not None and got.summary["beta_eff"] == 2.0
    path = tmp_path / "entries" / f"{key}.h5"
    path.write_bytes(path.read_bytes()[:300])
    for create in (False, True):
        got = Store(tmp_path, create=create).get(key)
        assert got is not None and got.summary["beta_eff"] == 1.0
    assert not path.exists()  # the writer moved it aside


def test_integer_summaries_stay_integers_in_packs(tmp_path: Path) -> None:
    store = Store(tmp_path, compact_every=None)
    entry = make_entry(arch_for(5), seed=5)
    entry.summary["steps"] = 2**60 + 1  # not representable as float64
    entry.summary["flag"] = True
    key = store.put(entry)
    other = store.put(make_entry(arch_for(6), seed=6))  # lacks both
    store.compact()
    for got in (store.get(key), *store.entries()):
        assert got is not None
        if got.key == key:
            assert type(got.summary["steps"]) is int and got.summary["steps"] == 2**60 + 1
            assert got.summary["flag"] is True
        else:
            assert got.key == other and "steps" not in got.summary
    (info,) = [i for i in store.index() if i.key == key]
    assert type(info.summary["steps"]) is int and info.summary["steps"] == 2**60 + 1


# ------------------------------------------------------- quarantine, recompute
def test_evaluate_recomputes_a_damaged_entry(tmp_path: Path, synthetic_root: Path) -> None:
    from nasnc.data import load_dataset
    from nasnc.pipeline import ProxyConfig, evaluate_arch

    config = ProxyConfig(
        resolution=8, train_subset=128, valid_size=64, channels=4, probe=(8,), epochs=1
    )
    data = load_dataset("cifar10", synthetic_root, train_subset=128, valid_size=64, resolution=8)
    store = Store(tmp_path / "cache")
    arch = arch_for(7)
    first = evaluate_arch(arch, config, data, device="cpu", store=store)
    path = tmp_path / "cache" / "entries" / f"{first.entry.key}.h5"
    with h5py.File(path, "r") as f:  # a summary scalar: plain bytes, no HDF5 checksum
        offset = f["summary/proxy_valid_acc"].id.get_offset()
    data_bytes = bytearray(path.read_bytes())
    data_bytes[offset + 6] ^= 0x10
    path.write_bytes(bytes(data_bytes))

    again = evaluate_arch(arch, config, data, device="cpu", store=Store(tmp_path / "cache"))
    assert not again.cache_hit  # never served the flipped value: trained again
    assert again.entry.summary["proxy_valid_acc"] == first.entry.summary["proxy_valid_acc"]
    (moved,) = Store(tmp_path / "cache").quarantined
    assert "fails its checksum" in moved.with_name(moved.name + ".why.txt").read_text()
    third = evaluate_arch(arch, config, data, device="cpu", store=Store(tmp_path / "cache"))
    assert third.cache_hit


def test_scores_cli_says_how_many_were_quarantined(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nasnc_search.cli import main

    store = Store(tmp_path, compact_every=None)
    key = store.put(make_entry(arch_for(8), seed=8))
    store.put(make_entry(arch_for(9), seed=9))
    path = tmp_path / "entries" / f"{key}.h5"
    path.write_bytes(b"\0" * 100)
    assert main(["scores", "--cache", str(tmp_path), "--format", "csv"]) == 0
    err = capsys.readouterr().err
    assert f"skipped damaged file {path}" in err and "moved" not in err  # a reader moves nothing
    assert Store(tmp_path).get(key) is None  # a writer does
    assert main(["scores", "--cache", str(tmp_path), "--format", "csv"]) == 0
    assert f"{tmp_path / 'quarantine'} holds 1 damaged file(s) set aside" in capsys.readouterr().err


# ------------------------------------------------------- unwritable caches
def test_a_cache_that_cannot_be_created_is_refused_at_once(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match=str(blocker / "cache")):
        Store(blocker / "cache")


def test_a_nearly_full_disk_is_refused_at_once(tmp_path: Path) -> None:
    Store(tmp_path)
    with pytest.raises(StoreError, match=r"MiB free"):
        Store(tmp_path, min_free_bytes=2**62)
    assert Store(tmp_path, create=False).keys() == []  # reading needs no space


@contextlib.contextmanager
def _read_only(paths: list[Path]) -> Iterator[None]:
    """Make folders unwritable, also for root (who ignores permission bits).

    As root the folders are made immutable with ``chattr +i``; where the file
    system or the container does not allow that, the test cannot build a
    read-only folder and is skipped, saying so.
    """
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in paths}
        try:
            for p in paths:
                p.chmod(0o555)
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    done: list[Path] = []
    try:
        for p in paths:
            try:
                refused = subprocess.run(["chattr", "+i", str(p)], capture_output=True).returncode
            except OSError:  # no chattr on this system
                refused = 1
            if refused:
                pytest.skip(f"running as root and 'chattr +i' is refused on {p}")
            done.append(p)
        yield
    finally:
        for p in done:
            subprocess.run(["chattr", "-i", str(p)], check=True)


def test_a_read_only_cache_is_refused_before_any_write(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    key = Store(cache).put(make_entry(arch_for(1), seed=1))
    with _read_only([cache, cache / "tmp", cache / "entries"]):
        with pytest.raises(StoreError, match=rf"{cache} is not writable"):
            Store(cache)
        assert Store(cache, create=False).keys() == [key]  # reading still works


def test_evaluate_cli_checks_the_cache_before_loading_data_or_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nasnc.testing import make_synthetic_dataset
    from nasnc_search.cli import main

    root = tmp_path / "data"
    make_synthetic_dataset(root, num_train=64, num_test=64)
    blocker = tmp_path / "file"
    blocker.write_text("")
    args = ["evaluate", "sample:1:0", "--cache", str(blocker / "cache")]
    args += ["--data-root", str(root), "--device", "cpu", "--no-progress"]
    assert main(args) == 1  # the cache, not the data (too few images for a run), is refused
    err = capsys.readouterr().err
    assert "error:" in err and str(blocker / "cache") in err and "internal" not in err


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_missing_data_stops_a_run_before_its_cache_is_made(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nasnc_search.cli import main

    cache = tmp_path / "new-cache"
    arch = "sample:1:0" if command == "evaluate" else str(arch_for(3))
    args = [command, arch, "--cache", str(cache), "--data-root", str(tmp_path / "no-data")]
    assert main([*args, "--device", "cpu", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "no-data") in err and "internal" not in err
    assert not cache.exists()  # nothing made for a run that could not start


# --------------------------------------------------------- item 6 leftovers
_CHURN = """
import sys, time
from nasnc.space import Arch
from nasnc.store import Store
from nasnc.testing import make_entry
store = Store(sys.argv[1], compact_every=None, durable=False, fanout=2)
print("ready", flush=True)
deadline = time.time() + float(sys.argv[2])
seed = 1000
while time.time() < deadline:  # every round rewrites every shard under a new name
    store.put(make_entry(Arch.from_indices([(seed // 5**j) % 5 for j in range(6)]), seed=seed))
    store.compact(full=True)
    seed += 1
print(seed - 1000, flush=True)
"""


def test_listings_racing_a_compaction_miss_no_entry(tmp_path: Path) -> None:
    store = Store(tmp_path, compact_every=None, durable=False)
    keys = set()
    for batch in range(6):  # six shards, then a few loose files
        keys |= {
            store.put(make_entry(arch_for(s), seed=s)) for s in range(batch * 5, batch * 5 + 5)
        }
        if batch < 5:
            store.compact()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHURN, str(tmp_path), "1.5"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    scans = 0
    try:
        assert proc.stdout.readline().strip() == "ready"
        while proc.poll() is None:
            seen = set(Store(tmp_path, create=False).keys())
            assert keys <= seen, f"scan {scans} missed {len(keys - seen)} entries"
            scans += 1
    finally:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and int(out) > 2 and scans > 2
