"""HDF5 trajectory cache: one entry per evaluated (architecture, dataset, config, seed).

A cache hit means "do not train again": :meth:`Store.get` by key,
:meth:`Store.put` an :class:`Entry`, list with :meth:`Store.entries` /
:meth:`Store.index`, rank with :meth:`Store.top` / :meth:`Store.rank`.

Design
------
HDF5 allows one writer per file, and a process killed while writing an HDF5
file can leave it unreadable. The cache therefore never writes a file that a
reader can see. It is a directory of **immutable** HDF5 files:

* ``put`` writes one small *entry file* under a unique temporary name in
  ``tmp/``, flushes it (``fsync`` unless ``durable=False``) and
  ``os.replace``-s it to ``entries/<key>.h5``. The rename is atomic, so any
  number of writer processes (on one machine, or several sharing a POSIX file
  system) never contend for a file, readers see the whole entry or none, and
  ``SIGKILL`` at any moment loses at most the entry in flight (its temporary
  file is ignored and removable with :meth:`Store.clean`).
* One file per entry makes ranking 10,000 entries slow (opening each file
  costs milliseconds), so once ``compact_every`` (32) entry files exist,
  ``put`` *compacts* them into a read-only *packed shard*
  ``packs/pack-<ns>-<count>-<id>.h5`` holding many entries column-wise with a
  compact summary index. Shards are merged size-tiered: ``fanout`` (4) shards
  of one size tier become one shard of the next, so 10,000 entries live in
  6 to 15 shards and each entry is rewritten about log4(n/32) times.
  Compaction is crash-safe: a shard is written to ``tmp/``, fsync-ed and
  renamed into ``packs/`` before the merged files are deleted; an entry
  briefly present in two places is read once (an entry file beats shards;
  between shards the copy with the latest ``stored_ns``, the time of its
  ``put``, wins). One compaction runs at a time (``flock`` on
  ``compact.lock``, released by the kernel if the compactor dies); writers
  never wait for it (``put`` skips compaction while another process runs one).
* Readers take a listing of ``entries/`` and ``packs/`` when two in a row
  agree (``readdir`` is no snapshot: a compaction renaming a shard in and
  deleting its sources could hide both from one listing), cache each shard's
  index in memory by (inode, size, mtime) and rescan if a file vanishes
  under them. No handle is held between calls; each call uses
  ``with h5py.File(...)``.

Alternatives considered: per-writer append shards need a writer id that
survives restarts, and a writer killed mid-append leaves its shard
unreadable (HDF5 metadata is not journalled); SWMR allows one writer only and
its files need ``h5clear`` after a crash; a single writer process adds a
service to run. Immutable files plus rename need none of that.

HDF5 file locking: visible files never change, so readers open them with
``locking=False`` and work on file systems without ``flock`` (some NFS or
Lustre mounts); ``HDF5_USE_FILE_LOCKING``, when set, takes precedence inside
HDF5. No pickle anywhere: datasets and attributes only.

Damaged files
-------------
HDF5 1.10 checksums its superblock, object headers and B-trees, and every
array has a Fletcher-32 checksum, but variable-length strings (arch, config,
key...) and scalar datasets (the summary) are stored unchecksummed. Each
entry therefore carries a SHA-256 ``digest`` of everything it serves (key,
arch, canonical form, dataset, seed, config JSON, config hash, created,
version, typed summary and scores, and ``trajectory_digest``, the SHA-256 of
its trajectory columns), so the index record is verified without reading
the arrays and the arrays when they are read. Files written before digests
existed are checked by recomputing their key. Weight snapshots are read
lazily (:class:`Snapshots`): the digest covers their manifest, the manifest
each layer's SHA-256, and every layer read is verified; compaction verifies
them before packing them.

Any failure to read a file, or a mismatch, makes that file (or that row of
a shard) *damaged*: never served, skipped with one warning naming it, listed
in :attr:`Store.damaged`. A writing store (``create=True``, which every
command that trains opens) then moves it to ``quarantine/`` with a note
saying why, after re-packing the rows of a damaged shard that still verify
into a new shard; :meth:`Store.get` falls back to the newest healthy copy or
returns ``None``, so the evaluation is simply redone. Reading stores
(``create=False``, e.g. ``nasnc scores``) move nothing. A writing store
checks when it opens that it can write (and that ``min_free_bytes`` are
free), so an unwritable cache stops a command before it trains.
``benchmarks/store_fuzz.py`` flips single bytes of every class and counts
crashes and wrong values served (none).

On-disk layout (``schema_version`` 1)::

    <cache>/
    ├── nasnc-store.h5           marker: attrs schema_version=1 (2 once the cache
    │                            holds snapshots, which older nasnc then refuses),
    │                            kind="store", nasnc_version, created
    ├── entries/<key>.h5         one entry file per recent put
    ├── packs/pack-<ns>-<count>-<id>.h5   packed shards (read-only)
    ├── tmp/                     files being written (ignored by readers)
    ├── quarantine/<time>-<id>-<entries|packs>-<name>   damaged files moved aside,
    │                            each with a <name>.why.txt note (path, reason)
    └── compact.lock             flock held while compacting (and quarantining)

    entries/<key>.h5
    ├── attrs: schema_version=1, kind="entry", key, arch, canonical, dataset,
    │          seed (int64), config (canonical JSON), config_hash,
    │          nasnc_version, created (unix s, float64), stored_ns (int64,
    │          time of the put), writer, digest and trajectory_digest
    │          (64 hex digits, fixed-length bytes)
    ├── trajectory/              attrs: n_points; one row per report point
    │   ├── step        float64 (n,)   chunked, maxshape (None,), fletcher32
    │   ├── epoch, train_loss, train_acc, valid_acc, wall_s
    │   └── beta_eff, beta_eff_chain, ...   every observer column
    ├── summary/                 scalar datasets (float64, int64 or bool)
    │   └── beta_eff, beta_eff_std, beta_eff_last, proxy_valid_acc,
    │       cost_s, diverged (bool), ...
    ├── scores/                  scalar float64 datasets, NaN allowed
    │   └── params, synflow, naswot, ...
    └── snapshots/               only with ProxyConfig.snapshots "probe"/"network";
        │                        attrs: format, kind, names, shapes, digests (JSON);
        │                        root attr snapshots_digest (64 hex) then set
        ├── step    int64 (S,)   0 (initialisation) and every report point
        └── <i>     float16 (S, *weight_shape_i)   layer names[i] at every step;
                    chunks: whole layer over up to 1 MiB of steps; shuffle,
                    gzip 4, fletcher32 (see nasnc.store._snapshots)

    packs/pack-<ns>-<count>-<id>.h5     N = count entries, T trajectory rows
    ├── attrs: schema_version=1, kind="pack", n_entries=N, created,
    │          nasnc_version, writer
    ├── index/
    │   ├── key, arch, canonical, dataset, config, config_hash,
    │   │   nasnc_version          utf-8 strings (N,)
    │   ├── seed int64 (N,), created float64 (N,), stored_ns int64 (N,)
    │   ├── offset int64 (N+1,)    entry i owns trajectory rows offset[i]:offset[i+1]
    │   ├── digest, trajectory_digest   S64 (N,): as in entry files
    │   ├── layouts                utf-8 JSON strings: the columns, summary types
    │   │                          and score names an entry has
    │   └── layout_id int32 (N,)   row into layouts
    ├── summary/<name>  float64 (N,)   NaN where an entry lacks it
    ├── summary_int/<name>  int64 (N,) exact values of int summaries (0 where none)
    ├── scores/<name>   float64 (N,)
    ├── trajectory/<column>  float64 (T,)   chunked, fletcher32
    └── snapshots/<key>/     as in entry files, for entries that have them;
                             index/snapshots_digest S64 (N,) ("" for none)

Keys are 24 hex digits of SHA-256 over the cell's graph form, dataset,
:func:`config_hash` of the resolved proxy config and seed
(:func:`make_key`): cells that build the same network share a key, any config
change gives a new one. Entries of caches written under key format 1 (the
benchmark's canonical form) stay readable under their old keys. Trajectory
columns are stored as float64; configs as canonical JSON (sorted keys), so
tuples come back as lists.
"""

from nasnc.store._entry import (
    ENTRY_KINDS,
    REQUIRED_SUMMARY,
    Entry,
    canonical_json,
    config_hash,
    entry_kind,
    make_key,
)
from nasnc.store._hdf5 import SCHEMA_VERSION, EntryInfo
from nasnc.store._snapshots import SNAPSHOT_KINDS, Snapshots
from nasnc.store._store import Damage, Store

__all__ = [
    "ENTRY_KINDS",
    "REQUIRED_SUMMARY",
    "SCHEMA_VERSION",
    "SNAPSHOT_KINDS",
    "Damage",
    "Entry",
    "EntryInfo",
    "Snapshots",
    "Store",
    "canonical_json",
    "config_hash",
    "entry_kind",
    "make_key",
]
