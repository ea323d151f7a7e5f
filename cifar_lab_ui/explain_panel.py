"""The "Why this prediction?" panel and the model summary, drawn from cifar_lab.dashboard.explain_view's pure results.

Results are cached per (model file version, 32x32 picture), so widget changes redraw without recomputing.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import streamlit as st
from torch import nn

from cifar_lab.checkpoint import Checkpoint
from cifar_lab.dashboard import plots
from cifar_lab.dashboard.explain_view import (
    HEATMAP_SIDE,
    Explanation,
    arch_summary,
    class_heatmap,
    explain,
    stage_words,
    summary_totals,
)
from cifar_lab.devices import one_thread
from cifar_lab.summary import ModelSummary, model_summary

VIEW_SCALE = HEATMAP_SIDE // 32  # the 32x32 picture shown at the size of a Grad-CAM overlay
CAM_HELP = (
    "**Grad-CAM** shows where the model found its evidence for a class: red where the last conv block "
    "that still has a spatial map found the most, blue where it found none. The map is coarse: that block "
    "sees the picture at a few pixels a side."
)


def model_id(path: Path) -> str:
    """A cache key that changes when the file is saved again."""
    return f"{path.resolve()}@{path.stat().st_mtime_ns}"


@st.cache_resource(max_entries=4)
def _private_copy(model_key: str, _model: nn.Module) -> nn.Module:
    """A copy used only here: the explanations hook into the forward pass, which must not touch the shared model
    other sessions classify and evaluate with."""
    return copy.deepcopy(_model)


# An explanation holds about 1 MB of images (a grid per conv block): 32 of them stay cached, 64 heatmaps.
@st.cache_data(max_entries=32, show_spinner=False)
def explained(model_key: str, view: np.ndarray, normalize: str, _model: nn.Module) -> Explanation:
    with one_thread():
        return explain(_private_copy(model_key, _model), view, normalize=normalize)


@st.cache_data(max_entries=64, show_spinner=False)
def heatmap_for(model_key: str, view: np.ndarray, normalize: str, target: int, _model: nn.Module) -> np.ndarray:
    with one_thread():
        return class_heatmap(_private_copy(model_key, _model), view, target, normalize=normalize)


@st.cache_data(max_entries=16, show_spinner=False)
def summary_of(model_key: str, _model: nn.Module) -> ModelSummary:
    with one_thread():
        return model_summary(_private_copy(model_key, _model))


@st.cache_data(max_entries=8, show_spinner="Building the model...")
def summary_of_arch(arch: str) -> ModelSummary:
    with one_thread():
        return arch_summary(arch)


# fastnet.FastNet.init_from_data: its first layer is computed from the training images and then frozen.
WHITENING_NOTE = (
    "fastnet's first layer is not learned. Before training, its filters are computed from the training images "
    "(whitening): each is one way in which 2x2 patches of colour vary, scaled so that rare variations count as much "
    "as common ones, and the layers after it start from evenly spread inputs and learn faster. The filters stay "
    "frozen and come in pairs of opposite sign. They are not edge detectors: they range from overall brightness and "
    "colour to fine pixel-to-pixel differences. The edge and texture detectors are learned by the convolutions after "
    "it."
)


def explain_panel(ckpt: Checkpoint, path: Path, view: np.ndarray, *, key: str) -> None:
    """Grad-CAM for the predicted and a chosen class, first-layer filters and per-block feature maps of `view`
    ((32, 32, 3) uint8, the picture the model sees). `key` keeps the widgets of several panels apart."""
    mid, normalize = model_id(path), ckpt.config.normalize
    result = explained(mid, view, normalize, ckpt.model)
    classes, probs = ckpt.classes, result.probabilities
    runner_up = int(np.argsort(-probs)[1]) if len(probs) > 1 else result.predicted
    picture_key = hashlib.sha1(view.tobytes()).hexdigest()[:8]  # a new picture resets the class choice

    text, chooser = st.columns([2, 1])  # the chooser sits above the third picture, so the pictures line up
    text.markdown(CAM_HELP)
    # streamlit's stub: its `options: Sequence[Never]` overload (-> None) matches any options under mypy
    target: int = chooser.selectbox(  # type: ignore[assignment]
        "Evidence for class",
        range(len(classes)),
        index=runner_up,
        format_func=lambda i: f"{classes[i]} ({probs[i]:.0%})",
        key=f"{key}_cam_{picture_key}",
        help="Grad-CAM for any class: where would the model look to call it this?",
    )
    seen, predicted, chosen = st.columns(3)
    # A fixed width: without it a caption wider than the picture stretches the picture.
    seen.image(plots.upscale(view, VIEW_SCALE), caption="what the model sees (32x32)", width=HEATMAP_SIDE)
    predicted.image(
        result.heatmap,
        width=HEATMAP_SIDE,
        caption=f"evidence for {classes[result.predicted]} ({probs[result.predicted]:.0%}, predicted)",
    )
    chosen.image(
        heatmap_for(mid, view, normalize, target, ckpt.model),
        caption=f"evidence for {classes[target]}",
        width=HEATMAP_SIDE,
    )

    filters, maps = st.columns([2, 3])
    n, kh, kw = result.filter_shape
    filters.markdown("**First-layer filters**")
    filters.image(
        result.filters,
        caption=f"{n} filters of {kh}x{kw} pixels, each stretched to full contrast: "
        "the patterns the first layer responds to",
    )
    if ckpt.config.arch == "fastnet":
        filters.caption(WHITENING_NOTE)
    feature_maps_view(maps, result, key=key)


def feature_maps_view(column, result: Explanation, *, key: str) -> None:
    """One conv block's feature maps; a selectbox picks the block."""
    if not result.stages:
        column.info("This model has no conv blocks to show feature maps for.")
        return
    stages = result.stages
    column.markdown("**Feature maps**")
    index: int = column.selectbox(
        "Conv block",
        range(len(stages)),
        key=f"{key}_block",
        format_func=lambda i: f"block {i + 1} of {len(stages)}: {stage_words(stages[i])}",
        help="blocks in the order the picture passes through them: early ones respond to edges and colours, later "
        "ones to larger parts",
    )
    stage = stages[index if index < len(stages) else 0]
    column.image(
        stage.grid,
        caption=f"the {min(16, stage.shape[0])} most active of them, bright = strong response "
        f"(name in the code: {stage.name})",
    )


def summary_view(summary: ModelSummary) -> None:
    """Totals as metrics, then the layer table."""
    for column, (label, value) in zip(st.columns(3), summary_totals(summary).items()):
        column.metric(label, value)
    st.dataframe(
        summary.table(),
        hide_index=True,
        width="stretch",
        column_config={"parameters": st.column_config.NumberColumn(format="localized")},
    )
