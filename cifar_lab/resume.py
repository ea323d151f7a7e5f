"""Continuing a stopped, interrupted or failed run from the checkpoint of its last finished epoch."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint
from .runs import RESUMABLE, RunRecord, RunStoreError


def resume_problem(record: RunRecord) -> str:
    """Why the run cannot be resumed, checked without reading its checkpoint; "" when it may be."""
    if record.status not in RESUMABLE:
        return f"run {record.id} is {record.status}; only stopped, interrupted or failed runs can be resumed"
    if not record.checkpoint or not Path(record.checkpoint).is_file():
        return (f"run {record.id} has no checkpoint ({record.checkpoint}): it ended before its first epoch "
                "finished; start it again instead")
    return ""


def load_resume(record: RunRecord) -> dict[str, Any]:
    """train()'s `resume` argument from the run's last epoch checkpoint: weights plus optimizer and RNG state."""
    problem = resume_problem(record)
    if problem:
        raise RunStoreError(problem)
    ckpt = load_checkpoint(record.checkpoint)
    if not ckpt.resume:
        raise RunStoreError(f"{record.checkpoint} holds no optimizer/RNG state to resume from; start run "
                            f"{record.id} again instead")
    if ckpt.config != record.train_config:
        raise RunStoreError(f"{record.checkpoint} was written by another config than run {record.id}'s "
                            "(overwritten by a run of the same name?); start the run again instead")
    return {**ckpt.resume, "model": ckpt.model.state_dict()}
