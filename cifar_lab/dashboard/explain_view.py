"""The Explain panel's content for one 32x32 picture: prediction, Grad-CAM overlays, filters, feature maps, layer table.

Everything here starts from the (32, 32, 3) uint8 picture the model sees (`inference.model_view(img)` for an
upload, `plots.to_hwc(x)` for a data set image): every explanation depends on those pixels only, so they are
also the cache key the dashboard uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig
from ..explain import BORDER, feature_grid, feature_maps, filter_grid, first_layer_filters, grad_cam, overlay
from ..models import build_model
from ..preprocess import normalize as normalize_pixels
from ..summary import ModelSummary, eval_mode, model_summary

MIN_FILTER_TILE = 48  # screen pixels per filter tile at least: fastnet's 2x2 whitening filters stay visible
FILTER_COLS = 8  # filters per grid row
FILTER_GAP = 3  # white pixels around each filter tile
HEATMAP_SIDE = 192  # pixels per side of a Grad-CAM overlay: 6x the 32x32 input


@dataclass(frozen=True)
class Stage:
    """One conv block's feature maps, ready to show."""

    name: str  # module path, e.g. "groups.1"
    shape: tuple[int, ...]  # (C, H, W) of the block's output for one image
    grid: np.ndarray  # uint8 RGB grid of the most active channels (explain.feature_grid)


@dataclass(frozen=True)
class Explanation:
    view: np.ndarray  # (32, 32, 3) uint8: the picture explained
    probabilities: np.ndarray  # (num_classes,) float32 softmax
    predicted: int  # class index with the highest probability
    heatmap: np.ndarray  # (HEATMAP_SIDE, HEATMAP_SIDE, 3) uint8 Grad-CAM overlay for the predicted class
    filters: np.ndarray  # uint8 RGB grid of the first conv layer's filters
    filter_shape: tuple[int, ...]  # (N, k, k): filters in that layer and their size
    stages: tuple[Stage, ...]  # feature maps of each conv block, in forward order


def stage_words(stage: Stage) -> str:
    """A conv block's output in words: "96 feature maps of 16x16 pixels"."""
    channels, *side = stage.shape
    return f"{channels} feature maps of {'x'.join(map(str, side))} pixels"


def to_input(view: np.ndarray, normalize: str = "cifar") -> torch.Tensor:
    """(32, 32, 3) uint8 picture -> the (1, 3, 32, 32) float tensor the model takes (the test transform)."""
    if view.dtype != np.uint8 or view.ndim != 3 or view.shape[2] != 3:
        raise ValueError(
            f"expected an (H, W, 3) uint8 picture such as inference.model_view(img); got {view.dtype} {view.shape}"
        )
    pixels = torch.tensor(view).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W) uint8; a copy: `view` may be read-only
    return normalize_pixels(pixels, normalize)


def probabilities(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Softmax (num_classes,) float32 for one normalised image; the model's modes are left as found."""
    param = next(model.parameters(), None)
    device, dtype = (None, None) if param is None else (param.device, param.dtype)  # None: `.to` leaves it as is
    with eval_mode(model), torch.inference_mode():
        logits = model(x.to(device=device, dtype=dtype)).float()
    return torch.softmax(logits[0], dim=0).cpu().numpy()


def explain(model: nn.Module, view: np.ndarray, *, normalize: str = "cifar") -> Explanation:
    """Everything the panel shows by default for `view`, from three forward passes (probabilities, maps, CAM)."""
    x = to_input(view, normalize)
    probs = probabilities(model, x)
    predicted = int(probs.argmax())
    filters = first_layer_filters(model)  # (N, k, k, 3)
    stages = tuple(Stage(fm.name, tuple(fm.array.shape), feature_grid(fm)) for fm in feature_maps(model, x))
    return Explanation(
        view=view,
        probabilities=probs,
        predicted=predicted,
        heatmap=overlay(view, grad_cam(model, x, predicted), side=HEATMAP_SIDE),
        filters=spaced_filter_grid(filters),
        filter_shape=tuple(filters.shape[:3]),
        stages=stages,
    )


def spaced_filter_grid(filters: np.ndarray) -> np.ndarray:
    """(N, k, k, 3) uint8 filters -> a grid of tiles >= MIN_FILTER_TILE pixels with FILTER_GAP white pixels around
    each: with the 1-pixel lines of explain.filter_grid alone, 3x3 colour filters run together into one mosaic."""
    scale = max(1, math.ceil(MIN_FILTER_TILE / max(filters.shape[1:3])))
    big = filters.repeat(scale, axis=1).repeat(scale, axis=2)  # (N, k*scale, k*scale, 3)
    padded = np.pad(big, ((0, 0), (FILTER_GAP, FILTER_GAP), (FILTER_GAP, FILTER_GAP), (0, 0)), constant_values=BORDER)
    return filter_grid(padded, cols=min(FILTER_COLS, len(filters)), scale=1)


def class_heatmap(model: nn.Module, view: np.ndarray, target_class: int, *, normalize: str = "cifar") -> np.ndarray:
    """(HEATMAP_SIDE, HEATMAP_SIDE, 3) uint8 Grad-CAM overlay of the evidence for `target_class` (any class)."""
    return overlay(view, grad_cam(model, to_input(view, normalize), target_class), side=HEATMAP_SIDE)


def arch_summary(arch: str, num_classes: int = 10) -> ModelSummary:
    """The layer table of a freshly built (untrained) `arch` at the config's default width and depth."""
    return model_summary(build_model(TrainConfig(arch=arch), num_classes))


def summary_totals(summary: ModelSummary) -> dict[str, str]:
    """Headline numbers for display: parameters, trainable parameters and multiply-adds per 32x32 image."""
    return {
        "Parameters": f"{summary.total_params:,}",
        "Trainable": f"{summary.trainable_params:,}",
        "Multiply-adds per image": f"{summary.macs / 1e6:,.1f} M",
    }
