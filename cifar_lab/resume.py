"""Continuing a stopped, interrupted or failed run from the checkpoint of its last finished epoch."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_checkpoint
from .config import TrainConfig
from .optim import build_optimizer
from .runs import RESUMABLE, RunRecord, RunStoreError


def resume_problem(record: RunRecord) -> str:
    """Why the run cannot be resumed, checked without reading its checkpoint; "" when it may be."""
    if record.damaged:
        return (
            f"run {record.id} cannot be resumed: its record is damaged ({record.damaged}); "
            "`python -m cifar_lab runs --check --repair` moves it out of the history"
        )
    if record.out_of_memory:
        return (
            f"run {record.id} {record.message}: resuming it as is would run out again, since a resume keeps "
            "its settings"
        )
    if record.status not in RESUMABLE:
        return f"run {record.id} is {record.status}; only stopped, interrupted or failed runs can be resumed"
    if not record.checkpoint or not Path(record.checkpoint).is_file():
        return (
            f"run {record.id} has no checkpoint ({record.checkpoint}): it ended before its first epoch "
            "finished; start it again instead"
        )
    return ""


def load_resume(record: RunRecord) -> dict[str, Any]:
    """train()'s `resume` argument from the run's last epoch checkpoint: weights plus optimizer and RNG state,
    checked against the run's config so that a damaged or foreign file is refused with a message, not a traceback."""
    problem = resume_problem(record)
    if problem:
        raise RunStoreError(problem)
    ckpt = load_checkpoint(str(record.checkpoint))
    if not ckpt.resume:
        raise RunStoreError(
            f"{record.checkpoint} holds no optimizer/RNG state to resume from; start run {record.id} again instead"
        )
    if ckpt.config != record.train_config:
        raise RunStoreError(
            f"{record.checkpoint} was written by another config than run {record.id}'s "
            "(overwritten by a run of the same name?); start the run again instead"
        )
    damage = state_problem(ckpt.resume, ckpt.model, ckpt.config)
    if damage:
        raise RunStoreError(
            f"{record.checkpoint} cannot be resumed: its saved training state is damaged ({damage}); "
            f"start run {record.id} again instead"
        )
    return {**ckpt.resume, "model": ckpt.model.state_dict()}


def state_problem(state: dict[str, Any], model: nn.Module, config: TrainConfig) -> str:
    """What is wrong with a checkpoint's resume state for this model and config; "" when it fits."""
    missing = sorted({"epoch", "step", "optimizer", "generator", "torch_rng"} - set(state))
    if missing:
        return f"missing {', '.join(missing)}"
    epoch, step = state["epoch"], state["step"]
    if not isinstance(epoch, int) or not 1 <= epoch <= config.epochs:
        return f"epoch {epoch!r} is not between 1 and the run's {config.epochs} epochs"
    if not isinstance(step, int) or step < epoch:
        return f"step {step!r} is not a count of at least {epoch} steps"
    for key in ("generator", "torch_rng"):
        if not isinstance(state[key], torch.Tensor) or state[key].dtype != torch.uint8:
            return f"{key} is not a random-number generator state"
    if state["torch_rng"].shape != torch.get_rng_state().shape:
        return "torch_rng has the wrong size"
    return _optimizer_problem(state["optimizer"], model, config)


def _optimizer_problem(saved: Any, model: nn.Module, config: TrainConfig) -> str:
    """The saved optimizer state must load into this model's optimizer, with buffers shaped like its parameters."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict):
        return "the optimizer state is not a state_dict"
    optimizer = build_optimizer(model, config)
    try:
        optimizer.load_state_dict(copy.deepcopy(saved))
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        return f"the optimizer state does not fit this model: {' '.join(str(err).split())[:200]}"
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for param, buffers in optimizer.state.items():
        for name, value in buffers.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                return f"optimizer buffer {name} has shape {tuple(value.shape)}, its weight {tuple(param.shape)}"
    if len(optimizer.state) > len(params):
        return "the optimizer state has more entries than the model has weights"
    return ""
