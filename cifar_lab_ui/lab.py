"""A page's view of the lab, opened once per script run, with the model in use named in the sidebar."""

from __future__ import annotations

import streamlit as st

from cifar_lab.checkpoint import CheckpointError
from cifar_lab.dashboard import ui_state


def open_lab() -> ui_state.Lab:
    """ui_state.open_lab with the process-wide cache and this session; names the model in use in the sidebar."""
    lab = ui_state.open_lab(st.cache_resource, st.session_state)
    if lab.model_path is None:
        st.sidebar.caption("Model: none yet")
        return lab
    try:
        ckpt = lab.load_model(lab.model_path)
    except CheckpointError:
        st.sidebar.caption(f"Model: {lab.model_path.stem} (cannot be loaded)")
        return lab
    st.sidebar.caption(f"Model: {ui_state.model_line(lab, ckpt)}")
    return lab
