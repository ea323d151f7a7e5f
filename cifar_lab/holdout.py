"""The validation hold-out: the last N training images, never trained on, scored beside the test set."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import TrainConfig

# At most this share of the training set may be held out: beyond it a run trains on fewer images than it is
# scored on, and its accuracy says more about the missing data than about its settings.
MAX_FRACTION = 0.5
MIN_TRAIN_IMAGES = 2  # one step needs two images (a batch of one breaks BatchNorm)
CLASS_IMAGES = 5000  # the class's hold-out: CIFAR-10's usual 45,000 / 5,000 split of its training set
CLASS_FRACTION = 10  # on a smaller training set (synthetic data, a few folders) a tenth of it


@dataclass(frozen=True)
class Split:
    """The training set divided into what a run trains on and its hold-out (empty when validation is 0)."""

    train_x: torch.Tensor  # (N - V, 3, H, W) uint8
    train_y: torch.Tensor  # (N - V,) int64
    val_x: torch.Tensor  # (V, 3, H, W) uint8
    val_y: torch.Tensor  # (V,) int64


def most_held_out(n_train: int) -> int:
    """The largest hold-out a training set of `n_train` images allows."""
    return max(0, min(int(n_train * MAX_FRACTION), n_train - MIN_TRAIN_IMAGES))


def holdout_problem(validation: int, n_train: int) -> str:
    """Why `validation` images cannot be held out of `n_train`, with the fix; "" when they can."""
    limit = most_held_out(n_train)
    if validation <= limit:
        return ""
    return (
        f"validation={validation} holds out too many of the {n_train} training images: at most {limit} may be held "
        f"out (half the set), so that the run still trains on most of them; set validation to {limit} or less "
        f"(CIFAR-10's usual hold-out is {CLASS_IMAGES}), or 0 to train on every image"
    )


def check_holdout(validation: int, n_train: int) -> None:
    """Raise ValueError with the fix unless `validation` images may be held out of `n_train`."""
    problem = holdout_problem(validation, n_train)
    if problem:
        raise ValueError(problem)


def split(x: torch.Tensor, y: torch.Tensor, validation: int) -> Split:
    """Hold out the last `validation` images (views, no copy).

    The last N, not a random draw: the same images for every run and every seed, with no generator to keep in step.
    They are close to class-balanced: image folders and synthetic data cycle through the classes (data.py), and
    CIFAR-10's own order ends with a batch file drawn at random.
    """
    check_holdout(validation, len(x))
    kept = len(x) - validation
    return Split(x[:kept], y[:kept], x[kept:], y[kept:])


def class_holdout(n_train: int) -> int:
    """The hold-out the class's validation mode gives every run: CLASS_IMAGES, or a tenth of a smaller set."""
    return min(CLASS_IMAGES, n_train // CLASS_FRACTION, most_held_out(n_train))


def for_class(config: TrainConfig, n_train: int) -> TrainConfig:
    """`config` with the class's hold-out, so that every run of the class is scored on the same images."""
    return config.replace(validation=class_holdout(n_train))
