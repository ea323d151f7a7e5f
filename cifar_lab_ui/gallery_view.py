"""The class gallery on the page: the process-wide one, and how the Class page shows it."""

from __future__ import annotations

import streamlit as st

from cifar_lab.dashboard import plots
from cifar_lab.dashboard.gallery import Gallery, gallery
from cifar_lab.labels import visible
from cifar_lab.paths import runs_dir

COLUMNS = 6


def class_gallery() -> Gallery:
    return st.cache_resource(gallery)(str(runs_dir().resolve()))


def show_gallery() -> None:
    """The latest pictures the class classified, newest first."""
    shots = class_gallery().latest()
    st.subheader(f"Class gallery ({len(shots)})")
    if not shots:
        st.caption("Pictures classified on the Classify page appear here while the gallery is on.")
        return
    columns = st.columns(COLUMNS)
    for i, shot in enumerate(shots):
        who = f"{visible(shot.who)}: " if shot.who else ""
        columns[i % COLUMNS].image(plots.upscale(shot.view, 3), caption=f"{who}{shot.label} ({shot.probability:.0%})")
