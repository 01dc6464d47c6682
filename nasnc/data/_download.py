"""Download of the official dataset archives: checksum-verified, safely extracted."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nasnc._errors import DataError

__all__ = ["ARCHIVES", "Archive", "download_archive"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """Where a dataset's archive comes from and what it must contain.

    Parameters
    ----------
    url : str
        ``https://`` (or, for tests and mirrors, ``file://``) address of a ``.tar.gz``.
    md5 : str
        Expected MD5 hex digest of the archive file; the download is refused on mismatch.
    folder : str
        The top-level folder the archive extracts to (e.g. ``cifar-10-batches-py``).
    filename : str or None
        Name under which the archive is cached; defaults to the URL's last component.
    """

    url: str
    md5: str
    folder: str
    filename: str | None = None

    @property
    def archive_name(self) -> str:
        """File name of the cached archive."""
        return self.filename or PurePosixPath(self.url.split("?", 1)[0]).name


#: The official archives (the checksums are the ones the dataset authors publish).
ARCHIVES: dict[str, Archive] = {
    "cifar10": Archive(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
    ),
    "cifar100": Archive(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
    ),
}


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(archive: Archive, target: Path) -> None:
    """Stream ``archive.url`` to ``target`` (atomically) and verify its MD5."""
    part = target.with_name(target.name + ".part")
    digest = hashlib.md5(usedforsecurity=False)
    logger.info("downloading %s to %s", archive.url, target)
    try:
        with urllib.request.urlopen(archive.url, timeout=60) as response, part.open("wb") as out:
            for block in iter(lambda: response.read(_CHUNK), b""):
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        with contextlib.suppress(OSError):
            part.unlink()
        raise DataError(
            f"could not download {archive.url} into {target.parent}: {exc}. Offline? Put the "
            f"extracted {archive.folder}/ folder there yourself, or point --data-root / "
            "NASNC_DATA_DIR at a folder that holds it."
        ) from exc
    got = digest.hexdigest()
    if got != archive.md5:
        part.unlink()
        raise DataError(
            f"checksum mismatch for {archive.url}: expected md5 {archive.md5} but got {got}; "
            "the download was deleted (truncated transfer or a different file)."
        )
    os.replace(part, target)


def _safe_members(tar: tarfile.TarFile, archive_path: Path) -> list[tarfile.TarInfo]:
    """Members of ``tar`` that are plain files/folders inside the destination, else DataError."""
    members = tar.getmembers()
    for m in members:
        name = PurePosixPath(m.name)
        if name.is_absolute() or ".." in name.parts or m.name.startswith(("/", "\\")):
            raise DataError(
                f"refusing to extract {archive_path}: member {m.name!r} would escape the folder"
            )
        if not (m.isfile() or m.isdir()):
            raise DataError(
                f"refusing to extract {archive_path}: member {m.name!r} is not a plain file "
                "or folder (links and devices are not allowed)"
            )
    return members


def _extract(archive_path: Path, root: Path, folder: str) -> Path:
    """Extract into a scratch folder, then move in the files ``root/folder`` lacks.

    Files already in ``root/folder`` are never overwritten or deleted.
    """
    scratch = Path(tempfile.mkdtemp(prefix=".nasnc-extract-", dir=root))
    try:
        try:
            with tarfile.open(archive_path, "r:*") as tar:
                members = _safe_members(tar, archive_path)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(scratch, members=members, filter="data")
                else:  # pragma: no cover - Python without the extraction filters
                    tar.extractall(scratch, members=members)  # members checked above
        except DataError:
            raise
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise DataError(f"cannot extract {archive_path}: {exc}") from exc
        src = scratch / folder
        if not src.is_dir():
            raise DataError(f"{archive_path} holds no {folder}/ folder; is it the right archive?")
        out = root / folder
        out.mkdir(exist_ok=True)
        for item in sorted(src.iterdir()):
            if not (out / item.name).exists():
                os.replace(item, out / item.name)
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def download_archive(archive: Archive, root: str | Path) -> Path:
    """Download (when not cached), verify and extract ``archive`` under ``root``.

    The archive is cached as ``root / archive.archive_name``; a cached file
    whose checksum does not match is downloaded again. Files already present in
    ``root / archive.folder`` are kept (never overwritten). Members that would land
    outside ``root`` (absolute paths, ``..``) or that are links or devices are
    refused.

    Parameters
    ----------
    archive : Archive
        What to fetch (see :data:`ARCHIVES` for the official ones).
    root : str or Path
        Cache folder; created when missing.

    Returns
    -------
    Path
        The extracted folder, ``root / archive.folder``.

    Raises
    ------
    DataError
        Offline or unreachable URL, checksum mismatch, or an unsafe/corrupt archive.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data folder {root}: {exc}") from exc
    target = root / archive.archive_name
    if target.is_file() and _md5(target) != archive.md5:
        logger.warning("cached %s does not match md5 %s; downloading again", target, archive.md5)
        target.unlink()
    if not target.is_file():
        _fetch(archive, target)
    existing = root / archive.folder
    if existing.exists() and not existing.is_dir():
        raise DataError(f"{existing} exists but is not a folder")
    out = _extract(target, root, archive.folder)
    logger.info("extracted %s to %s", target, out)
    return out
