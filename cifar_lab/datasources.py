"""Readers behind load_data: torchvision's CIFAR-10 batches, train/test image folders, generated images."""

from __future__ import annotations

import colorsys
import hashlib
import os
import pickle
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from cifar_lab.preprocess import CLASSES

BATCH_DIR = "cifar-10-batches-py"  # the folder torchvision's CIFAR10 reads and downloads into
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SIDE = 32  # pixels; every image is delivered as (3, 32, 32)


class DataError(ValueError):
    """A data source that cannot be used; the message says what to do instead."""


class Arrays(NamedTuple):
    """Decoded data as numpy: x (N, 3, 32, 32) uint8, y (N,) int64."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: tuple[str, ...]


SOURCE_OPTIONS = (
    f"Use one of: (1) --data DIR with torchvision's {BATCH_DIR} (add --download to fetch it, needs internet), "
    "(2) --data DIR with train/<class>/ and test/<class>/ image folders (e.g. ../shared/data/cifar10-jpeg), "
    "(3) --data synthetic for generated images."
)


def missing_message(given: str, path: Path) -> str:
    return f"no CIFAR-10 found at {given!r} ({path}). {SOURCE_OPTIONS}"


def detect_kind(path: Path, *, download: bool) -> str | None:
    """'folder', 'torchvision' or None when the path holds neither."""
    if (path / "train").is_dir() and (path / "test").is_dir():
        return "folder"
    if (path.name == BATCH_DIR and path.is_dir()) or (path / BATCH_DIR).is_dir() or download:
        return "torchvision"
    return None


def _torchvision():
    """torchvision, imported on first use: importing it takes about 2 s (it pulls in torch._dynamo), as long as
    everything else a fresh process needs to load the decoded cache, which needs none of it."""
    import torchvision
    import torchvision.io

    return torchvision


# --- torchvision's CIFAR-10 batches ---------------------------------------------------------------------------


def _torchvision_root(path: Path) -> Path:
    return path.parent if path.name == BATCH_DIR else path


def torchvision_fingerprint(path: Path) -> str:
    """Size and mtime of each batch file: changes when the files are replaced; 'missing' before a download."""
    folder = _torchvision_root(path) / BATCH_DIR
    cifar10 = _torchvision().datasets.CIFAR10
    names = [name for name, _ in cifar10.train_list + cifar10.test_list]
    parts = []
    for name in [*names, "batches.meta"]:
        try:
            st = os.stat(folder / name)
        except OSError:
            return "missing"
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def read_torchvision(path: Path, *, download: bool = False) -> Arrays:
    """Read (or download, then read) the pickled batches through torchvision.datasets.CIFAR10."""
    root = str(_torchvision_root(path))
    cifar10 = _torchvision().datasets.CIFAR10
    try:
        train = cifar10(root, train=True, download=download)
        test = cifar10(root, train=False, download=False)
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as e:
        hint = "check the internet connection" if download else "add --download to fetch them (needs internet)"
        raise DataError(
            f"CIFAR-10 batches in {Path(root) / BATCH_DIR} are missing or corrupt ({e}); {hint}, "
            "or use --data DIR with train/<class>/ and test/<class>/ image folders, or --data synthetic."
        ) from e
    # .data is (N, 32, 32, 3) HWC; the project keeps CHW.
    return Arrays(
        np.ascontiguousarray(train.data.transpose(0, 3, 1, 2)),
        np.asarray(train.targets, dtype=np.int64),
        np.ascontiguousarray(test.data.transpose(0, 3, 1, 2)),
        np.asarray(test.targets, dtype=np.int64),
        tuple(train.classes),
    )


# --- train/<class>/ and test/<class>/ image folders --------------------------------------------------------------


def folder_classes(path: Path) -> tuple[str, ...]:
    """Sorted class folder names of train/, which test/ must repeat."""

    def names(split: str) -> list[str]:
        return sorted(e.name for e in os.scandir(path / split) if e.is_dir() and not e.name.startswith("."))

    classes = names("train")
    if not classes:
        raise DataError(f"{path / 'train'} has no class folders; expected train/<class>/*.png|jpg and test/<class>/...")
    if names("test") != classes:
        raise DataError(
            f"class folders differ between {path / 'train'} ({', '.join(classes)}) and "
            f"{path / 'test'} ({', '.join(names('test'))}); make them the same."
        )
    return tuple(classes)


def _images_in(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        found = [e for e in entries if e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file()]
    if not found:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add some or remove the folder.")
    return sorted(found, key=lambda e: e.name)


def folder_fingerprint(path: Path, classes: tuple[str, ...]) -> str:
    """Per class folder: its mtime, file count and a hash of the file names.

    Listing 60,000 names takes ~0.05 s; stat-ing every file would add ~0.2 s to each cached load, so a file
    overwritten in place under the same name goes unnoticed (touch its folder, or delete the cache, to reload).
    """
    parts = []
    for split in ("train", "test"):
        for name in classes:
            folder = path / split / name
            names = "/".join(e.name for e in _images_in(folder))  # sorted
            digest = hashlib.sha256(names.encode()).hexdigest()[:16]
            parts.append(f"{split}/{name}:{folder.stat().st_mtime_ns}:{names.count('/') + 1}:{digest}")
    return "|".join(parts)


def _interleaved(per_class: list[list[str]]) -> tuple[list[str], np.ndarray]:
    """Files ordered class 0, 1, ..., 9, 0, 1, ... so that every prefix is class-balanced."""
    labels = np.concatenate([np.full(len(files), k, dtype=np.int64) for k, files in enumerate(per_class)])
    ranks = np.concatenate([np.arange(len(files)) for files in per_class])
    order = np.lexsort((labels, ranks))  # primary key: rank within class, then class
    flat = [f for files in per_class for f in files]
    return [flat[i] for i in order], labels[order]


def _decode_fast(path: str) -> np.ndarray | None:
    """torchvision's libjpeg/libpng (~2x faster than PIL on 32x32 files); None for other sizes, BMP or errors."""
    io = _torchvision().io
    decode = getattr(io, "decode_image", None)  # deprecated in torchvision 0.29, may disappear
    if decode is None:
        return None
    try:
        img = decode(io.read_file(path), mode=io.ImageReadMode.RGB)  # (3, H, W) uint8
    except (RuntimeError, ValueError):
        return None  # BMP, or undecodable: PIL then either reads it or names the file in the error
    ok = img.shape[1:] == (SIDE, SIDE) and img.dtype == torch.uint8  # 16-bit PNGs decode to uint16
    return img.numpy() if ok else None


def decode_image(path: str) -> np.ndarray:
    """Any image file -> (3, 32, 32) uint8 RGB; alpha dropped, other sizes resized (bilinear, antialiased)."""
    fast = _decode_fast(path)
    if fast is not None:
        return fast
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            if rgb.size != (SIDE, SIDE):
                rgb = rgb.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
            return np.asarray(rgb).transpose(2, 0, 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot decode image {path}: {e}. Delete or replace this file, then load again.") from e


def _read_split(path: Path, split: str, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    per_class = [[e.path for e in _images_in(path / split / name)] for name in classes]
    files, labels = _interleaved(per_class)
    x = np.empty((len(files), 3, SIDE, SIDE), dtype=np.uint8)
    with warnings.catch_warnings():  # torchvision warns of its decoders' deprecation on every call
        warnings.filterwarnings("ignore", message="The image decoding", category=DeprecationWarning)
        for i, file in enumerate(files):
            x[i] = decode_image(file)
    return x, labels


def read_folder(path: Path, *, download: bool = False) -> Arrays:
    """Decode every image under train/<class>/ and test/<class>/ (labels = index in sorted class names)."""
    classes = folder_classes(path)
    train_x, train_y = _read_split(path, "train", classes)
    test_x, test_y = _read_split(path, "test", classes)
    return Arrays(train_x, train_y, test_x, test_y, classes)


# --- generated images ------------------------------------------------------------------------------------------

# One hue per class, 36 degrees apart: colour alone separates the classes; stripes and a blob add shape cues.
_PALETTE = np.array([colorsys.hsv_to_rgb(k / 10, 0.8, 0.9) for k in range(10)], dtype=np.float32)  # (10, 3)
_BLOB_CENTRES = np.array([((k % 5 + 0.5) / 5, (k // 5 + 0.5) / 2) for k in range(10)], dtype=np.float32)  # (x, y)


def _synthetic_split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(n, dtype=np.int64) % 10  # cycling: every prefix is class-balanced
    yy, xx = (np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) + 0.5) / SIDE  # (32, 32) each, in (0, 1)
    angle = (labels * np.pi / 10 + rng.normal(0, 0.05, n)).astype(np.float32)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None]
    stripes = np.sin(2 * np.pi * 3 * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)  # (n, 32, 32), 3 cycles
    centre = _BLOB_CENTRES[labels] + rng.normal(0, 0.04, (n, 2)).astype(np.float32)
    blob = np.exp(-((xx - centre[:, 0, None, None]) ** 2 + (yy - centre[:, 1, None, None]) ** 2) / 0.02)
    colour = _PALETTE[labels] + rng.normal(0, 0.05, (n, 3)).astype(np.float32)  # (n, 3) in ~0..1
    img = 0.6 * colour[:, :, None, None] + 0.15 * stripes[:, None] + 0.3 * blob[:, None]
    img += rng.standard_normal((n, 3, SIDE, SIDE), dtype=np.float32) * 0.06
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), labels


def synthetic_arrays(n_train: int, n_test: int, seed: int) -> Arrays:
    """Generated 32x32 images a small CNN learns in one epoch; the same seed gives the same images."""
    if n_train < 1 or n_test < 1:
        raise DataError(f"synthetic data needs n_train >= 1 and n_test >= 1, got {n_train} and {n_test}")
    rng = np.random.default_rng(seed)
    train_x, train_y = _synthetic_split(n_train, rng)
    test_x, test_y = _synthetic_split(n_test, rng)
    return Arrays(train_x, train_y, test_x, test_y, CLASSES)
