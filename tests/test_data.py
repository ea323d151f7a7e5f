"""load_data over image folders, torchvision batches and synthetic images; the decoded-array cache."""

from __future__ import annotations

import functools
import operator
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from cifar_lab import datasources
from cifar_lab.data import CifarData, DataError, load_data, resolve_source, synthetic_data
from cifar_lab.preprocess import CLASSES

FOLDER_CLASSES = ("bird", "cat", "dog")  # deliberately not in creation order below
N_TRAIN, N_TEST = 3, 2  # images per class


def _colour(split: str, label: int, i: int) -> tuple[int, int, int]:
    """A distinct uniform colour per file, so a loaded image tells which file it came from."""
    return (label * 60 + i * 7 + (0 if split == "train" else 3), 200 - label * 40, 10 + i * 30)


def _write_folder(root: Path) -> Path:
    """train/test class folders of uniform-colour images: PNG, JPEG, an RGBA one and an odd-sized one."""
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        for label, name in reversed(list(enumerate(FOLDER_CLASSES))):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                rgb = _colour(split, label, i)
                if (label, i) == (1, 0):  # RGBA, alpha must be dropped
                    Image.new("RGBA", (32, 32), (*rgb, 90)).save(folder / f"{i:04d}.png")
                elif (label, i) == (2, 1):  # odd size, resized to 32x32
                    Image.new("RGB", (48, 40), rgb).save(folder / f"{i:04d}.png")
                elif i == 2:  # JPEG is lossy: checked with a tolerance
                    Image.new("RGB", (32, 32), rgb).save(folder / f"{i:04d}.jpg", quality=95)
                else:
                    Image.new("RGB", (32, 32), rgb).save(folder / f"{i:04d}.png")
            (folder / "notes.txt").write_text("not an image, ignored")
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return _write_folder(tmp_path / "images")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_folder_loads_shapes_labels_classes_and_pixels(folder: Path, cache: Path) -> None:
    data = load_data(folder, cache_dir=cache)
    assert data.classes == FOLDER_CLASSES
    assert data.train_x.shape == (9, 3, 32, 32) and data.test_x.shape == (6, 3, 32, 32)
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    assert data.train_x.is_contiguous() and data.test_x.is_contiguous()
    # Interleaved by class so that every prefix is balanced.
    assert data.train_y.tolist() == [0, 1, 2] * 3 and data.test_y.tolist() == [0, 1, 2] * 2
    for x, y, split in ((data.train_x, data.train_y, "train"), (data.test_x, data.test_y, "test")):
        for k, (img, label) in enumerate(zip(x, y.tolist())):
            expected = torch.tensor(_colour(split, label, k // 3), dtype=torch.int16).view(3, 1, 1)
            assert (img.to(torch.int16) - expected).abs().max() <= 3, (split, k)
    assert str(folder) in data.source


def test_corrupt_image_names_the_file(folder: Path, cache: Path) -> None:
    (folder / "train" / "cat" / "0009.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(DataError, match="0009.jpg"):
        load_data(folder, cache_dir=cache)


def test_mismatched_class_folders_are_an_error(folder: Path, cache: Path) -> None:
    (folder / "test" / "dog").rename(folder / "test" / "horse")
    with pytest.raises(DataError, match="differ"):
        load_data(folder, cache_dir=cache)


def test_missing_source_names_the_three_options(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(DataError) as err:
        load_data(tmp_path / "nowhere", cache_dir=cache)
    message = str(err.value)
    assert "nowhere" in message and "synthetic" in message
    assert "cifar-10-batches-py" in message and "train/<class>/" in message and "--download" in message


def test_unreadable_folder_is_a_data_error(folder: Path, cache: Path, monkeypatch) -> None:
    def denied(path: Path) -> list:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(datasources, "_images_in", denied)  # chmod does not stop root, who may run the tests
    with pytest.raises(DataError, match="permissions.*synthetic"):
        load_data(folder, cache_dir=cache)


# --- torchvision's pickled batches ------------------------------------------------------------------------------


def _write_batches(root: Path, rng: np.random.Generator) -> dict[str, dict]:
    """CIFAR-10's python format: pickled dicts, data (N, 3072) uint8 CHW-flattened, labels list."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name, n in [(f"data_batch_{i}", 2) for i in range(1, 6)] + [("test_batch", 3)]:
        # The real files are Python 2 pickles whose str keys torchvision reads with encoding="latin1" as str.
        batches[name] = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, n).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(batches[name]))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CLASSES)}))
    return batches


def test_torchvision_batches_load_exact_pixels(tmp_path: Path, cache: Path, monkeypatch) -> None:
    batches = _write_batches(tmp_path / "tv", np.random.default_rng(0))
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)  # our files, other md5
    for source in (tmp_path / "tv", tmp_path / "tv" / "cifar-10-batches-py"):
        data = load_data(source, cache_dir=cache)
        train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
        expected_x = np.concatenate([b["data"] for b in train]).reshape(-1, 3, 32, 32)
        assert data.classes == CLASSES
        assert torch.equal(data.train_x, torch.from_numpy(expected_x))
        assert data.train_y.tolist() == functools.reduce(operator.iadd, (b["labels"] for b in train), [])
        assert torch.equal(data.test_x, torch.from_numpy(batches["test_batch"]["data"].reshape(-1, 3, 32, 32)))
        assert data.test_y.tolist() == batches["test_batch"]["labels"] and data.test_y.dtype == torch.int64


def test_torchvision_batches_with_wrong_checksums_are_a_data_error(tmp_path: Path, cache: Path) -> None:
    _write_batches(tmp_path / "tv", np.random.default_rng(0))
    with pytest.raises(DataError, match="--download"):
        load_data(tmp_path / "tv", cache_dir=cache)


# --- synthetic ---------------------------------------------------------------------------------------------------


def test_synthetic_shapes_determinism_and_classes() -> None:
    a, b, c = synthetic_data(200, 50, seed=1), synthetic_data(200, 50, seed=1), synthetic_data(200, 50, seed=2)
    assert a.train_x.shape == (200, 3, 32, 32) and a.test_x.shape == (50, 3, 32, 32)
    assert a.train_x.dtype == torch.uint8 and a.train_y.dtype == torch.int64 and a.classes == CLASSES
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert set(a.train_y.tolist()) == set(range(10)) == set(a.test_y.tolist())
    assert load_data("synthetic").train_x.shape == (2000, 3, 32, 32)


def test_synthetic_classes_are_separable() -> None:
    """Even a nearest-mean-colour classifier gets most test images right, so a CNN learns them quickly."""
    data = synthetic_data(500, 200, seed=0)
    feats = lambda x: x.float().mean(dim=(2, 3))  # noqa: E731  (N, 3) mean colour
    centroids = torch.stack([feats(data.train_x[data.train_y == k]).mean(0) for k in range(10)])
    predicted = torch.cdist(feats(data.test_x), centroids).argmin(1)
    assert (predicted == data.test_y).float().mean() > 0.9


# --- cache ---------------------------------------------------------------------------------------------------------


def _no_decoding(path: str) -> np.ndarray:
    raise AssertionError(f"decoded {path} although the cache should have been used")


def test_second_load_comes_from_cache(folder: Path, cache: Path, monkeypatch) -> None:
    first = load_data(folder, cache_dir=cache)
    monkeypatch.setattr(datasources, "decode_image", _no_decoding)
    second = load_data(folder, cache_dir=cache)
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert second.classes == first.classes


def test_a_fresh_process_loads_the_cache_without_importing_torchvision(folder: Path, cache: Path) -> None:
    load_data(folder, cache_dir=cache)  # decodes, which needs torchvision
    code = (
        "import sys; from cifar_lab.data import load_data; "
        f"d = load_data({str(folder)!r}, cache_dir={str(cache)!r}); "
        "print(len(d.train_x), 'torchvision' in sys.modules)"
    )
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(N_TRAIN * len(FOLDER_CLASSES)), "False"]  # about 2 s of import saved


def test_changed_folder_invalidates_the_cache(folder: Path, cache: Path) -> None:
    load_data(folder, cache_dir=cache)
    Image.new("RGB", (32, 32), (1, 2, 3)).save(folder / "train" / "dog" / "0100.png")
    data = load_data(folder, cache_dir=cache)
    new_image = (data.train_x == torch.tensor([1, 2, 3]).view(3, 1, 1)).all(dim=(1, 2, 3))  # (N,) bool
    assert data.train_x.shape[0] == 10 and new_image.any()
    assert len(list(cache.glob("*.npy"))) == len(list(cache.glob("*.npz"))) == 1  # the stale entry was dropped


@pytest.mark.parametrize("part", [".npy", ".npz"])  # the images, the labels
def test_corrupt_cache_is_rebuilt(folder: Path, cache: Path, part: str) -> None:
    first = load_data(folder, cache_dir=cache)
    (cache_file,) = cache.glob("*" + part)
    size = cache_file.stat().st_size
    cache_file.write_bytes(cache_file.read_bytes()[: size // 2])  # truncated, as by a full disk
    again = load_data(folder, cache_dir=cache)
    assert torch.equal(again.train_x, first.train_x) and torch.equal(again.test_y, first.test_y)
    assert cache_file.stat().st_size == size  # rewritten whole


def test_cache_is_never_written_inside_the_source(folder: Path, tmp_path: Path, monkeypatch) -> None:
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    monkeypatch.setenv("CIFAR_LAB_CACHE", str(tmp_path / "env-cache"))
    load_data(folder)
    assert len(list((tmp_path / "env-cache").glob("*.npz"))) == 1
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    with pytest.raises(DataError, match="outside"):
        load_data(folder, cache_dir=folder / "train" / ".cache")


def test_env_var_chooses_the_source(folder: Path, cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("CIFAR_LAB_DATA", str(folder))
    assert resolve_source(None) == str(folder) and resolve_source("synthetic") == "synthetic"
    assert load_data(cache_dir=cache).classes == FOLDER_CLASSES
    monkeypatch.delenv("CIFAR_LAB_DATA")
    assert resolve_source(None) == "./data"


def test_subset_takes_balanced_prefixes(folder: Path, cache: Path) -> None:
    data = load_data(folder, cache_dir=cache).subset(6, 3)
    assert isinstance(data, CifarData) and data.train_x.shape[0] == 6 and data.test_y.tolist() == [0, 1, 2]
    assert sorted(data.train_y.tolist()) == [0, 0, 1, 1, 2, 2]


REAL_JPEG = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"


@pytest.mark.slow
@pytest.mark.skipif(not REAL_JPEG.is_dir(), reason=f"needs the JPEG copy of CIFAR-10 at {REAL_JPEG}")
def test_real_jpeg_copy_loads_and_caches(cache: Path) -> None:
    first = load_data(REAL_JPEG, cache_dir=cache)  # decodes 60,000 files: seconds
    assert first.train_x.shape == (50000, 3, 32, 32) and first.test_x.shape == (10000, 3, 32, 32)
    assert first.classes == CLASSES
    assert torch.bincount(first.test_y[:1000]).tolist() == [100] * 10  # balanced prefixes
    start = time.perf_counter()
    second = load_data(REAL_JPEG, cache_dir=cache)
    assert time.perf_counter() - start < 2.0  # target 1 s; slack for a busy machine
    assert torch.equal(first.train_x, second.train_x)
