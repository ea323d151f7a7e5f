"""The Train page's look inside the network after each epoch: filters, feature maps, one test image's prediction."""

from __future__ import annotations

import streamlit as st

from cifar_lab.dashboard import plots
from cifar_lab.dashboard.explain_view import stage_words
from cifar_lab.dashboard.insides import Insides

VIEW_SCALE = 4  # the 32x32 test image at 128 pixels: the size of a feature-map grid's row
BEFORE_FIRST_EPOCH = (
    "After the first epoch, the network's filters and what it sees in one test image appear here, and change "
    "with every epoch."
)
LEARNED_FILTERS = (
    "Each square is one filter: the pattern of colours the first layer looks for. They start as random noise and "
    "turn into edges and colour blobs as the network learns."
)
FROZEN_FILTERS = (
    "This network's first layer is not learned: its filters are computed from the training images before the "
    "first step and stay as they are (the Explain page says why). Watch the feature maps and the prediction change "
    "instead."
)
MAPS = (
    "Bright where a filter found its pattern. The first block's maps still look like the picture; the last block's "
    "are coarse and abstract: they say what is there, not where."
)


def insides_view(insides: Insides | None) -> None:
    st.markdown(f"**Inside the network after epoch {insides.epoch}**" if insides else "**Inside the network**")
    if insides is None:
        st.caption(BEFORE_FIRST_EPOCH)
        return
    image, filters, maps = st.columns([1, 2, 2])
    image.image(plots.upscale(insides.view, VIEW_SCALE), caption=f"a test image: {insides.label}")
    right = "right" if insides.predicted == insides.label else "wrong"
    image.markdown(f"The network says **{insides.predicted}** ({insides.confidence:.0%} sure): {right}.")
    n, kh, kw = insides.filter_shape
    filters.image(insides.filters, caption=f"the {n} filters of the first layer, {kh}x{kw} pixels each")
    filters.caption(FROZEN_FILTERS if insides.frozen_filters else LEARNED_FILTERS)
    for index, stage in enumerate(insides.stages):
        last = index == len(insides.stages) - 1 and index > 0
        maps.image(stage.grid, caption=("last block: " if last else "first block: ") + stage_words(stage))
    maps.caption(MAPS)
