"""Optimizers by name and learning-rate schedules as pure functions of the step."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .config import TrainConfig


def _sgd(groups: list[dict], c: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov and c.momentum > 0,
                           weight_decay=c.weight_decay)


def _adam(groups: list[dict], c: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=c.lr, betas=(c.momentum, 0.999), weight_decay=c.weight_decay)


def _adamw(groups: list[dict], c: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=c.lr, betas=(c.momentum, 0.999), weight_decay=c.weight_decay)


def _muon(groups: list[dict], c: TrainConfig) -> torch.optim.Optimizer:
    from .fastnet import Muon  # lazily, as models.py imports FastNet

    return Muon(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, weight_decay=c.weight_decay)


OPTIMIZERS: dict[str, Callable[[list[dict], TrainConfig], torch.optim.Optimizer]] = {
    "sgd": _sgd, "adam": _adam, "adamw": _adamw, "muon": _muon,
}


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer; a model may supply its own parameter groups (`param_groups(config)`)."""
    if config.opt not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.opt!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if hasattr(model, "param_groups"):
        groups = model.param_groups(config)
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    for g in groups:
        g.setdefault("lr_scale", 1.0)  # the schedule multiplies each group's lr by this
    return OPTIMIZERS[config.opt](groups, config)


def lr_factor(schedule: str, step: int, total: int, warmup: float = 0.2) -> float:
    """The fraction of the peak learning rate to use at `step` (0-based) of `total` steps."""
    t = step / max(total, 1)
    if schedule == "constant":
        return 1.0
    if schedule == "step":  # x0.1 at half-way and again at three quarters
        return 1.0 if t < 0.5 else 0.1 if t < 0.75 else 0.01
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "onecycle":  # linear rise over `warmup`, then linear fall to zero: a triangle
        if warmup > 0 and t < warmup:
            return 0.1 + 0.9 * t / warmup  # start at a tenth: a zero first step would waste the step
        return max(0.0, (1 - t) / (1 - warmup))
    raise ValueError(f"unknown schedule {schedule!r}; choose one of: constant, step, cosine, onecycle")


def set_lr(optimizer: torch.optim.Optimizer, peak: float, factor: float) -> float:
    """Set every group's lr to peak * factor * its lr_scale; returns the base lr now in effect."""
    for g in optimizer.param_groups:
        g["lr"] = peak * factor * g.get("lr_scale", 1.0)
    return peak * factor
