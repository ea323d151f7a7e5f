"""A run's checkpoint file: a unique name claimed before training, save errors in words, stale temporaries swept."""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from .processes import pid_alive

SLUG_CHARS = 40  # of the display name kept in the file name: ASCII, so the whole name stays far below 255 bytes
TMP_STALE_S = 600.0  # a temporary file untouched this long is a dead save, whoever wrote it (a save takes seconds)
TMP_PATTERN = re.compile(r"^\.(?P<name>.+\.pth)\.(?P<pid>\d+)\.[^.]+\.tmp$")


class SaveError(OSError):
    """A checkpoint could not be written; str() is one line with the cause and the fix."""

    def __str__(self) -> str:
        return str(self.strerror)


def slug(name: str) -> str:
    """The part of a file name taken from a display name: ASCII letters, digits, '-', '_'; never empty."""
    text = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_")[:SLUG_CHARS].strip("-_")
    return text or "run"


def claim_checkpoint(folder: Path, name: str, run_id: str | None = None) -> Path:
    """Create `<slug>-<id>.pth` empty and exclusively (O_EXCL): no other run, process or machine sharing the
    folder can get the same file, and no existing file is ever overwritten. Raises FileExistsError on a clash."""
    path = folder / f"{slug(name)}-{run_id or secrets.token_hex(4)}.pth"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.close(fd)
    return path


def release_unused(path: Path) -> None:
    """Remove a claimed file that never received a checkpoint (a run that failed before its first epoch)."""
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


def check_folder(folder: Path, *, needed_bytes: int = 0) -> None:
    """Refuse, before any training, a folder that cannot hold the run's checkpoints."""
    if folder.exists() and not folder.is_dir():
        raise SaveError(errno.ENOTDIR, f"{folder} is a file, not a folder: choose another --out folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SaveError(err.errno, save_problem(err, folder)) from err
    if not os.access(folder, os.W_OK):  # access(2) also says no on a read-only file system, even to root
        readonly = hasattr(os, "statvfs") and os.statvfs(folder).f_flag & os.ST_RDONLY
        # Its own name: `err` is unbound once the except above ends.
        refused = OSError(errno.EROFS if readonly else errno.EACCES, "")
        raise SaveError(refused.errno, save_problem(refused, folder))
    if needed_bytes:
        free = shutil.disk_usage(folder).free
        if free < needed_bytes:
            raise SaveError(
                errno.ENOSPC,
                f"only {free / 1e6:,.1f} MB free in {folder}, and this run's checkpoints "
                f"need about {needed_bytes / 1e6:,.1f} MB: free some disk space or "
                "choose another --out folder",
            )


def save_problem(err: OSError, folder: Path) -> str:
    """One line: what stopped a write into `folder`, and what to do about it."""
    fixes = {
        errno.ENOSPC: f"the disk holding {folder} is full: free some disk space",
        errno.EDQUOT: f"your disk quota for {folder} is used up: free some space",
        errno.EROFS: f"{folder} is on a read-only file system: choose another --out folder",
        errno.EACCES: f"no permission to write in {folder}: make it writable or choose another --out folder",
        errno.EPERM: f"no permission to write in {folder}: make it writable or choose another --out folder",
        errno.ENOTDIR: f"{folder} (or a folder above it) is a file, not a folder: choose another --out folder",
        errno.EEXIST: f"{folder} exists as a file, not a folder: choose another --out folder",
        errno.ENAMETOOLONG: f"a file name in {folder} is too long for its file system: choose a shorter name",
    }
    return fixes.get(err.errno or 0, f"could not write in {folder}: {err.strerror or err}")


def sweep_stale_temporaries(folder: Path, *, now: float | None = None) -> list[Path]:
    """Remove `.NAME.pth.<pid>.*.tmp` left by a save that was killed: its process is gone, or it is old."""
    now = time.time() if now is None else now
    removed = []
    for path in folder.glob(".*.tmp") if folder.is_dir() else ():
        match = TMP_PATTERN.match(path.name)
        if match is None:
            continue
        try:
            age = now - path.stat().st_mtime
            if age > TMP_STALE_S or (age > 60 and not pid_alive(int(match["pid"]))):
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # another process swept it first, or it cannot be removed: leave it
    return removed
