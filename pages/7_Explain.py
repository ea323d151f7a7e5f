"""Explain: why the model predicts what it does for one picture, and the layer table of any model."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cifar_lab.checkpoint import Checkpoint
from cifar_lab.config import ARCHS
from cifar_lab.dashboard import ui_state
from cifar_lab.data import DataError
from cifar_lab.inference import ImageError, model_view
from cifar_lab.models import DESCRIPTIONS
from cifar_lab_ui.drawing import forget_drawing
from cifar_lab_ui.explain_panel import explain_panel, explained, model_id, summary_of, summary_of_arch, summary_view
from cifar_lab_ui.guards import current_model
from cifar_lab_ui.image_input import drawn_image, test_set_image, uploaded_image
from cifar_lab_ui.lab import open_lab
from cifar_lab_ui.navigation import start_page

SOURCES = ("Upload", "Test image", "Draw")
CANVAS = "explain_canvas"
CURRENT = "current"  # the summary selectbox's entry for the current model; the others are architecture names


def dataset_picture(lab: ui_state.Lab) -> np.ndarray | None:
    """A test image of the current data source, as (32, 32, 3) uint8."""
    try:
        return test_set_image(lab.load_data(), key="explain")
    except DataError as err:
        st.error(f"{err}")
        return None


def picture(lab: ui_state.Lab, source: str) -> np.ndarray | None:
    """The picture to explain as the model sees it, (32, 32, 3) uint8; None until there is one."""
    if source == "Test image":
        return dataset_picture(lab)
    try:
        image = uploaded_image("explain_upload") if source == "Upload" else drawn_image(CANVAS)
    except ImageError as err:
        st.error(str(err))
        return None
    return model_view(image) if image is not None else None


def summary_section(lab: ui_state.Lab, ckpt: Checkpoint | None) -> None:
    st.subheader("Model summary")
    options = ([CURRENT] if ckpt is not None else []) + list(ARCHS)
    label = {
        CURRENT: f"current model: {lab.model_path.stem if lab.model_path else ''}",
        **{arch: f"{arch}: {DESCRIPTIONS.get(arch, '')} (untrained, default width)" for arch in ARCHS},
    }
    # streamlit's stub: its `options: Sequence[Never]` overload (-> None) matches any options under mypy
    chosen: str = st.selectbox(  # type: ignore[assignment]
        "Model",
        options,
        format_func=lambda option: label[option],
        key="summary_model",
        help="the current model, or a fresh one of any architecture in the registry",
    )
    if chosen == CURRENT and ckpt is not None and lab.model_path is not None:  # offered only with a model
        summary_view(summary_of(model_id(lab.model_path), ckpt.model))
    else:
        summary_view(summary_of_arch(chosen))
    st.caption(
        "Output shapes are per image (channels x height x width) for a 32x32 input; multiply-adds count "
        "the convolutions and linear layers of one forward pass."
    )


start_page("Explain")
lab = open_lab()

st.title("Explain")
st.write(
    "Where in the picture does the model find its evidence, what does its first layer look for, and what "
    "does each conv block make of the picture?"
)

ckpt = current_model(
    lab, no_model_note=" Then its explanations show here; the layer table below works for every architecture already."
)
model_path = lab.model_path  # not None wherever ckpt is not: current_model needs a file to load
if ckpt is not None and model_path is not None:
    st.caption(f"Model {model_path.stem} ({ckpt.config.arch}).")
    source = (
        st.segmented_control(
            "Picture from", SOURCES, default=SOURCES[0], key="explain_source", on_change=forget_drawing, args=(CANVAS,)
        )
        or SOURCES[0]
    )
    view = picture(lab, source)
    if view is not None:
        result = explained(model_id(model_path), view, ckpt.config.normalize, ckpt.model)
        best = result.predicted
        st.subheader(f"Predicted: {ckpt.classes[best]} ({result.probabilities[best]:.0%})")
        explain_panel(ckpt, model_path, view, key="explain")

summary_section(lab, ckpt)
