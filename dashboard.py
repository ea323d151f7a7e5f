"""CIFAR-10 Lab, home page: `streamlit run dashboard.py` (the other pages live in pages/)."""

from __future__ import annotations

import streamlit as st

from cifar_lab.checkpoint import CheckpointError
from cifar_lab.config import preset
from cifar_lab.dashboard import run_views, ui_state
from cifar_lab.data import DataError
from cifar_lab.devices import slow_cpu_note
from cifar_lab.labels import visible
from cifar_lab_ui.lab import open_lab
from cifar_lab_ui.navigation import start_page
from cifar_lab_ui.start_run import NO_NAME, queue_run
from cifar_lab_ui.train_form import random_seed

TRAIN_PAGE = "pages/2_Train.py"


def choose_data(options: tuple[str, ...]) -> None:
    """The data source for every page, kept outside widget state so it survives page switches."""
    current = st.session_state.get("data_source") or options[0]
    picked = st.sidebar.selectbox(
        "Data",
        options,
        index=options.index(current) if current in options else 0,
        help="CIFAR-10 source: CIFAR_LAB_DATA, ./data, or generated 'synthetic' images",
    )
    st.session_state["data_source"] = picked


def data_banner(lab: ui_state.Lab) -> None:
    if lab.data_problem:
        st.warning(
            f"Real CIFAR-10 was not found, so the lab offers generated images ('synthetic'). To fix: {lab.data_problem}"
        )
    try:
        st.success(f"Data: {lab.load_data().source}")
    except DataError as err:
        st.error(f"{err}")


def model_summary(lab: ui_state.Lab) -> None:
    if lab.model_path is None:
        st.info("No trained model yet: use the quick start below or the Train page.")
        return
    try:
        ckpt = lab.load_model(lab.model_path)
    except CheckpointError as err:
        st.error(f"The current model cannot be used: {err}")
        return
    accuracy = ui_state.accuracy_of(ckpt.metrics)
    score = f", test accuracy {accuracy:.1%}" if accuracy is not None else ""
    st.write(f"Current model: **{lab.model_path.stem}** ({ckpt.config.arch}, epoch {ckpt.epoch}{score})")
    if lab.shipped:
        st.caption(ui_state.shipped_note(lab.model_path, ckpt))


def quick_start(lab: ui_state.Lab) -> None:
    # A new seed each time, as on Train: two students' runs show the spread of a score, not one curve twice.
    if problem := queue_run(lab, preset("classroom", seed=random_seed()), "classroom"):
        st.error(problem)
        return
    st.switch_page(TRAIN_PAGE)


start_page("Home", controls=True)
choose_data(ui_state.data_choice().options)
lab = open_lab()

st.title("CIFAR-10 Lab")
st.write(
    "Train a small image classifier on CIFAR-10 (60,000 tiny photos in 10 classes), watch it learn, "
    "see where it goes wrong, and try it on your own pictures."
)

data_banner(lab)
if history_problem := run_views.store_problem(lab.jobs.store):  # damaged, locked or never opened: said, not raised
    st.error(history_problem)
model_summary(lab)
running = lab.jobs.running
if running is not None:
    by = f" by {visible(running.owner)}" if running.owner else ""
    st.info(f"Training **{running.name}**{by} ({running.config.arch}): {running.snapshot().progress:.0%} done.")
    st.page_link(TRAIN_PAGE, label="Watch it on the Train page", icon="📈")

st.page_link(
    "pages/9_Guide.py", label="Teaching a class? The Guide walks a first lesson in five steps", icon=":material/school:"
)
st.subheader("Quick start")
st.write(
    "One click trains the *classroom* preset for two minutes, whatever this computer's speed: a few seconds of "
    "measuring choose how many epochs (and how wide a network) fit. On real CIFAR-10 a 2-core laptop CPU reaches "
    "about 86 %. The Train page shows it live."
)
note = slow_cpu_note()
if note:
    st.caption(note)
unnamed = not lab.viewer.owner
if unnamed:
    st.caption(NO_NAME)
if st.button("Train a classroom model", type="primary", disabled=unnamed):
    quick_start(lab)
