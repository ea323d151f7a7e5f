"""The network's insides while it trains: after each epoch, the first conv layer's filters and what the network sees
in one fixed test image, so a class watches the filters and feature maps change from epoch to epoch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig
from ..devices import one_thread
from ..explain import feature_grid, feature_maps, first_layer_filters
from ..models import build_model
from .explain_view import Stage, probabilities, spaced_filter_grid, to_input
from .plots import to_hwc

MAPS_SHOWN = 8  # channels per feature-map grid: a phone's width shows one row of them
SAMPLE_INDEX = 0  # the fixed test image every epoch is shown on; the first one is as good as any


@dataclass(frozen=True)
class Insides:
    epoch: int  # the epoch after which the weights were taken (1-based)
    view: np.ndarray  # (32, 32, 3) uint8: the fixed test image
    label: str  # its true class
    predicted: str  # the class the network gives it now
    confidence: float  # 0..1, the network's probability for `predicted`
    filters: np.ndarray  # uint8 RGB grid of the first conv layer's filters
    filter_shape: tuple[int, ...]  # (N, k, k)
    frozen_filters: bool  # the first layer is not learned (fastnet's whitening): its filters never change
    stages: tuple[Stage, ...]  # the first and the last conv block's feature maps for `view`


def insides(
    config: TrainConfig,
    state_dict: dict[str, torch.Tensor],
    image: torch.Tensor,
    label: int,
    classes: tuple[str, ...],
    epoch: int,
) -> Insides:
    """The insides of `config`'s network with `state_dict`'s weights for one (3, 32, 32) uint8 test `image`.
    A fresh CPU copy of the network, on one thread: the training model and its threads are left alone."""
    with one_thread():
        model = build_model(config, len(classes))
        model.load_state_dict(state_dict)
        model.eval()
        view = to_hwc(image)
        x = to_input(view, config.normalize)
        probs = probabilities(model, x)
        filters = first_layer_filters(model)
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        maps = feature_maps(model, x)
    ends = [maps[0], maps[-1]] if len(maps) > 1 else maps
    predicted = int(probs.argmax())
    return Insides(
        epoch=epoch,
        view=view,
        label=classes[label],
        predicted=classes[predicted],
        confidence=float(probs[predicted]),
        filters=spaced_filter_grid(filters),
        filter_shape=tuple(filters.shape[:3]),
        frozen_filters=not first.weight.requires_grad,
        stages=tuple(Stage(m.name, tuple(m.array.shape), feature_grid(m, max_channels=MAPS_SHOWN)) for m in ends),
    )
