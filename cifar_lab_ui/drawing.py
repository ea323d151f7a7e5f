"""Undo and Clear buttons for the drawing canvas, in view on a phone; what a drawing is shown to the model on, and
why drawings are hard for it.

streamlit-drawable-canvas shows its own undo, redo and reset only while a mouse hovers over it, so a finger never
finds them. These buttons restart the canvas from a drawing handed to it as `initial_drawing`: every stroke but the
last (Undo) or none (Clear). The canvas loads that drawing and sends it back, which reruns the page.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

Stroke = dict[str, Any]  # one Fabric.js object of the canvas's json_data


def restart_drawing(key: str) -> dict[str, Any] | None:
    """The drawing to hand the canvas `key` as initial_drawing; None while nothing was undone or cleared."""
    if key not in st.session_state:  # a canvas new to the page (or back from another page, which drops its state)
        st.session_state.pop(f"{key}_restart", None)
        st.session_state.pop(f"{key}_before", None)
    return st.session_state.get(f"{key}_restart")


def forget_drawing(key: str) -> None:
    """For the picture-source control's on_change: the canvas `key` comes back blank, here as in the browser.

    Streamlit keeps a component's state while it is off the page, but the canvas redraws from initial_drawing.
    """
    for name in (key, f"{key}_restart", f"{key}_before"):
        st.session_state.pop(name, None)


def _restart(key: str, before: list[Stroke], strokes: list[Stroke]) -> None:
    previous = st.session_state.get(f"{key}_restart") or {}
    # revision: each restart differs from the last, else the canvas would not reload a drawing equal to the last one
    st.session_state[f"{key}_restart"] = {"objects": strokes, "revision": previous.get("revision", 0) + 1}
    st.session_state[f"{key}_before"] = before


def drawing_tools(key: str, strokes: list[Stroke]) -> list[Stroke]:
    """Undo and Clear under the canvas `key`; returns its strokes, or none while it has yet to send a restart back."""
    if strokes == st.session_state.get(f"{key}_before"):
        strokes = []  # the run the button started: the canvas has yet to load the restart and send it back
    else:  # it has sent something else since: the restart, or that and more strokes (reruns coalesce)
        st.session_state.pop(f"{key}_before", None)
    with st.container(horizontal=True):
        st.button(
            "Undo stroke",
            icon=":material/undo:",
            key=f"{key}_undo",
            disabled=not strokes,
            on_click=_restart,
            args=(key, strokes, strokes[:-1]),
        )
        st.button(
            "Clear drawing",
            icon=":material/delete:",
            key=f"{key}_clear",
            disabled=not strokes,
            on_click=_restart,
            args=(key, strokes, []),
        )
    return strokes


# The model learned from 32x32 photos: objects fill the frame, in colour, on a coloured background (sky, grass,
# road). A thin dark line on white is like none of them; filled shapes on a coloured ground give it a fair chance.
DRAWING_ADVICE = (
    "The model learned from small photos, not drawings: things fill the picture, in colour, on a background of sky, "
    "grass or road. A thin line on white looks like nothing it has seen (often like a plane in a pale sky). Draw "
    "big, filled, coloured shapes on a coloured background, for example a red car on a grey road or a brown horse "
    "on green grass."
)


def on_background(rgba: np.ndarray, colour: str) -> Image.Image:
    """The drawing over its background colour: the canvas may hand back its strokes on transparent pixels, which
    the model's view would otherwise put on white."""
    drawing = Image.fromarray(rgba, "RGBA")
    ground = Image.new("RGBA", drawing.size, colour)
    return Image.alpha_composite(ground, drawing).convert("RGB")
