"""Classify: upload, draw or photograph a picture; see the 32x32 the model sees and its top-3 classes."""
from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

from cifar_lab import plots, ui_state
from cifar_lab.checkpoint import CheckpointError
from cifar_lab.inference import ImageError, model_view, open_image, predict

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]
SOURCES = ("Upload", "Draw", "Webcam")


def uploaded_image() -> Image.Image | None:
    file = st.file_uploader("An image (PNG, JPEG, WebP, GIF or BMP)", type=IMAGE_TYPES, key="upload")
    return open_image(file.getvalue(), name=file.name) if file is not None else None


def drawn_image() -> Image.Image | None:
    left, right = st.columns([1, 3])
    colour = left.color_picker("Brush colour", "#1f77b4")
    width = right.slider("Brush size", 4, 40, 18)
    canvas = st_canvas(stroke_width=width, stroke_color=colour, background_color="#ffffff", height=256, width=256,
                       drawing_mode="freedraw", return_image_data=True, key="canvas")
    pixels = canvas.image_data  # (H, W, 4) RGBA uint8, or None before the first stroke
    if pixels is None or not (canvas.json_data or {}).get("objects"):
        return None
    return Image.fromarray(np.asarray(pixels, dtype=np.uint8), "RGBA")


def webcam_image() -> Image.Image | None:
    shot = st.camera_input("Take a picture")
    return open_image(shot.getvalue(), name="the webcam picture") if shot is not None else None


st.set_page_config(page_title="Classify · CIFAR-10 Lab", page_icon="🧪", layout="wide")
lab = ui_state.open_lab(st.cache_resource, st.session_state)

st.title("Classify")

if lab.model_path is None:
    st.info("No model yet: train one on the Train page, or upload one on the Models page.")
    st.stop()
try:
    ckpt = lab.model()
except CheckpointError as err:
    st.error(f"The current model cannot be used: {err}. Pick another on the Models page.")
    st.stop()
st.caption(f"Model {lab.model_path.stem} ({ckpt.config.arch}). Classes: {', '.join(ckpt.classes)}.")

source = st.segmented_control("Picture from", SOURCES, default=SOURCES[0], key="classify_source") or SOURCES[0]

try:
    image = {"Upload": uploaded_image, "Draw": drawn_image, "Webcam": webcam_image}[source]()
except ImageError as err:
    st.error(str(err))
    st.stop()
if image is None:
    st.stop()

seen, bars = st.columns([1, 2])
seen.image(plots.upscale(model_view(image), 6), caption="what the model sees (32x32)")
seen.image(image.convert("RGB"), caption="your picture", width=192)
top = predict(ckpt.model, image, classes=ckpt.classes, normalize=ckpt.config.normalize, top=3)
bars.subheader(f"{top[0].label} ({top[0].probability:.0%})")
bars.plotly_chart(plots.probability_figure([p.label for p in top], [p.probability for p in top]))
