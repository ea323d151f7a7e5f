"""Classify: upload, draw or photograph a picture; see the 32x32 the model sees, its top-3 classes (all of them one
click away) and why."""

from __future__ import annotations

import streamlit as st

from cifar_lab.dashboard import plots
from cifar_lab.devices import one_thread
from cifar_lab.inference import ImageError, model_view, predict
from cifar_lab_ui.drawing import forget_drawing
from cifar_lab_ui.explain_panel import explain_panel
from cifar_lab_ui.gallery_view import class_gallery
from cifar_lab_ui.guards import require_model
from cifar_lab_ui.image_input import drawn_image, uploaded_image, webcam_image
from cifar_lab_ui.lab import open_lab
from cifar_lab_ui.navigation import start_page

SOURCES = ("Upload", "Draw", "Webcam")

start_page("Classify")
lab = open_lab()

st.title("Classify")

ckpt = require_model(lab)
model_path = lab.model_path
assert model_path is not None, "require_model stops the page when there is no model file"
st.caption(f"Model {model_path.stem} ({ckpt.config.arch}). Classes: {', '.join(ckpt.classes)}.")

source = (
    st.segmented_control(
        "Picture from", SOURCES, default=SOURCES[0], key="classify_source", on_change=forget_drawing, args=("canvas",)
    )
    or SOURCES[0]
)

try:
    image = {"Upload": uploaded_image, "Draw": drawn_image, "Webcam": webcam_image}[source]()
except ImageError as err:
    st.error(str(err))
    st.stop()
if image is None:
    st.stop()

view = model_view(image)  # (32, 32, 3) uint8
seen, bars = st.columns([1, 2])
seen.image(plots.upscale(view, 6), caption="what the model sees (32x32)")
seen.image(image.convert("RGB"), caption="your picture", width=192)
with one_thread():  # beside a training job: see devices.one_thread
    ranked = predict(ckpt.model, image, classes=ckpt.classes, normalize=ckpt.config.normalize, top=len(ckpt.classes))
top = ranked[:3]
bars.subheader(f"{top[0].label} ({top[0].probability:.0%})")
if lab.settings.gallery:  # the teacher shows the class's pictures on the Class page; in memory only
    class_gallery().add(view, top[0].label, top[0].probability, lab.viewer.owner)
    bars.caption("The teacher has turned on the class gallery: this picture and the answer show on the Class page.")
bars.plotly_chart(plots.probability_figure([p.label for p in top], [p.probability for p in top]))
with bars.expander(f"All {len(ranked)} classes"):
    st.plotly_chart(
        plots.probability_figure(
            [p.label for p in ranked], [p.probability for p in ranked], title="Every class, most likely first"
        ),
        key="all_classes",
    )

# Worked out only while open: thirty pictures classified at once must not queue thirty explanations.
with st.expander("Why this prediction?", key="classify_why", on_change="rerun") as why:
    if why.open:
        explain_panel(ckpt, model_path, view, key="classify")
