"""Small immutable events the training loop emits; printing, plotting and saving are listeners."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .config import TrainConfig


@dataclass(frozen=True)
class Step:
    step: int  # 1-based, counted over the whole run
    total_steps: int
    epoch: int  # 1-based epoch this step belongs to
    loss: float
    lr: float
    images_per_s: float  # over the steps since the previous Step event
    elapsed_s: float  # training seconds so far


@dataclass(frozen=True)
class EpochEnd:
    epoch: int  # 1-based
    epochs: int
    train_loss: float
    train_acc: float  # 0..1, on the augmented training batches as seen
    test_loss: float
    test_acc: float  # 0..1, on eval_subset test images (all when 0)
    seconds: float  # training seconds of this epoch, evaluation excluded
    elapsed_s: float  # training plus evaluation seconds since the start
    # A CPU copy of the weights after this epoch, for checkpoint listeners; data, not the live model.
    state_dict: dict[str, torch.Tensor] = field(repr=False, compare=False, default_factory=dict)
    # Optimizer and RNG states, for resuming; CPU copies.
    resume_state: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    val_loss: float | None = None  # on the validation hold-out (eval_subset of it); None when the run holds none out
    val_acc: float | None = None  # 0..1, likewise
    eval_s: float = 0.0  # seconds this epoch's test (and hold-out) points took: what the time left counts on


@dataclass(frozen=True)
class Finished:
    test_accuracy: float  # 0..1 on the whole test set (with TTA when configured)
    epochs: int
    train_seconds: float  # from the start of training to the final test accuracy
    images_per_s: float  # training throughput over the whole run
    validation_accuracy: float | None = None  # 0..1 on the whole validation hold-out; None when the run holds none out


@dataclass(frozen=True)
class Stopped:
    epochs_done: int  # epochs completed before the stop
    step: int


@dataclass(frozen=True)
class Failed:
    message: str  # what went wrong and what to change
    step: int


@dataclass(frozen=True)
class EarlyScore:
    """Test accuracy on a fixed handful of test images during the first epoch, so that the accuracy chart does not
    stay empty for a whole epoch (a third of a two-minute run)."""

    step: int
    epoch: float  # where in the run, in epochs: 0.25 is a quarter of the way through the first
    test_acc: float  # 0..1 on `images` test images (the first train.EARLY_IMAGES of them), plain views
    seconds: float  # what scoring them took: left out of the training time, reported as the cost
    images: int  # how many were scored


@dataclass(frozen=True)
class Planned:
    """A time budget's choice, made before the first step: what trains, and how to train it again without one."""

    config: TrainConfig  # minutes 0, with the epochs (width, shrunk epochs) chosen
    summary: str  # what was measured and chosen, and the flags that reproduce the run exactly
    page_summary: str = ""  # the same for a web page: the Train form's settings in words, no flags


Event = Planned | Step | EarlyScore | EpochEnd | Finished | Stopped | Failed
Listener = Callable[[Event], None]


def fan_out(*listeners: Listener) -> Listener:
    """One listener that calls each of `listeners` in order."""

    def emit(event: Event) -> None:
        for listener in listeners:
            listener(event)

    return emit
