"""Train: a form built from TrainConfig, Start/Stop, and live charts of the running job."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cifar_lab import run_queue
from cifar_lab.config import TrainConfig
from cifar_lab.dashboard import ui_state
from cifar_lab.dashboard.job_view import JobSnapshot, why_test_beats_train
from cifar_lab.dashboard.jobs import TrainingJob
from cifar_lab.dashboard.leaderboard import hides_test
from cifar_lab.dashboard.live_frame import live_frame
from cifar_lab.dashboard.run_views import queue_rows, starts_text
from cifar_lab.devices import slow_cpu_note
from cifar_lab.events import Finished
from cifar_lab.labels import visible
from cifar_lab.roles import NotAllowed
from cifar_lab.run_files import SaveError
from cifar_lab.runs import RunStoreError
from cifar_lab_ui.insides_view import insides_view
from cifar_lab_ui.lab import open_lab
from cifar_lab_ui.navigation import start_page
from cifar_lab_ui.start_run import NO_NAME, estimate, measure_here, queue_run
from cifar_lab_ui.train_form import config_form, restore_form, with_run_seed


def measure_button(lab: ui_state.Lab, config: TrainConfig, column) -> None:
    """Times a few steps of the form's settings, where no finished run has: a few seconds, not while a run trains
    (it would slow the run, and read the machine as slower than it is)."""
    busy = bool(lab.jobs.active)
    why_not = "wait until the run that is training ends: both would slow down" if busy else None
    if column.button("Measure it here", disabled=busy, help=why_not or "times a few steps of these settings"):
        with st.spinner("Timing a few steps of these settings on this machine..."):
            if problem := measure_here(lab, config):
                st.session_state["start_error"] = problem
        st.rerun()


def start(lab: ui_state.Lab, config: TrainConfig) -> None:
    """Queue a run for this participant, or remember why not; either is shown beside the button after the rerun,
    where a phone's reader is looking (the run itself shows at the top of the page)."""
    st.session_state.pop("start_error", None)
    if problem := queue_run(lab, with_run_seed(config), st.session_state["preset"]):
        st.session_state.pop("seed_used", None)  # nothing started: the form keeps the seed it showed
        st.session_state["start_error"] = problem
    else:
        st.session_state["start_notice"] = start_notice(lab)


def start_notice(lab: ui_state.Lab) -> str:
    try:
        waiting = lab.jobs.waiting()
    except RunStoreError:
        waiting = []
    places = [(place, q) for place, q in enumerate(waiting, 1) if lab.viewer.owns(q.record.owner)]
    if not places:
        return "Your run has started: its live charts are at the top of this page."
    place, queued = places[-1]
    when = "when the teacher resumes the queue" if lab.settings.paused else starts_text(queued.starts_in_s)
    return (
        f"Your run is queued, number {place} in line; it starts {when}. "
        "Its live charts appear at the top of this page when it trains."
    )


def resume_section(lab: ui_state.Lab) -> None:
    """Stopped, interrupted or failed runs (from here or the CLI) can continue from their last finished epoch:
    a participant sees their own, the teacher every one."""
    try:
        runs = [r for r in lab.jobs.resumable() if lab.viewer.may_manage(r.owner)]  # damaged and OOM runs left out
    except RunStoreError as err:  # e.g. the database file damaged or locked while the server runs
        st.error(f"Unfinished runs cannot be listed: {err}")
        return
    if not runs:
        return
    with st.expander(f"Unfinished runs ({len(runs)})"):
        labels = {
            f"{visible(r.name)} · {r.status} after epoch {r.epochs_done}/{r.config.get('epochs', '?')} · {r.id}": r
            for r in runs
        }
        # streamlit's stub: its `options: Sequence[Never]` overload (-> None) matches any options under mypy
        label: str = st.selectbox("Run", list(labels), key="resume_run")  # type: ignore[assignment]
        run = labels[label]
        if run.message:
            st.caption(run.message)
        if st.button("Resume from its last finished epoch"):
            try:
                lab.jobs.requeue(run.id, by=lab.viewer)
            except (NotAllowed, RunStoreError, SaveError, ValueError) as err:
                st.session_state["start_error"] = str(err)
            st.rerun()


def live_view(lab: ui_state.Lab, shown: TrainingJob, was_done: bool) -> None:
    """Redrawn every ui_state.live_refresh_s while a job runs or runs wait; reads a snapshot, never the worker's
    objects. When the queue starts the next run, the whole page redraws once to show it."""
    job = lab.jobs.current
    if job is not shown:
        st.rerun()
    assert job is not None
    show_test = not hides_test(lab.settings)  # the class ranks by a hold-out until the teacher reveals the test
    frame = live_frame(job, show_test=show_test)  # the snapshot and charts every watcher shares
    snap = frame.snapshot
    owner = f" by {visible(job.owner)}" if job.owner and not snap.name.startswith(job.owner) else ""
    st.subheader(f"Run {snap.name}{owner}" + (f" ({snap.run_id})" if snap.run_id else ""))
    st.progress(snap.progress, text=ui_state.progress_text(snap))
    st.caption(f"Seed {snap.config.seed}: the random start of this run.")
    if snap.budget:
        st.caption(snap.budget)  # "2 min budget: 2.6 s measuring this machine, then 3 epoch(s) ..."
    elif snap.status == "running" and snap.last_step is None:
        st.caption(snap.message.capitalize() + "...")  # loading the data, timing this machine for a budget
    if snap.status == "running" and lab.viewer.may_manage(job.owner) and st.button("Stop", key="stop"):
        job.stop()
        job.join(timeout=2.0)
        st.rerun()
    left, right = st.columns(2)
    left.plotly_chart(frame.loss, key="loss_chart")
    right.plotly_chart(frame.accuracy, key="accuracy_chart")
    if show_test and (note := why_test_beats_train(snap.config, snap.epochs)):
        st.caption(note)
    insides_view(frame.insides)
    queue_view(lab)
    if snap.done and not was_done:
        st.rerun()  # the whole page, once: shows the outcome and stops the timer
    outcome(snap, show_test)


def waiting_view(lab: ui_state.Lab) -> None:
    """Runs wait and none has trained since the server started (the queue is paused): the page redraws once the
    first one starts."""
    if lab.jobs.current is not None:
        st.rerun()
    queue_view(lab)


def queue_view(lab: ui_state.Lab) -> None:
    """The runs waiting, in the order they start, with estimated start times; a participant may take theirs out."""
    try:
        waiting = lab.jobs.waiting()
    except RunStoreError as err:
        st.error(f"The queue cannot be read: {err}")
        return
    if not waiting:
        return
    st.markdown(
        f"**Waiting to train ({len(waiting)})**"
        + (" · the teacher has paused the queue" if lab.settings.paused else "")
    )
    st.dataframe(queue_rows(waiting, paused=lab.settings.paused), hide_index=True, key="queue_table")
    mine = [q.record for q in waiting if lab.viewer.owns(q.record.owner)]
    for record in mine:
        if st.button(f"Take {visible(record.name)} out of the queue", key=f"leave_{record.id}"):
            try:
                lab.jobs.stop(record.id, by=lab.viewer)
            except (NotAllowed, RunStoreError) as err:
                st.session_state["start_error"] = str(err)
            st.rerun()


def saved_as(snap: JobSnapshot) -> str:
    """The file's name only: a phone has no room for the server's folders, and the Models page lists it by name."""
    return f"Saved as {Path(snap.checkpoint).name} (Models page)." if snap.checkpoint else ""


def outcome(snap: JobSnapshot, show_test: bool) -> None:
    validation = snap.final.validation_accuracy if isinstance(snap.final, Finished) else None
    if snap.status == "completed" and not show_test:
        held_out = f"validation accuracy {validation:.1%} on the held-out images" if validation is not None else ""
        st.success(f"Finished: {held_out or 'its score is on the leaderboard'}. {saved_as(snap)}")
    elif snap.status == "completed":
        st.success(f"Finished: test accuracy {snap.test_accuracy:.1%} on the whole test set. {saved_as(snap)}")
    elif snap.status == "stopped":
        kept = f"kept the checkpoint of epoch {snap.saved_epoch}" if snap.checkpoint else "no epoch had finished"
        st.warning(f"Stopped: {kept}.")
    elif snap.status == "failed":
        st.error(f"Training failed: {snap.message}")


start_page("Train")
lab = open_lab()
restore_form()

st.title("Train")
st.caption(f"Data: {lab.source}")
if note := slow_cpu_note():
    st.caption(note)

job = lab.jobs.current
try:
    waits = bool(lab.jobs.store and run_queue.waiting(lab.jobs.store))  # paused too: the teacher may resume it any time
except RunStoreError as err:  # e.g. the database file damaged while the server runs
    waits = False
    st.error(f"The queue cannot be read: {err}")
if job is not None:
    done = job.done
    refresh = None if done and not waits else ui_state.live_refresh_s(job.config)  # polls only while it changes
    st.fragment(live_view, run_every=refresh)(lab, job, done)
elif waits:
    st.fragment(waiting_view, run_every=ui_state.CPU_LIVE_REFRESH_S)(lab)

config = config_form()
if config is not None:
    params, macs = st.cache_data(max_entries=64, show_spinner=False)(ui_state.model_cost)(
        config.arch, config.width, config.depth, config.batchnorm
    )
    a, b, c = st.columns(3)
    a.metric("Parameters", f"{params:,}")
    b.metric("Multiply-adds per image", f"{macs / 1e6:,.1f} M")
    seconds = estimate(lab, config)
    c.metric(
        "Estimated time here",
        "not measured yet" if seconds is None else f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:,.1f} min",
        help="the time budget when one is set; else from the speed of the runs this machine has finished, or from "
        "a few steps of these settings timed with Measure it here",
    )
    if seconds is None:
        measure_button(lab, config, c)

if st.session_state.get("start_error"):
    st.error(st.session_state.pop("start_error"))
if st.session_state.get("start_notice"):
    st.success(st.session_state.pop("start_notice"))
if not lab.viewer.owner:
    st.info(NO_NAME)
if st.button("Start training", type="primary", disabled=config is None or not lab.viewer.owner) and config is not None:
    start(lab, config)
    st.rerun()
resume_section(lab)
