"""The learning rate's one path: each group's peak is set when the optimizer is built, each step only scales it."""

from __future__ import annotations

import copy

import pytest
import torch

import cifar_lab.train as train_module
from cifar_lab.config import TrainConfig
from cifar_lab.events import EpochEnd
from cifar_lab.models import build_model
from cifar_lab.optim import apply_schedule, build_optimizer, load_optimizer_state
from cifar_lab.train import train

FASTNET_MUON = dict(arch="fastnet", opt="muon", lr=0.75, momentum=0.85, warmup=0.0, label_smoothing=0.2)


def same_weights(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def set_lr_as_before(config: TrainConfig):
    """The former path: every step rewrote each group's lr from config.lr, the factor and the group's lr_scale."""

    def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
        for g in optimizer.param_groups:
            g["lr"] = config.lr * factor * g["lr_scale"]
        return config.lr * factor

    return set_lr


def test_build_optimizer_sets_each_groups_peak_once_and_the_schedule_scales_it():
    config = TrainConfig(arch="fastnet", width=8, opt="muon", lr=0.5)
    optimizer = build_optimizer(build_model(config), config)
    peaks = [g["peak_lr"] for g in optimizer.param_groups]
    assert peaks == [0.5, 0.5 * config.bias_lr_scale, 0.5 * config.muon_lr_scale]
    assert [g["lr"] for g in optimizer.param_groups] == peaks  # before the first step too
    assert apply_schedule(optimizer, 0.25) == 0.5 * 0.25
    assert [g["lr"] for g in optimizer.param_groups] == [p * 0.25 for p in peaks]
    assert [g["peak_lr"] for g in optimizer.param_groups] == peaks  # the schedule never moves a peak


@pytest.mark.parametrize(
    "changes",
    [FASTNET_MUON, dict(arch="fastnet", opt="sgd", lr=0.3), dict(opt="adam", lr=2e-3, schedule="cosine")],
    ids=["muon", "fastnet-sgd", "adam"],
)
def test_training_is_bit_for_bit_what_the_former_lr_path_gave(tiny_config, tiny_data, monkeypatch, changes):
    config = tiny_config.replace(epochs=2, batch_size=128, **changes)
    new = train(config, tiny_data)
    monkeypatch.setattr(train_module, "apply_schedule", set_lr_as_before(config))
    old = train(config, tiny_data)
    assert [e.train_loss for e in new.history] == [e.train_loss for e in old.history]
    assert same_weights(new.model.state_dict(), old.model.state_dict())


def test_resuming_an_optimizer_state_saved_without_peaks_keeps_the_configs(tiny_config, tiny_data):
    # Checkpoints written before the peaks were kept in the groups hold only lr (of their last step) and lr_scale.
    config = tiny_config.replace(epochs=2, batch_size=128, **FASTNET_MUON)
    events: list = []
    full = train(config, tiny_data, on_event=events.append)
    first = next(e for e in events if isinstance(e, EpochEnd))
    resume = copy.deepcopy({**first.resume_state, "model": first.state_dict})
    for group in resume["optimizer"]["param_groups"]:
        del group["peak_lr"]
    resumed = train(config, tiny_data, resume=resume)
    assert same_weights(resumed.model.state_dict(), full.model.state_dict())


def test_load_optimizer_state_keeps_the_peaks_it_was_built_with():
    config = TrainConfig(arch="cnn", width=4, depth=1, lr=0.2)
    optimizer = build_optimizer(build_model(config), config)
    state = copy.deepcopy(optimizer.state_dict())
    state["param_groups"][0]["peak_lr"] = 99.0
    load_optimizer_state(optimizer, state)
    assert optimizer.param_groups[0]["peak_lr"] == 0.2
