"""Download a file with a checksum check; written to a temporary name and renamed only when valid."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from lmrec.errors import LmrecError


class DownloadError(LmrecError):
    """A download failed or its content does not match the expected checksum."""


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: str | Path, *, md5: str | None = None, sha256: str | None = None,
             progress: bool = True) -> Path:
    """Fetch ``url`` (http(s) or file://) to ``dest``. A mismatching checksum leaves nothing behind."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310
            total = int(resp.headers.get("Content-Length") or 0) or None
            with Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn(), disable=not progress,
                          transient=True) as bar:
                task = bar.add_task(dest.name, total=total)
                for block in iter(lambda: resp.read(1 << 20), b""):
                    out.write(block)
                    bar.advance(task, len(block))
        for algorithm, expected in (("md5", md5), ("sha256", sha256)):
            if expected is not None and (got := _digest(tmp, algorithm)) != expected.lower():
                raise DownloadError(f"{url}: {algorithm} checksum mismatch (expected {expected}, got {got}); "
                                    "the file was not kept")
        tmp.replace(dest)
    except OSError as exc:
        raise DownloadError(f"{url}: download failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def extract_zip(archive: Path, members: dict[str, str], target: Path) -> None:
    """Copy selected archive members (``name in zip -> file name``) into ``target``, all or nothing."""
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            for member, out_name in members.items():
                if member not in names:
                    raise DownloadError(f"{archive}: member {member!r} not in the archive")
                with zf.open(member) as src, (staging / out_name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        target.mkdir(parents=True, exist_ok=True)
        for out_name in members.values():
            (staging / out_name).replace(target / out_name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
