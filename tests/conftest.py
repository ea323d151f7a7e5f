"""Shared fixtures: tiny generated CIFAR-like data and a small, fast training config (CPU, fp32)."""

from __future__ import annotations

import os

import pytest
import torch

from cifar_lab.config import TrainConfig
from cifar_lab.data import CifarData, synthetic_data

# Ray (the cluster tests) only on this machine's loopback address: a node otherwise advertises the machine's network
# address; and no usage report sent anywhere. Read when Ray is first imported, so set before any test imports it.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# A run that trains in about a second on the CPU: the run store, job and page tests train it for real.
TINY_RUN = TrainConfig(
    arch="cnn",
    width=8,
    depth=1,
    batch_size=32,
    epochs=2,
    eval_subset=0,
    precision="fp32",
    device="cpu",
    threads=1,
    schedule="constant",
    lr=0.05,
)


@pytest.fixture(scope="session")
def tiny_data() -> CifarData:
    """512 train / 128 test generated 32x32 images, 10 classes; read-only for the tests that share it."""
    return synthetic_data(n_train=512, n_test=128, seed=0)


@pytest.fixture(scope="session")
def tiny_config() -> TrainConfig:
    """A few-thousand-parameter VGG-style net; one epoch on `tiny_data` takes well under a second of compute."""
    return TrainConfig(
        arch="cnn",
        width=8,
        depth=2,
        batch_size=64,
        epochs=1,
        precision="fp32",
        device="cpu",
        flip=False,
        crop_pad=0,
        eval_subset=0,
        seed=0,
        threads=1,
    )  # one thread: tiny nets gain nothing from more, and it stays fast on a busy CPU


@pytest.fixture()
def images_u8() -> torch.Tensor:
    """(4, 3, 32, 32) uint8 random pixels, seeded."""
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (4, 3, 32, 32), generator=g, dtype=torch.uint8)


def start_run(config, data, folder, store=None, name=None):
    """A fresh run through the run's life as the CLI and the dashboard start one: a claimed file, a record."""
    from cifar_lab.runner import TrainingRun, new_run

    return TrainingRun(new_run(config, folder=folder, store=store, name=name), data, store=store)


def continue_run(store, run_id, data):
    """The run `run_id` resumed from its last saved epoch, as `train --resume` does it."""
    from cifar_lab.runner import TrainingRun, resume_run

    return TrainingRun(resume_run(store, run_id), data, store=store)
