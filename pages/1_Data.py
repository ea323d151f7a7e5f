"""Data: sample images per class, class counts, what normalisation does, an augmentation preview, and an image at
each size the lowres epochs can shrink it to."""

from __future__ import annotations

import streamlit as st
import torch

from cifar_lab.augment import augment, shrink
from cifar_lab.config import LOWRES_MIN_SIDE, TrainConfig
from cifar_lab.dashboard import plots
from cifar_lab.data import DataError
from cifar_lab.preprocess import stats
from cifar_lab_ui.lab import open_lab
from cifar_lab_ui.navigation import start_page

PREVIEW_COPIES = 8  # augmented versions shown next to the original
SHRUNK_SIDES = (32, 28, 24, 20, LOWRES_MIN_SIDE)  # lowres_side values shown side by side

start_page("Data", controls=True)
lab = open_lab()
form = {**TrainConfig().to_dict(), **st.session_state.get("train_form", {})}  # the Train page's choices
per_class = st.sidebar.slider("Images per class", 4, 16, 8)

st.title("Data")

try:
    data = lab.load_data()
except DataError as err:
    st.error(str(err))
    st.stop()

st.caption(
    f"{data.source}: {len(data.train_y):,} training and {len(data.test_y):,} test images, "
    f"{len(data.classes)} classes, each 32x32 pixels."
)
train_counts = torch.bincount(data.train_y, minlength=len(data.classes)).tolist()
test_counts = torch.bincount(data.test_y, minlength=len(data.classes)).tolist()
st.plotly_chart(plots.class_counts_figure(data.classes, train_counts, test_counts))

st.subheader("Samples")
for k, name in enumerate(data.classes):
    picks = torch.nonzero(data.train_y == k).flatten()[:per_class]
    st.image(plots.mosaic(data.train_x[picks], scale=2), caption=name)

st.subheader("Normalisation")
# streamlit's stub: its `options: Sequence[Never]` overload (-> None) matches any options under mypy
how: str = st.radio(  # type: ignore[assignment]
    "Statistics",
    ("cifar", "half"),
    horizontal=True,
    index=("cifar", "half").index(form["normalize"]),
    help="cifar: the training set's per-channel mean and std; half: the tutorial's 0.5 / 0.5",
)
mean, std = stats(how)
st.write(
    f"Each channel's pixels (0..255, scaled to 0..1) have the mean {mean} subtracted and are divided by "
    f"{std}, so the network sees numbers centred on 0 with a spread of about 1 (easier to learn from)."
)
st.plotly_chart(plots.normalisation_figure(data.train_x[:256], how))

st.subheader("Augmentation preview")
st.write("Training sees a randomly changed copy of each image every epoch: same class, new pixels.")
c1, c2, c3, c4, c5 = st.columns(5)
flip = c1.checkbox("flip", value=bool(form["flip"]))
crop_pad = c2.number_input("crop pad (px)", 0, 8, int(form["crop_pad"]))
rotate = c3.number_input("rotate (deg)", 0.0, 180.0, float(form["rotate"]), step=5.0)
cutout = c4.number_input("cutout (px)", 0, 32, int(form["cutout"]))
index = c5.number_input("image #", 0, len(data.train_y) - 1, 0)
if st.button("Regenerate"):
    st.session_state["augment_seed"] = st.session_state.get("augment_seed", 0) + 1
generator = torch.Generator().manual_seed(st.session_state.get("augment_seed", 0))
original = data.train_x[index : index + 1]
copies = augment(
    original.repeat(PREVIEW_COPIES, 1, 1, 1),
    flip=flip,
    crop_pad=crop_pad,
    rotate=rotate,
    cutout=cutout,
    generator=generator,
)
st.image(
    plots.mosaic(torch.cat([original, copies]), scale=4),
    caption=f"original ({data.classes[int(data.train_y[index])]}), then {PREVIEW_COPIES} augmented copies",
)

st.subheader("Shrunk images (lowres epochs)")
lowres_now = f"now {form['lowres_epochs']}" if form["lowres_epochs"] else "now off"
st.write(
    f"With *lowres epochs* set on the Train page ({lowres_now}), the first epochs train on smaller "
    "copies of every image: fewer pixels, so each step costs less, and the net learns the coarse shapes; the "
    "full-size epochs after them add the fine detail. The same image at each side the setting allows:"
)
for column, side in zip(st.columns(len(SHRUNK_SIDES)), SHRUNK_SIDES):
    column.image(plots.mosaic(shrink(original, side), scale=4), caption=f"{side}x{side}")
