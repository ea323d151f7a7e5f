"""Class: how to join, what trains now, the queue, the leaderboard, and the teacher's controls."""

from __future__ import annotations

import streamlit as st

from cifar_lab.dashboard import run_views, ui_state
from cifar_lab.dashboard.leaderboard import Board, load_board
from cifar_lab.labels import visible
from cifar_lab.runs import RunStore, RunStoreError
from cifar_lab_ui import teacher_panel
from cifar_lab_ui.gallery_view import show_gallery
from cifar_lab_ui.join_panel import join_panel
from cifar_lab_ui.lab import open_lab
from cifar_lab_ui.navigation import start_page

TRAIN_PAGE = "pages/2_Train.py"
REFRESH_S = 5.0  # how often the queue and the leaderboard redraw while something trains or waits
IDLE_REFRESH_S = 15.0  # and while nothing does: a run queued from a phone shows up on the projected page
PERCENT = "%.2f %%"  # of accuracy * 100: "91.40 %", where Streamlit's "percent" drops trailing zeros ("91.4%")
BOARD_COLUMNS = {
    "minutes": st.column_config.NumberColumn(format="%.1f", help="from start to final score"),
    "validation accuracy": st.column_config.NumberColumn(format=PERCENT, help="on images held out of training"),
    "test accuracy": st.column_config.NumberColumn(format=PERCENT, help="on the 10,000 test images"),
}


@st.cache_resource(max_entries=8, show_spinner=False)
def shared_board(_store: RunStore, path: str, version: str, include_hidden: bool) -> Board:
    """One board per change of the store, for every session watching: thirty watchers build it once."""
    return load_board(_store, include_hidden=include_hidden)


def now_training(lab: ui_state.Lab) -> None:
    for job in lab.jobs.active:
        snap = job.snapshot()
        by = f" by **{visible(job.owner)}**" if job.owner else ""
        st.progress(snap.progress, text=f"{visible(snap.name)}{by}: {ui_state.progress_text(snap)}")
    if lab.jobs.active:
        st.page_link(TRAIN_PAGE, label="Watch it live on the Train page", icon="📈")
    else:
        st.caption("Nothing is training. Type your name in the sidebar, pick settings on the Train page, press Start.")


def queue(lab: ui_state.Lab) -> None:
    waiting = lab.jobs.waiting()
    st.subheader(f"Queue ({len(waiting)})" + (" · paused by the teacher" if lab.settings.paused else ""))
    if waiting:
        st.dataframe(run_views.queue_rows(waiting, paused=lab.settings.paused), hide_index=True, key="class_queue")


def leaderboard(lab: ui_state.Lab, store: RunStore) -> None:
    """Finished runs ranked by accuracy, and what the class varied against the accuracy it got."""
    board = shared_board(store, str(store.path), store.version(), lab.viewer.teacher)
    st.subheader("Leaderboard")
    if not board.entries:
        st.caption("Finished runs appear here, best first.")
        return
    st.dataframe(board_rows(board), hide_index=True, column_config=BOARD_COLUMNS, key="class_board")
    if board.test_hidden:
        st.caption(
            "Ranked by accuracy on images held out of training. The test accuracies stay hidden until the "
            "teacher reveals them: tuning settings to the test set would make its score look better than it is."
        )
    if board.figures:
        st.markdown("**What mattered**: each dot is a finished run.")
        columns = st.columns(min(3, len(board.figures)))
        for i, (name, figure) in enumerate(board.figures.items()):
            columns[i % len(columns)].plotly_chart(figure, key=f"setting_{name}")


def board_rows(board: Board) -> list[dict[str, object]]:
    """Who and how well first: a phone's narrow table shows the first few columns."""
    rows = []
    for e in board.entries:
        row: dict[str, object] = {"#": e.rank, "owner": visible(e.owner) + (" (hidden)" if e.hidden else "")}
        if e.validation_accuracy is not None or board.test_hidden:
            row["validation accuracy"] = percent(e.validation_accuracy)
        if not board.test_hidden:
            row["test accuracy"] = percent(e.test_accuracy)
        row.update({"minutes": e.minutes, "preset": e.preset or "(none)", "changed": e.changes})
        rows.append(row)
    return rows


def percent(accuracy: float | None) -> float | None:
    return None if accuracy is None else round(accuracy * 100, 2)


def where_runs_train(lab: ui_state.Lab) -> None:
    """The executor, and on a Ray cluster its nodes and what is free on each: the teacher sees the room there is."""
    jobs = lab.jobs
    if jobs.executor_problem:
        st.warning(jobs.executor_problem)
    if jobs.executor.name != "ray":
        st.caption(
            f"Runs train on this computer, {jobs.slots} at a time. To spread them over the lab's computers, "
            "start the dashboard with CIFAR_LAB_EXECUTOR=ray (see docs/cluster.md)."
        )
        return
    from cifar_lab.cluster import nodes

    found = nodes()
    st.subheader("Cluster")
    up = sum(n.alive for n in found)
    st.caption(f"{up} computer(s) up, room for {jobs.slots} run(s) at a time.")
    st.dataframe(
        [
            {
                "node": n.label,
                "address": n.address,
                "up": "yes" if n.alive else "no",
                "CPUs free": f"{n.cpus_free:g} of {n.cpus:g}",
                "GPUs free": f"{n.gpus_free:g} of {n.gpus:g}",
            }
            for n in found
        ],
        hide_index=True,
        key="class_nodes",
    )


def live(lab: ui_state.Lab) -> None:
    """What changes while the class trains; redrawn every REFRESH_S (IDLE_REFRESH_S when nothing trains or waits)."""
    store = lab.jobs.store
    if store is None:
        st.error(run_views.store_problem(store))
        return
    st.subheader("Training now")
    now_training(lab)
    where_runs_train(lab)
    try:
        queue(lab)
        leaderboard(lab, store)
    except RunStoreError as err:
        st.error(f"The run history cannot be read: {err}")
    if lab.settings.gallery:
        show_gallery()


def live_and_queue_controls(lab: ui_state.Lab) -> None:
    """One fragment redraws the class's live view and the teacher's queue controls below it: a second fragment
    on its own timer made the leaderboard miss a finished run now and then in the real-browser test."""
    lab = ui_state.open_lab(st.cache_resource, st.session_state)  # the class settings may have changed meanwhile
    live(lab)
    st.subheader("Teacher")
    if lab.viewer.teacher:
        st.caption("You are the teacher: these controls change the lab for everyone.")
        teacher_panel.queue_controls(lab)


start_page("Class")
lab = open_lab()

st.title("Class")
join_panel()
busy = bool(lab.jobs.active) or bool(lab.jobs.store and lab.jobs.waiting())
refresh = REFRESH_S if busy else IDLE_REFRESH_S
st.fragment(live_and_queue_controls, run_every=refresh)(lab)
teacher_panel.panel(lab)
teacher_panel.show_result()
