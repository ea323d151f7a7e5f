"""Class: how to join, what trains now, the queue, and the teacher's controls."""

from __future__ import annotations

import streamlit as st

from cifar_lab.dashboard import run_views, ui_state
from cifar_lab.labels import visible
from cifar_lab.runs import RunStoreError
from cifar_lab_ui import teacher_panel
from cifar_lab_ui.lab import open_lab
from cifar_lab_ui.navigation import start_page

TRAIN_PAGE = "pages/2_Train.py"
REFRESH_S = 5.0  # how often the queue and the leaderboard redraw while something trains or waits
IDLE_REFRESH_S = 15.0  # and while nothing does: a run queued from a phone shows up on the projected page


def now_training(lab: ui_state.Lab) -> None:
    for job in lab.jobs.active:
        snap = job.snapshot()
        by = f" by **{visible(job.owner)}**" if job.owner else ""
        st.progress(snap.progress, text=f"{visible(snap.name)}{by}: {ui_state.progress_text(snap)}")
    if lab.jobs.active:
        st.page_link(TRAIN_PAGE, label="Watch it live on the Train page", icon="📈")


def live(lab: ui_state.Lab) -> None:
    """What changes while the class trains; redrawn every REFRESH_S only while something trains or waits."""
    lab = ui_state.open_lab(st.cache_resource, st.session_state)  # the class settings may have changed meanwhile
    st.subheader("Training now")
    now_training(lab)
    try:
        waiting = lab.jobs.waiting()
    except RunStoreError as err:
        st.error(f"The queue cannot be read: {err}")
        return
    if not lab.jobs.active and not waiting:
        st.caption(
            "Nothing is training. Type your name in the sidebar, pick settings on the Train page and press Start."
        )
    st.subheader(f"Queue ({len(waiting)})" + (" · paused by the teacher" if lab.settings.paused else ""))
    if waiting:
        st.dataframe(run_views.queue_rows(waiting), hide_index=True, key="class_queue")


def show_result() -> None:
    kind, message = st.session_state.pop("class_result", (None, ""))
    if kind:
        getattr(st, kind)(message)


start_page("Class")
lab = open_lab()

st.title("Class")
busy = bool(lab.jobs.active) or bool(lab.jobs.store and lab.jobs.waiting())
st.fragment(live, run_every=REFRESH_S if busy else IDLE_REFRESH_S)(lab)
st.subheader("Teacher")
teacher_panel.panel(lab)
show_result()
