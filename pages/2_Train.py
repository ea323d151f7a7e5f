"""Train: a form built from TrainConfig, Start/Stop, and live charts of the running job."""

from __future__ import annotations

from types import SimpleNamespace

import streamlit as st

from cifar_lab.config import CLASSROOM_TWO_MINUTES_FP32, PRESETS, SETTINGS, TrainConfig, preset
from cifar_lab.dashboard import plots, ui_state
from cifar_lab.dashboard.job_view import JobSnapshot
from cifar_lab.dashboard.jobs import JobBusyError, TrainingJob
from cifar_lab.data import DataError
from cifar_lab.devices import bf16_slowdown, slow_cpu_note
from cifar_lab.labels import visible
from cifar_lab.limits import machine_notes
from cifar_lab.run_files import SaveError
from cifar_lab.runs import RunStoreError
from cifar_lab_ui.navigation import start_page

DEFAULT_PRESET = "classroom"


def load_preset(**changes: object) -> None:
    """Fill every form field from the chosen preset (called when the preset changes), with any changes."""
    for name, value in ui_state.form_values(preset(st.session_state["preset"], **changes).to_dict()).items():
        st.session_state[f"cfg_{name}"] = value


def load_two_minute_classroom() -> None:
    """classroom cut to about two minutes where training runs in fp32 (see slow_cpu_note)."""
    st.session_state["preset"] = "classroom"
    load_preset(**CLASSROOM_TWO_MINUTES_FP32)


def restore_form() -> None:
    """Widget values are dropped when another page is shown; bring back the last ones used here (a field the
    remembered form lacks, as one added since, takes the default preset's value)."""
    saved = {**preset(DEFAULT_PRESET).to_dict(), **(st.session_state.get("train_form") or {})}
    st.session_state.setdefault("preset", st.session_state.get("train_preset", DEFAULT_PRESET))
    for name, value in ui_state.form_values(saved).items():
        st.session_state.setdefault(f"cfg_{name}", value)


def field_widget(name: str, current: SimpleNamespace) -> None:
    """The widget its setting calls for. Number inputs only refuse negatives: config_form names any other bad value,
    where the widget's own bounds would silently clamp it."""
    setting, key, label = SETTINGS[name], f"cfg_{name}", name.replace("_", " ")
    help_text, applies = ui_state.field_help(name, current)
    if setting.choices:
        st.selectbox(label, list(setting.choices), key=key, help=help_text)
    elif setting.kind is bool:
        st.checkbox(label, key=key, help=help_text, disabled=not applies)
    elif setting.kind is int:
        st.number_input(label, step=1, min_value=0, key=key, help=help_text, disabled=not applies)
    else:
        st.number_input(
            label, step=setting.step or 0.01, min_value=0.0, format="%g", key=key, help=help_text, disabled=not applies
        )


def config_form() -> TrainConfig | None:
    """The form, one column per section; returns the config, or None after showing why it is invalid."""
    st.selectbox(
        "Preset",
        list(PRESETS),
        key="preset",
        on_change=load_preset,
        help="a starting point; every field below can still be changed",
    )
    current = SimpleNamespace(**{name: st.session_state[f"cfg_{name}"] for name in SETTINGS})
    sections = ui_state.form_sections()
    for column, (section, names) in zip(st.columns(len(sections)), sections.items(), strict=True):
        with column:
            st.markdown(f"**{section}**")
            for name in names:
                field_widget(name, current)
    values = {name: st.session_state[f"cfg_{name}"] for name in SETTINGS}
    st.session_state["train_form"], st.session_state["train_preset"] = values, st.session_state["preset"]
    try:
        config = TrainConfig(**values)
    except ValueError as err:
        st.error(f"Fix the form: {err}")
        return None
    if why := bf16_slowdown(config.precision, config.device):
        st.warning(f"Precision: {why}.")
    for note in machine_notes(config):  # e.g. more threads asked for than the machine has cores
        st.caption(f"Note: {note}")
    return config


def start(lab: ui_state.Lab, config: TrainConfig) -> None:
    """Start a job, or remember why not (shown after the rerun)."""
    st.session_state.pop("busy", None)
    st.session_state.pop("start_error", None)
    try:
        lab.jobs.start(config, data=lab.load_data(), source=lab.source)
    except JobBusyError as err:
        st.session_state["busy"] = str(err)
    except (DataError, SaveError, RunStoreError, ValueError) as err:  # each names its fix
        st.session_state["start_error"] = str(err)


def resume_section(lab: ui_state.Lab) -> None:
    """Stopped, interrupted or failed runs (from here or the CLI) can continue from their last finished epoch."""
    if lab.jobs.running is not None:
        return
    try:
        runs = lab.jobs.resumable()  # damaged rows and runs that ran out of memory are left out
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
                lab.jobs.resume(run.id)
            except (JobBusyError, RunStoreError, SaveError, ValueError) as err:
                st.session_state["start_error"] = str(err)
            st.rerun()


def live_view(job: TrainingJob, was_done: bool) -> None:
    """Redrawn every ui_state.live_refresh_s while the job runs; reads a snapshot, never the worker's objects."""
    snap = job.snapshot()
    st.subheader(f"Run {snap.name}" + (f" ({snap.run_id})" if snap.run_id else ""))
    st.progress(snap.progress, text=ui_state.progress_text(snap))
    if snap.status == "running" and st.button("Stop", type="secondary", key="stop"):
        job.stop()
        job.join(timeout=2.0)
        st.rerun()
    left, right = st.columns(2)
    left.plotly_chart(plots.loss_figure(snap.losses, snap.epochs), key="loss_chart")
    right.plotly_chart(plots.accuracy_figure(snap.epochs), key="accuracy_chart")
    if snap.done and not was_done:
        st.rerun()  # the whole page, once: shows the outcome and stops the timer
    outcome(snap)


def outcome(snap: JobSnapshot) -> None:
    if snap.status == "completed":
        st.success(
            f"Finished: test accuracy {snap.test_accuracy:.1%} on the whole test set. Saved to {snap.checkpoint}."
        )
    elif snap.status == "stopped":
        kept = f"kept the checkpoint of epoch {snap.saved_epoch}" if snap.checkpoint else "no epoch had finished"
        st.warning(f"Stopped: {kept}.")
    elif snap.status == "failed":
        st.error(f"Training failed: {snap.message}")


start_page("Train")
lab = ui_state.open_lab(st.cache_resource, st.session_state)
restore_form()

st.title("Train")
st.caption(f"Data: {lab.source}")
if note := slow_cpu_note():
    st.caption(note)
    st.button("Fill the form with the two-minute classroom setting", on_click=load_two_minute_classroom)

job = lab.jobs.current
if job is not None:
    done = job.done
    st.fragment(live_view, run_every=None if done else ui_state.live_refresh_s(job.config))(job, done)

config = config_form()
if config is not None:
    params, macs = st.cache_data(max_entries=64, show_spinner=False)(ui_state.model_cost)(
        config.arch, config.width, config.depth, config.batchnorm
    )
    a, b = st.columns(2)
    a.metric("Parameters", f"{params:,}")
    b.metric("Multiply-adds per image", f"{macs / 1e6:,.1f} M")

if st.session_state.get("busy"):
    st.warning(st.session_state["busy"] + ". Its progress is shown above; you can wait for it, or stop it.")
    if st.button("Stop the running job"):
        lab.jobs.stop()
        st.session_state.pop("busy", None)
        st.rerun()
if st.session_state.get("start_error"):
    st.error(st.session_state.pop("start_error"))
if st.button("Start training", type="primary", disabled=config is None) and config is not None:
    start(lab, config)
    st.rerun()
resume_section(lab)
