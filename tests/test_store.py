"""nasnc.store: real HDF5 files in tmp_path, real writer processes, real SIGKILLs."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from nasnc import ArchError, ConfigError, StoreError
from nasnc.space import Arch, all_archs, canonical_classes
from nasnc.store import (
    REQUIRED_SUMMARY,
    Entry,
    Store,
    config_hash,
    make_key,
)
from nasnc.store._entry import legacy_key
from nasnc.store._hdf5 import SNAPSHOTS_MARKER_VERSION
from nasnc.testing import DEFAULT_CONFIG, make_entry

ARCH = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"


def arch_for(seed: int) -> Arch:
    """A deterministic cell per seed (the writer scripts use the same rule)."""
    return Arch.from_indices([(seed // 5**j) % 5 for j in range(6)])


def assert_same(got: Entry, want: Entry) -> None:
    assert got.key == want.key
    assert (got.arch, got.canonical, got.dataset, got.seed) == (
        want.arch,
        want.canonical,
        want.dataset,
        want.seed,
    )
    assert got.config == want.config
    assert list(got.trajectory) == list(want.trajectory)
    for name, column in want.trajectory.items():
        assert got.trajectory[name].dtype == np.float64
        np.testing.assert_array_equal(got.trajectory[name], column)
    assert list(got.summary) == list(want.summary)
    for name, value in want.summary.items():
        assert type(got.summary[name]) is type(value), name
        assert got.summary[name] == value or (math.isnan(value) and math.isnan(got.summary[name]))
    assert list(got.scores) == list(want.scores)
    for name, value in want.scores.items():
        assert got.scores[name] == value or (math.isnan(value) and math.isnan(got.scores[name]))
    assert got.nasnc_version == want.nasnc_version


def entry_files(store: Store) -> list[Path]:
    return sorted((store.path / "entries").glob("*.h5"))


def pack_files(store: Store) -> list[Path]:
    return sorted((store.path / "packs").glob("pack-*.h5"))


# ------------------------------------------------------------------- keys
def test_key_is_stable_across_versions() -> None:
    # Golden values: a change here silently invalidates every user's cache.
    cfg = {"lr": 0.1, "epochs": 8, "probe": [128, 64]}
    assert config_hash(cfg) == "2e15c8cac2502134"
    assert make_key(ARCH, "cifar10", cfg, 0) == "9db7b3b70068dad9538ee2d6"
    # format 1 (the benchmark's canonical form), still recognised in old caches
    assert legacy_key(Arch.from_str(ARCH).canonical(), "cifar10", cfg, 0) == (
        "0182c7f84d0a92093a18bb42"
    )


def test_key_ignores_config_order_and_numpy_scalars() -> None:
    a = make_key(ARCH, "cifar10", {"lr": 0.1, "epochs": 8}, 0)
    b = make_key(
        Arch.from_str(ARCH), "cifar10", {"epochs": np.int64(8), "lr": np.float64(0.1)}, np.int64(0)
    )
    assert a == b


@pytest.mark.parametrize(
    "change",
    [
        {"config": {"lr": 0.05, "epochs": 8}},
        {"config": {"lr": 0.1, "epochs": 8, "augment": False}},
        {"config": {"lr": 0.1, "epochs": 8.0}},
        {"dataset": "cifar100"},
        {"seed": 1},
        {"arch": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"},
    ],
)
def test_key_changes_with_every_field(change: dict) -> None:
    base = {"arch": ARCH, "dataset": "cifar10", "config": {"lr": 0.1, "epochs": 8}, "seed": 0}
    assert make_key(**{**base, **change}) != make_key(**base)


def graph_twins() -> list[tuple[Arch, Arch]]:
    """Every pair of distinct cells that build the same network (nodes 1 and 2 swapped)."""
    classes: dict[str, list[Arch]] = {}
    for a in all_archs():
        classes.setdefault(a.graph_form(), []).append(a)
    return [(m[0], m[1]) for m in classes.values() if len(m) == 2]


def test_cells_building_the_same_network_share_a_key() -> None:
    pairs = graph_twins()
    assert len(pairs) == 1500  # (3,125 - 125) / 2 swapped pairs
    for a, b in pairs[::97]:
        assert make_entry(a).key == make_entry(b).key
        assert str(a) != str(b)


def test_cells_the_benchmark_merges_but_that_differ_get_their_own_keys() -> None:
    # One convolution doubled vs two convolutions: one canonical form, two networks
    # (different parameter counts); a shared key served one the other's run.
    one = Arch.from_str(
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|"
    )
    two = Arch.from_str("|none~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|none~1|skip_connect~2|")
    assert one.canonical() == two.canonical()
    assert make_entry(one).key != make_entry(two).key
    merged = sum(
        len({make_key(a, "cifar10", {}, 0) for a in m}) > 1 for m in canonical_classes().values()
    )
    assert merged == 1350  # of the 6,466 classes of the benchmark's form hold several networks


def test_make_key_rejects_a_bad_cell() -> None:
    with pytest.raises(ArchError, match=r"6 digits.*'9'"):
        make_key("nb201:9", "cifar10", {}, 0)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((ARCH, "", {}, 0), "dataset"),
        ((ARCH, "cifar10", {}, 1.5), "seed"),
        ((ARCH, "cifar10", {}, True), "seed"),
        ((ARCH, "cifar10", {}, 2**63), r"seed.*64-bit"),
        ((ARCH, "cifar10", {"lr": float("nan")}, 0), "JSON"),
        ((ARCH, "cifar10", {"f": object()}, 0), "JSON"),
        ((ARCH, "cifar10", [1, 2], 0), "mapping"),
        # JSON turned 1 into "1": {1: "a"} and {"1": "a"} shared one key
        ((ARCH, "cifar10", {1: "a"}, 0), "config keys must be strings, but got 1"),
        ((ARCH, "cifar10", {"p": [{True: 1}]}, 0), r"config\.p\[0\] keys must be strings"),
    ],
)
def test_make_key_rejects_bad_input(args: tuple, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_key(*args)


@pytest.mark.parametrize("packed", [False, True])
def test_an_old_cache_keeps_its_format_1_entries(tmp_path: Path, packed: bool) -> None:
    # An entry a format-1 nasnc wrote: under the key of the benchmark's canonical form.
    store = Store(tmp_path / "cache", compact_every=None)
    fresh = make_entry(ARCH, seed=3)
    old_key = legacy_key(fresh.canonical, fresh.dataset, fresh.config, fresh.seed)
    old = make_entry(ARCH, seed=3).mark_stored(old_key)  # as a read of such a file does
    assert old.key == old_key != fresh.key
    assert store.put(old) == old_key
    if packed:
        store.compact()
        assert entry_files(store) == [] and len(pack_files(store)) == 1
    reopened = Store(tmp_path / "cache")
    got = reopened.get(old_key)
    assert got is not None and got.key == old_key  # readable, not quarantined
    assert_same(got, old)
    assert reopened.get(fresh.key) is None  # no new lookup reaches it: it is retrained
    assert [e.key for e in reopened.entries()] == [old_key]
    assert not (tmp_path / "cache" / "quarantine").exists() or not any(
        (tmp_path / "cache" / "quarantine").iterdir()
    )
    # the old key is kept only while the fields are those it was computed from ...
    got.seed = 4
    assert got.key == make_key(ARCH, got.dataset, got.config, 4)
    # ... and the arch it was read with: another cell of the same canonical form (so the
    # same format-1 key) is another network, and a copy made by replace() is a new entry
    other = next(
        a
        for a in canonical_classes()[Arch.from_str(ARCH).canonical()]
        if a.graph_form() != Arch.from_str(ARCH).graph_form()
    )
    copy = dataclasses.replace(old, arch=str(other))
    assert copy.stored_key is None and copy.key == make_key(other, "cifar10", old.config, 3)
    old.arch = str(other)
    assert old.key == make_key(other, "cifar10", old.config, 3) != old_key


# -------------------------------------------------------------- round trip
@pytest.mark.parametrize("where", ["entry file", "packed shard"])
def test_round_trip_keeps_every_field(tmp_path: Path, where: str) -> None:
    store = Store(tmp_path / "cache", compact_every=None)
    entry = make_entry(
        ARCH,
        dataset="cifar100",
        seed=3,
        beta_eff=float("nan"),
        scores={"synflow": float("nan"), "naswot": 1234.5, "params": -0.25},
        config={"nested": {"b": [1, 2.5, "x"], "a": None}, "flag": True},
        n_points=7,
        diverged=True,
        created=1_700_000_000.25,
    )
    entry.summary["steps"] = 280  # ints keep their type
    entry.trajectory["empty_later"] = np.full(7, np.nan)
    key = store.put(entry)
    other = store.put(make_entry(ARCH, seed=4, scores={}))  # different layout in the same pack
    assert key == entry.key
    if where == "packed shard":
        assert store.compact() == 2
        assert entry_files(store) == [] and len(pack_files(store)) == 1
    got = Store(tmp_path / "cache").get(key)
    assert got is not None
    assert_same(got, entry)
    assert got.created == 1_700_000_000.25
    assert got.summary["diverged"] is True
    assert math.isnan(got.summary["beta_eff"])
    assert math.isnan(got.trajectory["train_loss"][-1])
    got_other = store.get(other)
    assert got_other is not None and got_other.scores == {}


def test_empty_trajectory_round_trips(tmp_path: Path) -> None:
    store = Store(tmp_path, compact_every=None)
    entry = make_entry(ARCH)
    entry.trajectory = {name: np.empty(0) for name in entry.trajectory}
    key = store.put(entry)
    got = store.get(key)
    assert got is not None and got.n_points == 0
    store.compact()
    got = store.get(key)
    assert got is not None and got.n_points == 0 and set(got.trajectory) == set(entry.trajectory)


def test_make_entry_is_deterministic_and_complete() -> None:
    a, b = make_entry(ARCH, seed=2), make_entry(ARCH, seed=2)
    assert a.key == b.key
    np.testing.assert_array_equal(a.trajectory["beta_eff"], b.trajectory["beta_eff"])
    assert a.summary == b.summary and a.scores == b.scores
    assert set(REQUIRED_SUMMARY) <= set(a.summary)
    assert a.config == {**DEFAULT_CONFIG, "dataset": "cifar10"}
    assert make_entry(ARCH, seed=3).summary["beta_eff"] != a.summary["beta_eff"]
    e = make_entry(ARCH, beta_eff=2.0, proxy_valid_acc=0.4, n_points=5)
    assert e.summary["beta_eff"] == 2.0 and e.trajectory["beta_eff"][-1] == 2.0
    assert e.trajectory["valid_acc"][-1] == 0.4 and e.n_points == 5
    with pytest.raises(ConfigError, match="n_points"):
        make_entry(ARCH, n_points=0)


# ------------------------------------------------------------- validation
def _bad(kind: str) -> Entry:
    e = make_entry(ARCH)
    if kind == "summary":
        del e.summary["cost_s"]
    elif kind == "length":
        e.trajectory["step"] = np.arange(99.0)
    elif kind == "ndim":
        e.trajectory["step"] = np.zeros((4, 2))
    elif kind == "name":
        e.scores["a/b"] = 1.0
    elif kind == "text":
        e.trajectory["step"] = np.array(["a", "b", "c", "d"])
    elif kind == "summary type":
        e.summary["beta_eff"] = "high"  # type: ignore[assignment]
    elif kind == "summary range":
        e.summary["flops"] = 2**63
    elif kind == "padded name":
        e.scores["loss "] = 1.0
    elif kind == "version NUL":
        e = dataclasses.replace(e, nasnc_version="a\x00b")
    elif kind == "version surrogate":
        e = dataclasses.replace(e, nasnc_version="\udc80")
    elif kind == "huge score":
        e.scores["synflow"] = 10**400  # type: ignore[assignment]
    return e


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("summary", "lacks 'cost_s'"),
        ("length", "differ in length"),
        ("ndim", "1-D"),
        ("name", "'a/b'"),
        ("text", "not numeric"),
        ("summary type", "'beta_eff'"),
        ("summary range", r"'flops' must fit in a 64-bit"),
        ("padded name", r"surrounding spaces.*'loss '"),
        ("version NUL", r"nasnc_version must be UTF-8 text without NUL"),  # h5py's errors
        ("version surrogate", r"nasnc_version must be UTF-8 text"),
        ("huge score", r"'synflow' is beyond a float's range"),  # was OverflowError
    ],
)
def test_put_rejects_malformed_entries_naming_the_field(
    tmp_path: Path, kind: str, match: str
) -> None:
    store = Store(tmp_path)
    with pytest.raises(StoreError, match=match) as exc:
        store.put(_bad(kind))
    assert make_entry(ARCH).key in str(exc.value)
    assert len(store) == 0 and list((tmp_path / "tmp").iterdir()) == []


def test_put_rejects_wrong_canonical(tmp_path: Path) -> None:
    entry = make_entry(ARCH)
    entry.canonical = "0"
    with pytest.raises(ArchError, match="canonical"):
        Store(tmp_path).put(entry)


# ------------------------------------------------------------------ queries
@pytest.fixture
def filled(tmp_path: Path) -> Store:
    store = Store(tmp_path / "cache", compact_every=None)
    values = [2.0, float("nan"), 5.0, -1.0, 3.0, float("nan")]
    for seed, beta in enumerate(values):
        store.put(
            make_entry(
                arch_for(seed * 97),
                seed=seed,
                beta_eff=beta,
                dataset="cifar10" if seed % 2 == 0 else "cifar100",
                scores={"synflow": float(seed)} if seed != 4 else {},
                created=1000.0 + seed,
            )
        )
    return store


@pytest.mark.parametrize("packed", [False, True])
def test_top_orders_descending_with_nan_last(filled: Store, packed: bool) -> None:
    if packed:
        filled.compact()
    top = filled.top(6)
    assert [e.seed for e in top[:4]] == [2, 4, 0, 3]
    assert {e.seed for e in top[4:]} == {1, 5}
    assert [e.seed for e in filled.top(2)] == [2, 4]
    assert filled.top(0) == []
    c100 = [e.seed for e in filled.top(10, dataset="cifar100")]
    assert c100[0] == 3 and set(c100[1:]) == {1, 5}  # NaN ties in key order
    # by a score; an entry lacking it ranks with NaN, last
    assert [e.seed for e in filled.top(6, by="synflow")] == [5, 3, 2, 1, 0, 4]
    ranked = filled.rank("beta_eff", k=3)
    assert [i.seed for i in ranked] == [2, 4, 0]
    assert all(i.value("beta_eff") == e.summary["beta_eff"] for i, e in zip(ranked, top))


def test_top_rejects_unknown_key_and_bad_k(filled: Store) -> None:
    with pytest.raises(ConfigError, match=r"'nope'.*known: .*beta_eff"):
        filled.top(3, by="nope")
    with pytest.raises(ConfigError, match="k=-1"):
        filled.top(-1)
    with pytest.raises(ConfigError, match=r"k=2\.5"):
        filled.top(2.5)  # type: ignore[arg-type]


def test_kinds_filter_every_listing_and_name_a_bad_kind(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache", compact_every=None)
    marks = {0: "pruned", 1: None, 2: "diverged", 3: "score_only"}
    for seed, mark in marks.items():
        e = make_entry(arch_for(seed * 97 + 1), seed=seed, beta_eff=float(10 - seed))
        if mark is not None:
            e.summary[mark] = True
        store.put(e)
    assert [i.kind for i in store.index()] == ["pruned", "complete", "diverged", "score_only"]
    assert [e.kind for e in store.entries()] == ["pruned", "complete", "diverged", "score_only"]
    # every kind by default: the pruned run's partial reading ranks first, and says so
    assert [i.seed for i in store.rank()] == [0, 1, 2, 3]
    assert [e.seed for e in store.top(1, kinds=("complete",))] == [1]
    assert [i.seed for i in store.rank(kinds={"pruned", "score_only"})] == [0, 3]
    assert [e.seed for e in store.entries(kinds=["diverged"])] == [2]
    assert [i.seed for i in store.index(kinds=())] == []
    with pytest.raises(ConfigError, match=r"unknown entry kind 'done'.*complete, pruned"):
        store.rank(kinds=("done",))
    with pytest.raises(ConfigError, match=r"collection of entry kinds.*'complete'"):
        store.index(kinds="complete")  # a bare str would match letter by letter
    with pytest.raises(ConfigError, match=r"config_hash must be a str.*\{'lr': 0.1\}"):
        store.entries(config_hash={"lr": 0.1})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dataset must be a str"):
        store.top(1, dataset=10)  # type: ignore[arg-type]


def test_entries_filters(filled: Store) -> None:
    assert [e.seed for e in filled.entries()] == [0, 1, 2, 3, 4, 5]  # oldest first
    assert [e.seed for e in filled.entries(dataset="cifar100")] == [1, 3, 5]
    target = arch_for(4 * 97)  # none on edge 2<-1: swapping nodes 1 and 2 builds it too
    twin = next(a for a in all_archs() if a.graph_form() == target.graph_form() and a != target)
    assert [e.seed for e in filled.entries(arch=twin)] == [4]  # the same network matches
    assert [e.seed for e in filled.entries(arch=str(target))] == [4]
    other = arch_for(2 * 97)  # the benchmark's form merges it with cells of other networks
    merged = [a for a in canonical_classes()[other.canonical()] if a != other]
    assert merged and all(filled.entries(arch=a) == [] for a in merged)
    assert filled.entries(config_hash=config_hash({"other": 1})) == []
    assert len(filled.entries(config_hash=config_hash(make_entry(ARCH).config))) == 3
    with pytest.raises(ArchError, match=r"in '\|bogus~0\|'"):
        filled.entries(arch="|bogus~0|")
    assert [i.seed for i in filled.index(dataset="cifar10")] == [0, 2, 4]


def test_container_protocol_and_missing_keys(filled: Store) -> None:
    assert len(filled) == 6
    keys = filled.keys()
    assert keys == sorted(keys) and all(k in filled for k in keys)
    assert "0" * 24 not in filled and filled.get("0" * 24) is None
    assert filled.get("../../etc/passwd") is None
    with pytest.raises(ConfigError, match="key=7"):
        filled.get(7)  # type: ignore[arg-type]


def test_put_replaces_and_newest_copy_wins(tmp_path: Path) -> None:
    store = Store(tmp_path, compact_every=None)
    key = store.put(make_entry(ARCH, beta_eff=1.0))
    store.compact()
    assert store.put(make_entry(ARCH, beta_eff=2.0)) == key  # loose copy beside the packed one
    assert len(store) == 1 and [e.summary["beta_eff"] for e in store.entries()] == [2.0]
    got = store.get(key)
    assert got is not None and got.summary["beta_eff"] == 2.0
    store.compact()
    store.put(make_entry(ARCH, beta_eff=3.0))
    store.compact()  # newer shards beside older ones holding the same key
    assert len(pack_files(store)) == 3
    got = Store(tmp_path).get(key)
    assert got is not None and got.summary["beta_eff"] == 3.0
    assert [e.summary["beta_eff"] for e in store.top(5)] == [3.0]
    store.compact(full=True)
    assert len(pack_files(store)) == 1 and [e.summary["beta_eff"] for e in store.entries()] == [3.0]


def test_interrupted_compaction_leaves_no_duplicates(tmp_path: Path) -> None:
    store = Store(tmp_path, compact_every=None)
    keys = [store.put(make_entry(arch_for(s), seed=s)) for s in range(5)]
    saved = {p.name: p.read_bytes() for p in entry_files(store)}
    store.compact()
    for name, data in saved.items():  # as if killed after the rename, before the deletes
        (tmp_path / "entries" / name).write_bytes(data)
    fresh = Store(tmp_path)
    assert sorted(fresh.keys()) == sorted(keys) and len(fresh.entries()) == 5
    assert fresh.damaged == []
    assert fresh.compact() == 5 and entry_files(fresh) == [] and len(fresh) == 5


def test_compaction_keeps_a_shard_holding_an_entry_invalid_today(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path, compact_every=None)
    old = [store.put(make_entry(arch_for(s), seed=s)) for s in range(2)]
    store.compact()
    (shard,) = pack_files(store)
    new = store.put(make_entry(arch_for(2), seed=2))
    from nasnc.store import _compact

    real = _compact._check

    def stricter(entry: Entry):  # as if a later release tightened the rules
        if entry.key == old[0]:
            raise StoreError(f"entry {entry.key}: invalid under today's rules")
        return real(entry)

    monkeypatch.setattr(_compact, "_check", stricter)
    with caplog.at_level(logging.WARNING, logger="nasnc"):
        store.compact(full=True)
    assert shard.exists() and "keeps" in caplog.text and shard.name in caplog.text
    assert entry_files(store) == []  # the loose entry was packed
    assert sorted(Store(tmp_path).keys()) == sorted([*old, new])


def test_auto_compaction_and_size_tiered_merging(tmp_path: Path) -> None:
    store = Store(tmp_path, compact_every=4, fanout=2)
    keys = [store.put(make_entry(arch_for(s), seed=s)) for s in range(24)]
    sizes = sorted(int(p.name.split("-")[2]) for p in pack_files(store))
    assert len(entry_files(store)) < 4 and sum(sizes) + len(entry_files(store)) == 24
    assert len(set(sizes)) == len(sizes)  # at most fanout - 1 = 1 shard per size tier
    assert sorted(Store(tmp_path).keys()) == sorted(keys)
    for s, key in enumerate(keys):
        got = store.get(key)
        assert got is not None
        assert_same(got, make_entry(arch_for(s), seed=s))
    assert store.compact(full=True) == 24 and len(pack_files(store)) == 1


def test_copy_stored_last_wins_whatever_the_shard_order(tmp_path: Path) -> None:
    store = Store(tmp_path, compact_every=None, fanout=2)
    key = store.put(make_entry(ARCH, beta_eff=1.0))
    store.put(make_entry(arch_for(1), seed=1))
    store.compact()  # shard P1 {key v1, a}, size tier 1
    store.put(make_entry(ARCH, beta_eff=2.0))
    store.compact()  # shard P2 {key v2}, tier 0
    store.put(make_entry(arch_for(2), seed=2))
    store.put(make_entry(arch_for(3), seed=3))
    store.compact()  # P3 {b, c}, tier 1 -> merged with P1 into P4 {key v1, a, b, c}, newest name
    names = [p.name for p in pack_files(store)]
    assert [int(n.split("-")[2]) for n in names] == [1, 4]  # P2 is older than P4
    reader = Store(tmp_path)
    got = reader.get(key)
    assert got is not None and got.summary["beta_eff"] == 2.0
    assert {e.key: e.summary["beta_eff"] for e in reader.entries()}[key] == 2.0
    assert [i.value("beta_eff") for i in reader.index() if i.key == key] == [2.0]
    assert store.compact(full=True) == 4
    got = Store(tmp_path).get(key)
    assert got is not None and got.summary["beta_eff"] == 2.0


def test_store_is_picklable_without_handles(filled: Store) -> None:
    filled.top(2)
    clone = pickle.loads(pickle.dumps(filled))
    assert clone.path == filled.path and len(clone) == len(filled)


# -------------------------------------------------------- opening the cache
def test_missing_path_without_create(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="nowhere"):
        Store(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()


def test_a_read_only_store_refuses_every_write(tmp_path: Path) -> None:
    Store(tmp_path).put(make_entry(ARCH))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    reader = Store(tmp_path, create=False)
    for write in (
        lambda: reader.put(make_entry(arch_for(1), seed=1)),
        lambda: reader.compact(full=True),
        lambda: reader.clean(older_than_s=0.0),
    ):
        with pytest.raises(StoreError, match=r"read-only \(create=False\)"):
            write()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert len(reader) == 1


def test_refuses_foreign_directory_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the cache path is empty"):
        Store("")  # was the working folder, turned into a cache
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a nasnc cache"):
        Store(tmp_path)
    with pytest.raises(StoreError, match="is a file"):
        Store(tmp_path / "notes.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StoreError, match="not a nasnc cache"):
        Store(empty, create=False)


@pytest.mark.parametrize("sub", ["entries", "packs", "tmp", "quarantine"])
@pytest.mark.parametrize("create", [True, False])
def test_a_file_where_the_cache_keeps_a_folder_is_named(
    tmp_path: Path, sub: str, create: bool
) -> None:
    """It used to surface as NotADirectoryError or "[Errno 17] File exists"."""
    cache = tmp_path / "cache"
    Store(cache).put(make_entry("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"))
    if (cache / sub).is_dir():
        for path in sorted((cache / sub).rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        (cache / sub).rmdir()
    (cache / sub).write_text("mine")
    with pytest.raises(StoreError, match=f"{cache / sub} is a file"):
        Store(cache, create=create)
    assert (cache / sub).read_text() == "mine"


def test_unknown_schema_version_of_the_cache(tmp_path: Path) -> None:
    Store(tmp_path)
    with h5py.File(tmp_path / "nasnc-store.h5", "r+") as f:
        f.attrs["schema_version"] = SNAPSHOTS_MARKER_VERSION + 1  # 2: a cache with snapshots
    with pytest.raises(StoreError, match=r"nasnc-store\.h5.*schema_version 3"):
        Store(tmp_path)


@pytest.mark.parametrize("option", ["compact_every", "fanout"])
def test_bad_options(tmp_path: Path, option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        Store(tmp_path, **{option: 0})


# ---------------------------------------------------------- damaged files
def _damage(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"definitely not HDF5 " * 50)
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "schema":
        with h5py.File(path, "r+") as f:
            f.attrs["schema_version"] = 99
    elif how == "bitflip":  # one byte of array data: caught by the Fletcher-32 checksum
        with h5py.File(path, "r") as f:
            ds = f["trajectory/beta_eff"]
            offset = ds.id.get_chunk_info(0).byte_offset
        data = bytearray(path.read_bytes())
        data[offset + 3] ^= 0xFF
        path.write_bytes(bytes(data))


HOW = ["garbage", "truncated", "empty", "schema", "bitflip"]


@pytest.mark.parametrize("how", HOW)
def test_damaged_entry_file_is_skipped_by_readers_and_quarantined_by_writers(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path, compact_every=None)
    good = [store.put(make_entry(arch_for(s), seed=s, beta_eff=float(s))) for s in range(3)]
    bad = store.put(make_entry(arch_for(7), seed=7, beta_eff=100.0))
    path = tmp_path / "entries" / f"{bad}.h5"
    _damage(path, how)

    reader = Store(tmp_path, create=False)  # a reader moves nothing
    with caplog.at_level(logging.WARNING, logger="nasnc.store"):
        assert reader.get(bad) is None
        assert sorted(e.key for e in reader.entries()) == sorted(good)
    assert caplog.text.count(str(path)) == 1  # named once
    if how == "schema":
        assert "schema_version 99" in caplog.text
    assert [d.path for d in reader.damaged] == [path]
    assert [e.key for e in reader.top(5)] == [good[2], good[1], good[0]]
    assert len(reader) == 3 and bad not in reader and path.exists()
    assert reader.quarantined == []

    caplog.clear()
    writer = Store(tmp_path, compact_every=None)
    with caplog.at_level(logging.WARNING, logger="nasnc.store"):
        assert writer.get(bad) is None  # a miss: the caller recomputes it
    (moved,) = writer.quarantined
    assert not path.exists() and moved.name.endswith(f"entries-{bad}.h5")
    assert str(path) in moved.with_name(moved.name + ".why.txt").read_text()
    assert str(path) in caplog.text and str(moved) in caplog.text
    assert writer.damaged == [] and writer.stats()["quarantined"] == 1
    assert writer.put(make_entry(arch_for(7), seed=7, beta_eff=100.0)) == bad
    assert len(writer) == 4 and writer.damaged == []
    assert writer.compact() == 4 and len(Store(tmp_path, create=False)) == 4


@pytest.mark.parametrize("how", ["garbage", "truncated", "schema"])
def test_damaged_pack_does_not_hide_healthy_files(tmp_path: Path, how: str) -> None:
    store = Store(tmp_path, compact_every=None)
    lost = [store.put(make_entry(arch_for(s), seed=s)) for s in range(3)]
    store.compact()
    kept_pack = [store.put(make_entry(arch_for(s), seed=s)) for s in range(10, 13)]
    store.compact()
    loose = [store.put(make_entry(arch_for(s), seed=s)) for s in range(20, 22)]
    old, _new = pack_files(store)
    with h5py.File(old, "r") as f:
        assert sorted(f["index/key"].asstr()[()]) == sorted(lost)
    if how == "schema":
        with h5py.File(old, "r+") as f:
            f.attrs["schema_version"] = 99
    else:
        _damage(old, how)
    reader = Store(tmp_path, create=False)
    assert sorted(reader.keys()) == sorted(kept_pack + loose)
    assert [d.path for d in reader.damaged] == [old]
    assert len(reader.top(10)) == 5
    assert reader.get(lost[0]) is None  # its copy lives only in the damaged shard
    assert old.exists()
    writer = Store(tmp_path, compact_every=None)
    assert writer.compact(full=True) == 5 and not old.exists()
    assert len(writer.quarantined) == 1
    assert sorted(Store(tmp_path).keys()) == sorted(kept_pack + loose)


def test_temporary_files_are_ignored_and_cleaned(tmp_path: Path) -> None:
    store = Store(tmp_path)
    key = store.put(make_entry(ARCH))
    tmp = tmp_path / "tmp"
    partial = (tmp_path / "entries" / f"{key}.h5").read_bytes()[:500]
    dead = tmp / f"{'a' * 24}.otherhost.12345.0123abcd.tmp"
    mine_dead = tmp / f"pack.{store.writer_id.rsplit('-', 1)[0]}.999999999.89abcdef.tmp"
    alive = tmp / f"{'b' * 24}.otherhost.1.fedcba98.tmp"
    for p in (dead, mine_dead, alive):
        p.write_bytes(partial)
    recent_dead = tmp / f"{key}.{store.writer_id.rsplit('-', 1)[0]}.999999998.01234567.tmp"
    recent_dead.write_bytes(partial)
    old = time.time() - 7200
    os.utime(dead, (old, old))
    quiet = time.time() - 700  # a dead pid counts only after min_age_s (other containers)
    os.utime(mine_dead, (quiet, quiet))
    assert Store(tmp_path).keys() == [key] and Store(tmp_path).damaged == []
    removed = store.clean(older_than_s=3600)
    assert sorted(removed) == sorted([dead, mine_dead])
    assert alive.exists() and recent_dead.exists()
    assert store.clean(older_than_s=3600, min_age_s=0) == [recent_dead]


# ------------------------------------------------------ processes and crashes
_PRELUDE = """
import sys
from nasnc.space import Arch
from nasnc.store import Store
from nasnc.testing import make_entry

def arch_for(seed):
    return Arch.from_indices([(seed // 5**j) % 5 for j in range(6)])
"""

_WRITER = (
    _PRELUDE
    + """
path, worker, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = Store(path, writer_id=f"w{worker}", compact_every=8, fanout=2)
for i in range(n):
    seed = worker * 1000 + i
    key = store.put(make_entry(arch_for(seed), seed=seed))
    sys.stdout.write(f"{key} {seed}\\n")  # one write: one line, even under PYTHONUNBUFFERED
    sys.stdout.flush()
"""
)

_ENDLESS_WRITER = (
    _PRELUDE
    + """
path, seed = sys.argv[1], int(sys.argv[2])
store = Store(path, compact_every=6, fanout=2)
print("ready", flush=True)
while True:
    key = store.put(make_entry(arch_for(seed), seed=seed, n_points=20))
    sys.stdout.write(f"{key} {seed}\\n")  # one write: a kill cannot tear the line
    sys.stdout.flush()
    seed += 1
"""
)


def _spawn(script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_concurrent_writers_and_readers_lose_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    reader = Store(cache)
    writers = [_spawn(_WRITER, cache, w, 25) for w in range(4)]
    polls, last = 0, 0
    while any(p.poll() is None for p in writers) or polls < 3:
        view = reader if polls % 2 else Store(cache, create=False)  # warm and cold readers
        n = len(view)
        assert n >= last, "an entry disappeared while writers were running"
        last = n
        loaded = view.entries()
        assert len(loaded) >= n and view.damaged == []
        if loaded:
            got = view.get(loaded[-1].key)
            assert got is not None
            assert_same(got, make_entry(arch_for(got.seed), seed=got.seed))
        assert len(view.top(3, by="proxy_valid_acc")) >= min(3, len(loaded))  # more may land
        polls += 1
    printed = {}
    for p in writers:
        out, err = p.communicate()
        assert p.returncode == 0, err
        for line in out.splitlines():
            key, seed = line.split()
            printed[key] = int(seed)
    assert len(printed) == 100
    final = Store(cache, create=False)
    assert sorted(final.keys()) == sorted(printed)
    assert final.damaged == []
    for e in final.entries():
        assert_same(e, make_entry(arch_for(printed[e.key]), seed=printed[e.key]))
    assert pack_files(final), "compaction never ran concurrently with the writers"
    assert list((cache / "tmp").iterdir()) == []


@pytest.mark.slow
def test_sigkill_never_loses_a_reported_entry(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    Store(cache)
    rng = random.Random(20240501)
    reported: dict[str, int] = {}
    kills = 0
    rounds = 21
    for round_ in range(rounds):
        proc = _spawn(_ENDLESS_WRITER, cache, round_ * 100_000)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        # a few puts first (the first may compact what the last round left), so that the
        # count below does not depend on how fast a loaded machine runs the writer
        first = "".join(proc.stdout.readline() for _ in range(rng.randint(3, 5)))
        time.sleep(rng.uniform(0.0, 0.3))  # a random moment: mid-put, mid-compaction, between
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        kills += proc.returncode == -signal.SIGKILL
        for line in (first + out).splitlines(keepends=True):
            if line.endswith("\n"):  # only complete lines were reported
                key, seed = line.split()
                reported[key] = int(seed)
        # after every kill the cache reopens and everything reported so far is there
        view = Store(cache, create=False)
        assert set(reported) <= set(view.keys())
        assert view.damaged == []
    assert kills == rounds >= 20  # every writer died by SIGKILL, none on its own
    assert len(reported) > 50
    store = Store(cache)
    for key, seed in reported.items():
        got = store.get(key)
        assert got is not None, f"entry {key} (seed {seed}) was reported written but is gone"
        assert_same(got, make_entry(arch_for(seed), seed=seed, n_points=20))
    assert len(store) >= len(reported)
    assert pack_files(store)
    store.clean(min_age_s=0)  # one host, no other container: dead pids are dead
    assert list((cache / "tmp").iterdir()) == []


def test_a_put_landing_while_compaction_retires_its_file_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # compaction packs entries/<key>.h5 and then removes it; a worker that puts the
    # same key again at that instant (a newer run) must keep its file and its value
    store = Store(tmp_path / "c", compact_every=None)
    key = store.put(make_entry(ARCH, beta_eff=1.0))
    store.put(make_entry(ARCH, seed=1))
    real_rename, real_unlink = os.rename, os.unlink
    fired: list[str] = []

    def newer_put_first(path: object) -> None:  # the worker's put lands just before
        if not fired and Path(str(path)) == tmp_path / "c" / "entries" / f"{key}.h5":
            fired.append(str(path))
            Store(tmp_path / "c", compact_every=None).put(make_entry(ARCH, beta_eff=2.0))

    def rename(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        newer_put_first(src)
        return real_rename(src, dst, *args, **kwargs)

    def unlink(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        newer_put_first(path)
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "unlink", unlink)  # Path.unlink calls it
    store.compact(full=True)
    monkeypatch.undo()
    assert fired
    got = Store(tmp_path / "c").get(key)
    assert got is not None and got.summary["beta_eff"] == 2.0
    assert (tmp_path / "c" / "entries" / f"{key}.h5").exists()
    assert not list((tmp_path / "c" / "tmp").iterdir())  # nothing left behind


def test_retire_deletes_only_the_file_it_was_given(tmp_path: Path) -> None:
    from nasnc.store._files import ident_of, retire

    (tmp_path / "tmp").mkdir()
    path = tmp_path / "f.h5"
    path.write_bytes(b"old")
    old = ident_of(path.stat())
    newer = tmp_path / "newer"
    newer.write_bytes(b"newer file")
    os.replace(newer, path)  # a writer replaced it since
    assert not retire(tmp_path, path, old) and path.read_bytes() == b"newer file"
    assert retire(tmp_path, path, ident_of(path.stat())) and not path.exists()
    assert not retire(tmp_path, path, old)  # gone already
    assert not list((tmp_path / "tmp").iterdir())
