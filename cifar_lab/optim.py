"""Optimizers and learning-rate schedules by name; the one path of the learning rate into the optimizer."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:  # the config takes its opt and schedule choices from here, so it imports this module
    from .config import TrainConfig

# The optimizers take `lr=c.lr` as their base lr (what the schedule's factor is reported against); every group
# comes with its own peak lr from build_optimizer.


def _sgd(groups: list[dict], c: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum, Nesterov's look-ahead with nesterov"""
    return torch.optim.SGD(
        groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov and c.momentum > 0, weight_decay=c.weight_decay
    )


def _adam(groups: list[dict], c: TrainConfig) -> torch.optim.Optimizer:
    """Adam, momentum as its beta1"""
    return torch.optim.Adam(groups, lr=c.lr, betas=(c.momentum, 0.999), weight_decay=c.weight_decay)


def _adamw(groups: list[dict], c: TrainConfig) -> torch.optim.Optimizer:
    """Adam with decoupled weight decay"""
    return torch.optim.AdamW(groups, lr=c.lr, betas=(c.momentum, 0.999), weight_decay=c.weight_decay)


def _muon(groups: list[dict], c: TrainConfig) -> torch.optim.Optimizer:
    """orthogonalised steps for the conv filters, SGD for the rest; fastnet only"""
    from .fastnet import Muon  # lazily, as models.py imports FastNet

    return Muon(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, weight_decay=c.weight_decay)


# name -> builder from parameter groups and the config; the docstrings are the descriptions --help, the Train form
# and docs/configuration.md show, and the names are the config's opt choices.
OPTIMIZERS: dict[str, Callable[[list[dict], TrainConfig], torch.optim.Optimizer]] = {
    "sgd": _sgd,
    "adam": _adam,
    "adamw": _adamw,
    "muon": _muon,
}


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer; a model may supply its own parameter groups (`param_groups(config)`), each with an
    `lr_scale`. Each group's peak lr is decided here, once: config.lr * lr_scale (see apply_schedule)."""
    if config.opt not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.opt!r}; choose one of: {', '.join(OPTIMIZERS)}")
    own_groups = getattr(model, "param_groups", None)
    if own_groups is not None:
        groups = own_groups(config)
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    for g in groups:
        g.setdefault("lr_scale", 1.0)
        g["lr"] = g["peak_lr"] = config.lr * g["lr_scale"]
    return OPTIMIZERS[config.opt](groups, config)


def apply_schedule(optimizer: torch.optim.Optimizer, factor: float) -> float:
    """Set every group's lr to its peak times the schedule's `factor`; returns the base lr now in effect
    (config.lr * factor: the lr of a group of scale 1)."""
    for g in optimizer.param_groups:
        g["lr"] = g["peak_lr"] * factor
    return optimizer.defaults["lr"] * factor


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a saved optimizer state (resume), keeping the peak lrs this optimizer was built with: the same for the
    same config, and missing from states saved before they were kept."""
    peaks = [g["peak_lr"] for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for g, peak in zip(optimizer.param_groups, peaks, strict=True):
        g["peak_lr"] = peak


# --- schedules: the fraction of the peak lr as a pure function of t, the fraction of training done (0..1) -------


def _constant(t: float, warmup: float) -> float:
    """the peak throughout"""
    return 1.0


def _step(t: float, warmup: float) -> float:
    """x0.1 at half-way and again at three quarters"""
    return 1.0 if t < 0.5 else 0.1 if t < 0.75 else 0.01


def _cosine(t: float, warmup: float) -> float:
    """half a cosine from the peak down to zero"""
    return 0.5 * (1 + math.cos(math.pi * t))


def _onecycle(t: float, warmup: float) -> float:
    """a linear rise over warmup, then a linear fall to zero"""
    if warmup > 0 and t < warmup:
        return 0.1 + 0.9 * t / warmup  # start at a tenth: a zero first step would waste the step
    return max(0.0, (1 - t) / (1 - warmup))


# name -> factor(t, warmup); the docstrings are the descriptions, the names the config's schedule choices.
SCHEDULES: dict[str, Callable[[float, float], float]] = {
    "constant": _constant,
    "step": _step,
    "cosine": _cosine,
    "onecycle": _onecycle,
}


def lr_factor(schedule: str, step: int, total: int, warmup: float = 0.2) -> float:
    """The fraction of the peak learning rate to use at `step` (0-based) of `total` steps."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    return SCHEDULES[schedule](step / max(total, 1), warmup)
