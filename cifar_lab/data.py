"""CIFAR-10 as uint8 tensors from torchvision batches, image folders or a generator, with an on-disk cache."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from cifar_lab.datasources import (
    SOURCE_OPTIONS,
    Arrays,
    DataError,
    detect_kind,
    folder_classes,
    folder_fingerprint,
    missing_message,
    read_folder,
    read_torchvision,
    synthetic_arrays,
    torchvision_fingerprint,
)

log = logging.getLogger(__name__)
__all__ = ["CifarData", "DataError", "default_cache_dir", "load_data", "resolve_source", "synthetic_data"]

DEFAULT_SOURCE = "./data"
SYNTHETIC = "synthetic"
CACHE_VERSION = 1  # bump when the decoded layout or the image order changes


@dataclass(frozen=True, eq=False)
class CifarData:
    """Both splits in memory. Images are ordered so that every prefix is roughly class-balanced."""

    train_x: torch.Tensor  # (N, 3, 32, 32) uint8, contiguous
    train_y: torch.Tensor  # (N,) int64 class index
    test_x: torch.Tensor  # (M, 3, 32, 32) uint8, contiguous
    test_y: torch.Tensor  # (M,) int64
    classes: tuple[str, ...]
    source: str  # human description, e.g. "image folders at /data/cifar10-jpeg"

    def __post_init__(self) -> None:
        for x, y in ((self.train_x, self.train_y), (self.test_x, self.test_y)):
            if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3 or y.dtype != torch.int64:
                raise ValueError(
                    f"CifarData wants x (N, 3, H, W) uint8 and y (N,) int64, got {x.dtype} "
                    f"{tuple(x.shape)} and {y.dtype} {tuple(y.shape)}"
                )
            if y.shape != x.shape[:1]:
                raise ValueError(f"CifarData: {x.shape[0]} images but {y.shape[0]} labels")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> CifarData:
        """The first n_train / n_test images of each split (None keeps all); views, no copy."""
        train_x, train_y = self.train_x[:n_train], self.train_y[:n_train]
        test_x, test_y = self.test_x[:n_test], self.test_y[:n_test]
        note = f"{self.source}, first {len(train_y)} train / {len(test_y)} test"
        return CifarData(train_x, train_y, test_x, test_y, self.classes, note)


def resolve_source(source: str | os.PathLike | None = None) -> str:
    """The argument, else env CIFAR_LAB_DATA, else './data'."""
    if source is not None and str(source) != "":
        return str(source)
    return os.environ.get("CIFAR_LAB_DATA") or DEFAULT_SOURCE


def default_cache_dir() -> Path:
    """Env CIFAR_LAB_CACHE, else ~/.cache/cifar_lab: never inside a (possibly read-only) data folder."""
    return Path(os.environ.get("CIFAR_LAB_CACHE") or Path.home() / ".cache" / "cifar_lab").expanduser()


def synthetic_data(n_train: int = 2000, n_test: int = 500, seed: int = 0) -> CifarData:
    """Generated images: class = hue + stripe angle + blob position; learnable to >90% in about one epoch."""
    arrays = synthetic_arrays(n_train, n_test, seed)
    return _to_tensors(arrays, f"synthetic ({n_train} train / {n_test} test generated images, seed {seed})")


def load_data(
    source: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None, download: bool = False
) -> CifarData:
    """Load CIFAR-10 from `source` (see resolve_source): 'synthetic', torchvision batches or image folders."""
    given = resolve_source(source)
    if given.lower() == SYNTHETIC:
        return synthetic_data()
    path = Path(given).expanduser().resolve()
    kind = detect_kind(path, download=download)
    if kind is None:
        raise DataError(missing_message(given, path))
    cache_root = _checked_cache_dir(cache_dir, path)
    try:
        arrays = _read_through_cache(path, kind, cache_root, download=download)
    except OSError as e:  # e.g. a folder without read permission; files that fail to decode are DataErrors
        raise DataError(f"cannot read {path} ({e}); check its permissions. {SOURCE_OPTIONS}") from e
    return _to_tensors(arrays, f"{_DESCRIPTIONS[kind]} at {path}")


def _read_through_cache(path: Path, kind: str, cache_root: Path, *, download: bool) -> Arrays:
    read, fingerprint = _SOURCES[kind]
    arrays = _read_cache(_cache_stem(cache_root, path, kind, fingerprint(path)))
    if arrays is None:
        arrays = read(path, download=download)
        # Fingerprint again: a download creates the files the first fingerprint found missing.
        _write_cache(_cache_stem(cache_root, path, kind, fingerprint(path)), arrays)
    return arrays


def _folder_fingerprint(path: Path) -> str:
    return folder_fingerprint(path, folder_classes(path))


# kind -> (reader, fingerprint); the fingerprint changes whenever the files would decode differently.
_SOURCES: dict[str, tuple[Callable[..., Arrays], Callable[[Path], str]]] = {
    "folder": (read_folder, _folder_fingerprint),
    "torchvision": (read_torchvision, torchvision_fingerprint),
}
_DESCRIPTIONS = {"folder": "image folders", "torchvision": "torchvision CIFAR-10 batches"}


def _to_tensors(arrays: Arrays, source: str) -> CifarData:
    return CifarData(
        torch.from_numpy(np.ascontiguousarray(arrays.train_x)),
        torch.from_numpy(np.asarray(arrays.train_y, np.int64)),
        torch.from_numpy(np.ascontiguousarray(arrays.test_x)),
        torch.from_numpy(np.asarray(arrays.test_y, np.int64)),
        tuple(str(c) for c in arrays.classes),
        source,
    )


# --- cache: per source, images in one raw .npy (fast to read) and labels + classes in a small .npz ------------


def _checked_cache_dir(cache_dir: str | os.PathLike | None, source: Path) -> Path:
    root = Path(cache_dir).expanduser().resolve() if cache_dir is not None else default_cache_dir().resolve()
    if root == source or source in root.parents:
        raise DataError(
            f"cache folder {root} is inside the data source {source}; "
            "pass cache_dir (or set CIFAR_LAB_CACHE) to a folder outside it."
        )
    return root


def _cache_stem(root: Path, source: Path, kind: str, fingerprint: str) -> Path:
    """root/<kind>-<hash of the path>-<hash of the contents>; '.npy' and '.npz' are added to it."""
    where = hashlib.sha256(str(source).encode()).hexdigest()[:16]
    what = hashlib.sha256(f"{CACHE_VERSION}|{kind}|{fingerprint}".encode()).hexdigest()[:16]
    return root / f"{kind}-{where}-{what}"


def _read_cache(stem: Path) -> Arrays | None:
    """The cached arrays, or None when absent, incomplete or unreadable (the caller then rebuilds them)."""
    try:
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as z:
            train_y, test_y, classes = z["train_y"], z["test_y"], tuple(z["classes"].tolist())
        images = np.load(stem.with_suffix(".npy"), allow_pickle=False)  # (N_train + N_test, 3, 32, 32)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    n = len(train_y)
    if images.dtype != np.uint8 or images.shape[1:] != (3, 32, 32) or len(images) != n + len(test_y):
        return None
    return Arrays(images[:n], train_y, images[n:], test_y, classes)


def _write_cache(stem: Path, arrays: Arrays) -> None:
    """Images first, labels last (a stem without its .npz is ignored); drops older caches of the same source.

    A failed write only warns: the data itself was loaded.
    """
    images = np.concatenate([arrays.train_x, arrays.test_x])
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(stem.with_suffix(".npy"), lambda f: np.save(f, images))
        _atomic_write(
            stem.with_suffix(".npz"),
            lambda f: np.savez(
                f, train_y=arrays.train_y, test_y=arrays.test_y, classes=np.array(arrays.classes, dtype=str)
            ),
        )
        for old in stem.parent.glob(stem.name.rsplit("-", 1)[0] + "-*.np[yz]"):  # same source, other contents
            if old.with_suffix("") != stem:
                old.unlink(missing_ok=True)
    except OSError as e:
        log.warning(
            "could not write the data cache %s.npy (%s); the next load decodes again. Set CIFAR_LAB_CACHE "
            "to a writable folder.",
            stem,
            e,
        )


def _atomic_write(file: Path, write: Callable[[BinaryIO], None]) -> None:
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=file.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, file)
    except BaseException:
        os.unlink(tmp)
        raise
