"""The checks every model page makes before drawing: a model must exist and load, else the page says what to do."""

from __future__ import annotations

import streamlit as st

from cifar_lab.checkpoint import Checkpoint, CheckpointError
from cifar_lab.dashboard import ui_state

NO_MODEL = "No model yet: train one on the Train page, or upload one on the Models page."


def current_model(lab: ui_state.Lab, *, no_model_note: str = "") -> Checkpoint | None:
    """The current model, with the shipped-model note when it is the fallback; None after saying why there is none."""
    if lab.model_path is None:
        st.info(NO_MODEL + no_model_note)
        return None
    try:
        ckpt = lab.model()
    except CheckpointError as err:
        st.error(f"The current model cannot be used: {err}. Pick another on the Models page.")
        return None
    if lab.shipped and ckpt is not None:
        st.info(ui_state.shipped_note(lab.model_path, ckpt))
    return ckpt


def require_model(lab: ui_state.Lab) -> Checkpoint:
    """current_model, or the page stops there."""
    ckpt = current_model(lab)
    if ckpt is None:
        st.stop()
    return ckpt
