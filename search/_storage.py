"""Optuna storages from URLs, and failing trials their workers left behind.

Storage URLs
------------
``sqlite:///runs/<study>.db``  (default, one worker)
    The embedded default; nothing to run.
``journal:PATH``               (default with ``workers > 1``)
    An Optuna journal file: several processes on one machine. Of the two
    defaults, a rerun resumes the file its study started in.
``postgresql+psycopg://user@host/db``
    Several machines: start ``nasnc search`` with the same URL and study name
    on each (``load_if_exists``); each process uses its own device.

Stale trials
------------
A worker killed mid-trial leaves a RUNNING trial. With an RDB storage
(SQLite, PostgreSQL) Optuna's heartbeat fails it once ``heartbeat_grace``
seconds pass without a beat. Journal files have no heartbeat in Optuna, so the
objective writes a ``heartbeat`` user attribute at every report point and
:func:`fail_stale_trials` fails RUNNING trials whose last beat is older than the
grace period when a run starts.

A URL that is shown or stored (summaries, errors, the study's ``config``
attribute) goes through :func:`shown_url`, which masks its password.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

from nasnc import ConfigError, NasncError

from ._config import HEARTBEAT_GRACE_S, HEARTBEAT_INTERVAL_S
from ._objective import FAIL_REASON_ATTR, HEARTBEAT_ATTR
from ._signals import INTERRUPTED_REASON

__all__ = [
    "STALE_REASON",
    "counts_toward_n_trials",
    "fail_stale_trials",
    "fail_trial",
    "local_file",
    "make_storage",
    "n_finished",
    "shown_url",
    "storage_error",
]

logger = logging.getLogger(__name__)

#: ``fail_reason`` prefix of a RUNNING trial failed for a stale heartbeat.
STALE_REASON = "stale:"

#: ``scheme://user:password@`` in a URL SQLAlchemy cannot parse (e.g. a bad port).
_PASSWORD = re.compile(r"(://[^/:@]*:)[^/]*@")


def shown_url(url: str) -> str:
    """``url`` as shown or stored: a database URL's password masked as ``***``.

    SQLAlchemy renders it (``render_as_string(hide_password=True)``); a URL
    without a password (journal, SQLite) is returned unchanged. Only
    :func:`make_storage` needs the real URL.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # journal:PATH, or a bad port: mask by the URL's shape
        return _PASSWORD.sub(r"\1***@", url)
    return url if parsed.password is None else parsed.render_as_string(hide_password=True)


def counts_toward_n_trials(trial: FrozenTrial) -> bool:
    """Whether ``trial`` reached a verdict about its cell (see :mod:`nasnc_search._study`)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    if trial.state != TrialState.FAIL:
        return False
    reason = trial.user_attrs.get(FAIL_REASON_ATTR)
    return (
        isinstance(reason, str)
        and reason != INTERRUPTED_REASON
        and not reason.startswith(STALE_REASON)
    )


def n_finished(study: optuna.Study) -> int:
    """Trials of ``study`` that count towards ``n_trials`` (:func:`counts_toward_n_trials`)."""
    return sum(map(counts_toward_n_trials, study.get_trials(deepcopy=False)))


def local_file(url: str) -> Path | None:
    """The file a local storage URL keeps its studies in (``journal:PATH``,
    ``sqlite:///PATH``); None for a database server or an in-memory SQLite."""
    for prefix in ("journal:", "sqlite:///"):
        if url.startswith(prefix):
            path = url[len(prefix) :]
            return Path(path) if path and path != ":memory:" else None
    return None


def _check_journal(path: Path) -> None:
    """Refuse an existing file that is not an Optuna journal, before anything is appended.

    Optuna's file backend skips a last line it cannot parse (a write in
    progress), so a one-line foreign file would look like an empty journal and
    get a study record appended to it.
    """
    if path.is_dir():
        raise ConfigError(f"journal storage {path} is a folder; name a file")
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        first = f.readline()
    if not first.endswith(b"\n") and first.startswith(b'{"op_code":'):
        return  # a journal whose one line a killed writer tore: mended at the next append
    try:
        record = json.loads(first.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError both are
        record = None
    if not (isinstance(record, dict) and "op_code" in record):
        raise ConfigError(
            f"{path} is not an Optuna journal (its first line is not a journal record); "
            "name another file"
        )


#: Suffix of the file a torn journal line is moved into (:func:`_cut_torn_tail`).
TORN_SUFFIX = ".torn"


def _last_line_start(f: BinaryIO, end: int, chunk: int = 1 << 16) -> int:
    """Offset just past the last newline before ``end`` in binary file ``f`` (0 if none)."""
    pos = end
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        f.seek(pos)
        at = f.read(step).rfind(b"\n")
        if at >= 0:
            return pos + at + 1
    return 0


def _cut_torn_tail(f: BinaryIO, path: Path) -> None:
    """Move the torn last line (a writer killed mid-line) of journal ``f``, open at
    ``path`` for reading and writing, to ``PATH.torn``.

    Call it holding the lock Optuna's writers hold while they append, so that no
    write is in progress and a last line without its newline is torn for good.
    """
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return
    f.seek(end - 1)
    if f.read(1) == b"\n":
        return
    cut = _last_line_start(f, end)
    f.seek(cut)
    torn = f.read()
    kept = path.with_name(path.name + TORN_SUFFIX)
    with kept.open("ab") as out:
        out.write(torn + b"\n")
        out.flush()
        os.fsync(out.fileno())
    f.truncate(cut)
    logger.warning(
        "journal %s: its last line was cut off mid-write (%d bytes; a killed process?); "
        "moved to %s so that new records start on a line of their own",
        path,
        len(torn),
        kept,
    )


class _MendingJournalBackend(JournalFileBackend):
    """Optuna's journal file, each append of which first moves a torn last line aside.

    Optuna's reader skips a last line without its newline (a write in
    progress), but its writer appends the next records right after it: the
    torn bytes of a killed writer and the next record of any process, a
    worker still running included, become one line no reader can parse, and
    the study stops opening at all. Here every append takes the lock Optuna's
    writers take, cuts a torn tail (:func:`_cut_torn_tail`), then writes the
    records as Optuna does: one compact JSON object per line, fsynced.
    """

    def __init__(self, path: Path) -> None:
        # an absolute path: Optuna's symlink lock points at the path as given, and a
        # relative one resolves against the lock's folder (a lock never released)
        self._file = path.resolve()
        self._append_lock = JournalFileSymlinkLock(str(self._file))
        super().__init__(str(self._file), lock_obj=self._append_lock)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        self._append_lock.acquire()
        try:
            with self._file.open("r+b") as f:  # Optuna's __init__ made the file
                _cut_torn_tail(f, self._file)
                f.seek(0, os.SEEK_END)
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())  # the cut and the records together
        finally:
            self._append_lock.release()


def _bad_journal_line(path: Path) -> int | None:
    """The number (from 1) of the first line of a journal that is not a JSON record,
    a torn last line aside (Optuna skips it); None when every line reads."""
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                return None
            try:
                json.loads(line)
            except ValueError:
                return number
    return None


def _check_sqlite(path: Path, *, read_only: bool) -> None:
    """Refuse an existing file that is not an SQLite database holding Optuna's tables.

    An empty file is a new database for a study to be created in; a database
    of something else is never written into (Optuna would add its tables).
    """
    if path.is_dir():
        raise ConfigError(f"SQLite storage {path} is a folder; name a file")
    if not path.is_file():
        return
    if path.stat().st_size == 0:
        if read_only:
            raise ConfigError(f"SQLite storage {path} is an empty file: it holds no studies")
        return
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as db:
            tables = {
                row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
    except sqlite3.Error as exc:
        raise ConfigError(f"{path} is not an SQLite database ({exc})") from None
    if "studies" not in tables and (tables or read_only):
        raise ConfigError(
            f"{path} is an SQLite database without Optuna's tables "
            f"(it holds: {', '.join(sorted(tables)) or 'none'}); name another file"
        )


def make_storage(
    url: str,
    *,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
    grace: int = HEARTBEAT_GRACE_S,
    read_only: bool = False,
) -> BaseStorage:
    """An Optuna storage for ``url`` (see the module docstring); creates local folders.

    A local file that exists must be a storage of its kind (an Optuna journal,
    an SQLite database with Optuna's tables, or empty): anything else is a
    :class:`ConfigError` naming it, and nothing is written to it.
    ``read_only`` (for commands that only read, like ``nasnc report``) also
    never creates tables in a database.
    """
    if url.startswith("journal:"):
        path = local_file(url)
        if path is None or not path.name:
            raise ConfigError(f"journal storage needs a file path, but got storage={url!r}")
        _check_journal(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(_MendingJournalBackend(path))
        except OSError as exc:  # a read-only folder, a file where a folder should be
            raise storage_error(url, exc) from exc
        except ValueError as exc:  # a damaged line (JSON or UTF-8) in the log it replays
            line = _bad_journal_line(path)
            where = f" (line {line} of {path} is not a journal record)" if line else ""
            raise storage_error(url, exc, kind=True, where=where) from exc
    if url.startswith("sqlite:///"):
        db = local_file(url)
        if db is not None:
            _check_sqlite(db, read_only=read_only)
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise storage_error(url, exc) from exc
    elif "://" not in url:
        raise ConfigError(
            f"storage must be a URL (sqlite:///FILE, journal:FILE, postgresql+psycopg://...), "
            f"but got storage={url!r}"
        )
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna; we rely on them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace,
                engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
                skip_table_creation=read_only,
            )
    except Exception as exc:  # SQLAlchemy/driver errors: name the storage, not its password
        raise storage_error(url, exc, kind=True) from exc


def storage_error(
    url: str, exc: BaseException, *, kind: bool = False, where: str = ""
) -> NasncError:
    """ "cannot open storage URL: why", the URL shown without its password; ``where``
    (such as the damaged line of a journal) is appended."""
    shown = shown_url(url)
    # the driver's own error, not a wrapper (Optuna's "exception during the commit",
    # SQLAlchemy's with its [SQL: ...] and link lines): the root of the chain
    cause: BaseException = exc
    while True:
        inner = getattr(cause, "orig", None) or cause.__cause__
        if not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    why = (str(cause).strip().splitlines() or [""])[0].replace(url, shown)
    return NasncError(
        f"cannot open storage {shown!r}: {type(cause).__name__ + ': ' if kind else ''}{why}{where}"
    )


def fail_trial(storage: BaseStorage, study_id: int, trial: FrozenTrial, reason: str) -> bool:
    """Fail a RUNNING trial of another owner through the storage's public API."""
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    try:
        storage.set_trial_user_attr(trial_id, FAIL_REASON_ATTR, reason)
        return storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):  # finished meanwhile
        return False


def fail_stale_trials(storage: BaseStorage, study_name: str, grace: float) -> int:
    """Fail RUNNING trials whose heartbeat is older than ``grace`` seconds; return how many.

    Meant for journal storages, which have no heartbeat of their own in Optuna
    (RDB storages have Optuna's heartbeat, on the database's clock); the reason
    goes to ``fail_reason``.
    """
    study_id = storage.get_study_id_from_name(study_name)
    now = time.time()
    n = 0
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.user_attrs.get(HEARTBEAT_ATTR)
        last = (
            float(beat)
            if isinstance(beat, (int, float))
            else (trial.datetime_start.timestamp() if trial.datetime_start else now)
        )
        if now - last > grace:
            reason = f"{STALE_REASON} no heartbeat for {now - last:.0f} s"
            n += fail_trial(storage, study_id, trial, reason)
    if n:
        logger.warning("failed %d stale trial(s) of study %s", n, study_name)
    return n
