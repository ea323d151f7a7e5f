"""The teacher's controls on the Class page: the key that makes a teacher, caps on runs, the queue, the class model."""

from __future__ import annotations

import streamlit as st

from cifar_lab.config import ARCHS, PRESETS
from cifar_lab.dashboard import ui_state
from cifar_lab.labels import visible
from cifar_lab.roles import NotAllowed, teacher_key_set
from cifar_lab.runs import RunRecord, RunStoreError
from cifar_lab_ui.gallery_view import class_gallery
from cifar_lab_ui.participant import TEACHER_KEY


def key_field() -> None:
    """Where a teacher types CIFAR_LAB_TEACHER_KEY (set on the server); the page reruns as the teacher."""
    if not teacher_key_set():
        st.caption(
            "You are a participant. The teacher is whoever uses the lab on the server machine itself, or, when "
            "the server sets CIFAR_LAB_TEACHER_KEY, whoever types that key here."
        )
        return
    st.text_input(
        "Teacher key", type="password", key=TEACHER_KEY, help="the value of CIFAR_LAB_TEACHER_KEY on the server"
    )
    if st.session_state.get(TEACHER_KEY):
        st.error("That is not the teacher key.")


QUEUE_RESULT = "class_queue_result"  # shown inside the queue's controls, which redraw on their own


def act(action, success: str, result: str = "class_result") -> None:
    """Run a teacher's action, remembering its outcome for the next run of the page (or of the fragment)."""
    try:
        action()
    except (NotAllowed, RunStoreError, ValueError) as err:
        st.session_state[result] = ("error", str(err))
    else:
        st.session_state[result] = ("success", success)


def show_result(result: str = "class_result") -> None:
    kind, message = st.session_state.pop(result, (None, ""))
    if kind:
        getattr(st, kind)(message)


def act_and_redraw(action, success: str) -> None:
    act(action, success, QUEUE_RESULT)
    st.rerun()  # the whole page


def queue_controls(lab: ui_state.Lab) -> None:
    """Pause or resume the queue, move a run up, take one out, stop the running one. Redrawn with the live view:
    a run queued from a phone, or one that just started, appears here without the teacher reloading."""
    jobs, viewer = lab.jobs, lab.viewer
    paused = lab.settings.paused
    # Each action redraws the whole page, not only these controls: the queue and what trains show its effect at once.
    if st.button(
        "Resume the queue" if paused else "Pause the queue",
        help="paused, the queue starts no new run; the one training goes on",
    ):
        act_and_redraw(
            lambda: jobs.set_class(by=viewer, paused=not paused), "The queue is running." if paused else "Paused."
        )
    waiting = {q.record.id: q.record for q in jobs.waiting()}
    if waiting:
        # streamlit's stub: its `options: Sequence[Never]` overload (-> None) matches any options under mypy
        run_id: str = st.selectbox(  # type: ignore[assignment]
            "Queued run",
            list(waiting),
            key="class_queued",
            format_func=lambda i: _label(waiting[i]),
        )
        up, out = st.columns(2)
        if up.button("Move up"):
            act_and_redraw(lambda: jobs.move_up(run_id, by=viewer), f"Moved {run_id} up.")
        if out.button("Take out of the queue"):
            act_and_redraw(lambda: jobs.stop(run_id, by=viewer), f"Took {run_id} out of the queue.")
    for job in jobs.active:
        run_id = job.plan.run_id or job.name
        if st.button(f"Stop {visible(job.name)} ({visible(job.owner) or 'no owner'})", key=f"class_stop_{run_id}"):
            act_and_redraw(lambda job=job: job.stop(), f"Asked {run_id} to stop.")
    show_result(QUEUE_RESULT)


def caps_form(lab: ui_state.Lab) -> None:
    """Limits on participants' runs; the Train page refuses what exceeds them, naming the limit."""
    settings = lab.settings
    with st.form("class_caps"):
        presets = st.multiselect(
            "Presets allowed", list(PRESETS), default=list(settings.presets), help="none chosen: every preset"
        )
        archs = st.multiselect(
            "Architectures allowed", list(ARCHS), default=list(settings.archs), help="none chosen: every one"
        )
        left, mid, right = st.columns(3)
        epochs = left.number_input("Most epochs", 0, 500, settings.max_epochs, help="0: no limit")
        minutes = mid.number_input(
            "Most minutes per run", 0.0, 600.0, float(settings.max_minutes), 0.5, help="estimated here; 0: no limit"
        )
        runs = right.number_input(
            "Runs per participant", 1, 20, settings.runs_per_participant, help="queued or running"
        )
        if st.form_submit_button("Save the limits"):
            act(
                lambda: lab.jobs.set_class(
                    by=lab.viewer,
                    presets=presets,
                    archs=archs,
                    max_epochs=int(epochs),
                    max_minutes=float(minutes),
                    runs_per_participant=int(runs),
                ),
                "Saved: participants' runs now keep to these limits.",
            )
            st.rerun()


def class_model(lab: ui_state.Lab) -> None:
    """The model every participant classifies with, unless they pick another for themselves."""
    names = {p.name: p for p in lab.models}
    options = ["", *names]
    current = lab.settings.class_model if lab.settings.class_model in names else ""
    # streamlit's stub: its `options: Sequence[Never]` overload (-> None) matches any options under mypy
    chosen: str = st.selectbox(  # type: ignore[assignment]
        "Class model",
        options,
        index=options.index(current),
        format_func=lambda n: n or "the shipped model",
        help="what everyone classifies with, unless they pick another for themselves on the Models page",
        key="class_model_choice",
    )
    if chosen != current:
        act(
            lambda: lab.jobs.set_class(by=lab.viewer, class_model=chosen),
            f"Everyone now uses {chosen or 'the shipped model'}.",
        )
        st.rerun()


def board_controls(lab: ui_state.Lab) -> None:
    """Hide entries from the leaderboard or put them back, clear it, and the validation hold-out."""
    jobs, viewer, settings = lab.jobs, lab.viewer, lab.settings
    finished = {r.id: r for r in lab.jobs.store.list_runs(status="completed")} if lab.jobs.store else {}
    if finished:
        shown = [i for i, r in finished.items() if not r.hidden]
        kept: list[str] = st.multiselect(
            "On the leaderboard",
            list(finished),
            default=shown,
            format_func=lambda i: _label(finished[i]),
            help="take a run off the leaderboard, or put it back; its record stays on the Runs page",
            key="class_board_kept",
        )
        left, right = st.columns(2)
        if left.button("Save the leaderboard", disabled=sorted(kept) == sorted(shown)):
            act(lambda: _show_only(lab, list(finished), kept), "The leaderboard is updated.")
            st.rerun()
        if right.button("Clear the leaderboard", disabled=not shown, help="hides every finished run"):
            act(lambda: jobs.hide(shown, by=viewer), f"Cleared: {len(shown)} run(s) hidden.")
            st.session_state.pop("class_board_kept", None)
            st.rerun()
    validation = st.toggle(
        "Rank by a validation hold-out",
        value=settings.validation,
        help="new runs keep some training images out to score on; test accuracies stay hidden until you reveal them",
    )
    if validation != settings.validation:
        act(lambda: jobs.set_class(by=viewer, validation=validation, revealed=not validation), "Saved.")
        st.rerun()
    if settings.validation and not settings.revealed and st.button("Reveal the test accuracies"):
        act(lambda: jobs.set_class(by=viewer, revealed=True), "Test accuracies are shown to everyone.")
        st.rerun()


def _label(record: RunRecord) -> str:
    """e.g. "Ada · classroom · lr 2 (261207-5d06)": the owner once, where the run's name does not start with it."""
    owner, name = visible(record.owner) or "?", visible(record.name)
    return f"{name if name.startswith(owner) else f'{owner} · {name}'} ({record.id})"


def _show_only(lab: ui_state.Lab, every: list[str], kept: list[str]) -> None:
    lab.jobs.hide([i for i in every if i not in kept], by=lab.viewer)
    lab.jobs.hide(kept, by=lab.viewer, hidden=False)


def panel(lab: ui_state.Lab) -> None:
    """The teacher's controls after the queue's (which redraw with the Class page's live view); a participant
    sees only the key field."""
    if not lab.viewer.teacher:
        key_field()
        return
    caps_form(lab)
    class_model(lab)
    board_controls(lab)
    gallery = st.toggle(
        "Class gallery",
        value=lab.settings.gallery,
        help="show the latest pictures the class classified; kept in memory only",
    )
    if gallery != lab.settings.gallery:
        act(lambda: lab.jobs.set_class(by=lab.viewer, gallery=gallery), "Gallery " + ("on." if gallery else "off."))
        if not gallery:
            class_gallery().clear()  # off means gone: nothing of the class's pictures is kept
        st.rerun()
    if lab.settings.gallery and st.button("Clear the gallery"):
        class_gallery().clear()
        st.session_state["class_result"] = ("success", "The gallery is empty.")
        st.rerun()
