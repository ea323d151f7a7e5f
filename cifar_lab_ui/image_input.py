"""Picture inputs shared by Classify and Explain: upload, drawing canvas, webcam and a test set image."""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

from cifar_lab.dashboard import plots
from cifar_lab.data import CifarData
from cifar_lab.inference import open_image
from cifar_lab_ui.drawing import DRAWING_ADVICE, drawing_tools, on_background, restart_drawing
from cifar_lab_ui.upload_limit import say_if_refused, with_limit

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]
ANY = "any"
TOO_LARGE_PICTURE = (
    "Pick a smaller picture or send a smaller copy (a screenshot of it is plenty: the model sees 32×32 pixels)."
)


def uploaded_image(key: str = "upload") -> Image.Image | None:
    """Raises inference.ImageError with a readable message for a file that is not a usable picture."""
    file = st.file_uploader(with_limit("An image (PNG, JPEG, WebP, GIF or BMP)"), type=IMAGE_TYPES, key=key)
    say_if_refused(key, file, TOO_LARGE_PICTURE)
    return open_image(file.getvalue(), name=file.name) if file is not None else None


TOOLS = {"Brush": "freedraw", "Filled rectangle": "rect", "Filled circle": "circle"}  # shapes: drag across them
BRUSH, BACKGROUND = "#b22222", "#8a8a8a"  # a red thing on a grey, road-like ground, as in the advice


def drawn_image(key: str = "canvas") -> Image.Image | None:
    st.caption(DRAWING_ADVICE)
    tool, colours = st.columns([2, 1])
    mode = TOOLS[tool.radio("Tool", list(TOOLS), key=f"{key}_tool", horizontal=True) or "Brush"]
    colour = colours.color_picker("Colour", BRUSH, key=f"{key}_colour")
    ground = colours.color_picker("Background", BACKGROUND, key=f"{key}_background")
    width = tool.slider("Brush size", 4, 40, 24, key=f"{key}_size", disabled=mode != "freedraw")
    canvas = st_canvas(
        stroke_width=width if mode == "freedraw" else 1,
        stroke_color=colour,
        fill_color=colour,
        background_color=ground,
        height=256,
        width=256,
        drawing_mode=mode,
        initial_drawing=restart_drawing(key),
        return_image_data=True,
        key=key,
    )
    pixels = canvas.image_data  # (H, W, 4) RGBA uint8, or None before the first stroke
    if not drawing_tools(key, (canvas.json_data or {}).get("objects") or []) or pixels is None:
        return None
    return on_background(np.asarray(pixels, dtype=np.uint8), ground)


def webcam_image(key: str = "webcam") -> Image.Image | None:
    shot = st.camera_input("Take a picture", key=key)
    return open_image(shot.getvalue(), name="the webcam picture") if shot is not None else None


def test_set_image(data: CifarData, *, key: str) -> np.ndarray | None:
    """A test image picked by true class and number, as (32, 32, 3) uint8; None when the class has none."""
    left, right = st.columns(2)
    name = left.selectbox("True class", (ANY, *data.classes), key=f"{key}_class")
    indices = np.arange(len(data.test_y)) if name == ANY else np.flatnonzero(data.test_y == data.classes.index(name))
    n = right.number_input(f"Image (1 to {len(indices):,})", 1, max(1, len(indices)), 1, key=f"{key}_index")
    if not len(indices):
        return None
    i = int(indices[min(n, len(indices)) - 1])
    st.caption(f"Test image {i:,} of {data.source}; true class: {data.classes[int(data.test_y[i])]}.")
    return plots.to_hwc(data.test_x[i])
