"""Evaluate: accuracy, per-class bars, confusion matrix, sample predictions (each explainable) and the misclassified
gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from cifar_lab.checkpoint import CheckpointError
from cifar_lab.dashboard import plots, ui_state
from cifar_lab.data import DataError
from cifar_lab.evaluate import Evaluation, evaluate_checkpoint
from cifar_lab_ui.explain_panel import explain_panel
from cifar_lab_ui.guards import require_model
from cifar_lab_ui.lab import open_lab
from cifar_lab_ui.navigation import start_page

ANY = "any"
GRID = 24  # sample predictions shown
GALLERY = 48  # misclassified images shown at most
THUMB = 96  # pixels per thumbnail: 32x32 images shown 3x


@st.cache_resource(max_entries=4, show_spinner="Scoring the test set...")
def scored(path: str, mtime_ns: int, source: str, tta: bool, _lab: ui_state.Lab) -> Evaluation:
    """Cached per model file version, data source and TTA choice."""
    ckpt, data = _lab.load_model(Path(path)), _lab.load_data()
    return evaluate_checkpoint(ckpt, data.test_x, data.test_y, classes=data.classes, tta=tta)


def pick_cell() -> None:
    """A click on the confusion matrix filters the gallery to that (true, predicted) pair."""
    points = st.session_state["confusion"].selection.points
    if points:
        st.session_state["gallery_true"], st.session_state["gallery_pred"] = points[0]["y"], points[0]["x"]


def captions(result: Evaluation, indices: np.ndarray) -> list[str]:
    """ "✓ cat 91%" when right; "✗ dog 55%, is cat" when wrong."""
    out = []
    for i in indices:
        true, pred = result.classes[result.labels[i]], result.classes[result.predictions[i]]
        text = f"{pred} {result.probabilities[i, result.predictions[i]]:.0%}"
        out.append(f"✓ {text}" if true == pred else f"✗ {text}, is {true}")
    return out


start_page("Evaluate", controls=True)
lab = open_lab()
normalised = st.sidebar.toggle("Row-normalised confusion matrix", help="each row as shares of that true class")

st.title("Evaluate")

ckpt = require_model(lab)
model_path = lab.model_path
assert model_path is not None, "require_model stops the page when there is no model file"
try:
    data = lab.load_data()
    # Starts as the model's training scored it, so the figure matches the one training reported.
    tta = st.sidebar.checkbox(
        "Test-time augmentation",
        value=ckpt.config.tta,
        help="also score the mirrored image and average; a model trained with test-time "
        "shifts (the best preset) also scores shifted copies of its least confident "
        "images. On at first when the model's training scored it so",
    )
    result = scored(str(model_path), model_path.stat().st_mtime_ns, lab.source, tta, lab)
except (DataError, CheckpointError, ValueError) as err:
    st.error(f"Cannot evaluate {model_path.name} on {lab.source}: {err}")
    st.stop()

a, b, c = st.columns(3)
a.metric("Test accuracy", f"{result.accuracy:.1%}")
b.metric("Test loss", f"{result.loss:.3f}")
c.metric("Test images", f"{len(result.labels):,}")
st.caption(f"Model {model_path.stem} on {data.source}.")
st.plotly_chart(plots.per_class_figure(result.per_class_accuracy, result.accuracy))
st.plotly_chart(
    plots.confusion_figure(result.confusion, result.classes, normalised=normalised),
    key="confusion",
    on_select=pick_cell,
    selection_mode="points",
)
st.caption("Click a cell to show those images in the gallery below.")

st.subheader("Sample predictions")
grid = np.arange(min(GRID, len(result.labels)))
st.image([plots.upscale(plots.to_hwc(data.test_x[i]), 3) for i in grid], caption=captions(result, grid), width=THUMB)
labels = dict(zip(grid.tolist(), captions(result, grid)))
picked = st.selectbox(
    "Explain a sample",
    list(labels),
    index=None,
    format_func=lambda i: f"#{i + 1}: {labels[i]}",
    placeholder="Pick a sample to see why the model said that",
    key="explain_sample",
)
if picked is not None:
    with st.expander(f"Why this prediction? Sample #{picked + 1}: {labels[picked]}", expanded=True):
        explain_panel(ckpt, model_path, plots.to_hwc(data.test_x[picked]), key="evaluate")

st.subheader("Misclassified")
options = (ANY, *result.classes)
f1, f2 = st.columns(2)
true_name = f1.selectbox("True class", options, key="gallery_true")
pred_name = f2.selectbox("Predicted class", options, key="gallery_pred")
wrong = result.labels != result.predictions
if true_name != ANY:
    wrong &= result.labels == result.classes.index(true_name)
if pred_name != ANY:
    wrong &= result.predictions == result.classes.index(pred_name)
found = np.flatnonzero(wrong)
st.caption(f"{len(found):,} misclassified images match; showing {min(len(found), GALLERY)}.")
if len(found):
    shown = found[:GALLERY]
    st.image(
        [plots.upscale(plots.to_hwc(data.test_x[i]), 3) for i in shown], caption=captions(result, shown), width=THUMB
    )
