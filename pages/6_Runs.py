"""Runs: every recorded run (dashboard and CLI); compare curves and configs; rename, delete, export, resume one."""

from __future__ import annotations

import streamlit as st

from cifar_lab.dashboard import plots, run_views, ui_state
from cifar_lab.dashboard.leaderboard import hides_test
from cifar_lab.labels import visible
from cifar_lab.resume import resume_problem
from cifar_lab.roles import NotAllowed
from cifar_lab.runs import STATUSES, RunRecord, RunStore, RunStoreError
from cifar_lab_ui.lab import open_lab
from cifar_lab_ui.navigation import start_page

TRAIN_PAGE = "pages/2_Train.py"
COMPARED_AT_FIRST = 2  # the newest runs with an epoch recorded, so the charts show something at once
COLUMNS = {
    "epochs": st.column_config.NumberColumn(help="epochs finished"),
    "of": st.column_config.NumberColumn(help="epochs planned"),
    "test accuracy": st.column_config.TextColumn(help="whole test set, once completed", alignment="right"),
    "started": st.column_config.TextColumn(help="local time of this server"),
}


def forget_deleted(key: str, runs: dict[str, RunRecord], default: str | list[str]) -> None:
    """A widget's remembered run id(s), less runs deleted meanwhile (here, in another session or by the CLI)."""
    value = st.session_state.get(key, default)
    if isinstance(value, list):
        st.session_state[key] = [i for i in value if i in runs]
    else:
        st.session_state[key] = value if value in runs else default


def compare(store: RunStore, runs: dict[str, RunRecord], smoothing: float) -> None:
    """Overlaid curves, the config fields that differ, and the metrics to download."""
    forget_deleted("compare", runs, [i for i, r in runs.items() if r.epochs_done][:COMPARED_AT_FIRST])
    chosen = [
        runs[i]
        for i in st.multiselect(
            "Compare runs", list(runs), key="compare", format_func=lambda i: run_views.label(runs[i])
        )
    ]
    if not chosen:
        st.caption("Pick runs to overlay their curves and compare their configs.")
        return
    curves = run_views.curves(store, chosen)
    left, right = st.columns(2)
    left.plotly_chart(plots.runs_loss_figure(curves, smoothing=smoothing), key="runs_loss")
    right.plotly_chart(plots.runs_accuracy_figure(curves), key="runs_accuracy")
    labels = [run_views.label(r) for r in chosen]
    diff = run_views.config_diff(dict(zip(labels, (r.config for r in chosen))))
    if len(chosen) > 1:
        st.markdown("**Config fields that differ**" if diff else "Their configs are identical.")
        if diff:
            st.dataframe(run_views.diff_rows(diff, labels), hide_index=True, key="config_diff")
    ids = [r.id for r in chosen]
    a, b = st.columns(2)
    a.download_button(
        "Metrics per epoch (CSV)",
        lambda: store.export_csv(ids),
        on_click="ignore",
        file_name=run_views.export_name(chosen, "csv"),
        mime="text/csv",
    )
    b.download_button(
        "Everything recorded (JSON)",
        lambda: store.export_json(ids),
        on_click="ignore",
        file_name=run_views.export_name(chosen, "json"),
        mime="application/json",
    )


def rename(lab: ui_state.Lab, run_id: str) -> None:
    """Only the name shown changes: files keep their names, so no text typed here becomes a path."""
    name = st.session_state[f"name_{run_id}"]
    try:
        lab.jobs.rename(run_id, name, by=lab.viewer)
        st.session_state["runs_result"] = ("success", f"Run {run_id} is now called {name.strip()!r}.")
    except (NotAllowed, ValueError) as err:
        st.session_state["runs_result"] = ("error", str(err))


def ask_delete(run_id: str) -> None:
    st.session_state["delete_pending"] = run_id


def cancel_delete() -> None:
    st.session_state.pop("delete_pending", None)


def delete(lab: ui_state.Lab, run_id: str, with_file: bool) -> None:
    try:
        removed = lab.jobs.delete(run_id, by=lab.viewer, delete_checkpoint=with_file)
        st.session_state["runs_result"] = (
            "success",
            f"Deleted run {run_id}" + (" and its checkpoint." if removed else "; its checkpoint is kept."),
        )
    except (NotAllowed, RunStoreError) as err:
        st.session_state["runs_result"] = ("error", str(err))
    cancel_delete()


def confirm_delete(lab: ui_state.Lab, run: RunRecord) -> None:
    """The second step of a delete: what goes, and an explicit yes."""
    file = run_views.checkpoint_file(run, lab.jobs.runs_dir)
    st.warning(f"Delete run **{run_views.label(run)}**? Its metrics leave the history; this cannot be undone.")
    with_file = file is not None and st.checkbox(f"Also delete its checkpoint {file.name}", key="delete_file")
    yes, no = st.columns(2)
    yes.button("Yes, delete it", type="primary", on_click=delete, args=(lab, run.id, with_file))
    no.button("Cancel", on_click=cancel_delete)


def manage(lab: ui_state.Lab, runs: dict[str, RunRecord]) -> None:
    """One run: rename, download its checkpoint, stop or resume it, delete it (its owner or the teacher)."""
    forget_deleted("manage_run", runs, next(iter(runs)))
    # streamlit's stub: its `options: Sequence[Never]` overload (-> None) matches any options under mypy
    run_id: str = st.selectbox(  # type: ignore[assignment]
        "Run", list(runs), key="manage_run", format_func=lambda i: run_views.label(runs[i])
    )
    run = runs[run_id]
    if run.damaged:
        st.error(run_views.damaged_note(run))
    else:
        owner = f" · started by {visible(run.owner)}" if run.owner else ""
        st.caption(f"{run.status}{owner}" + (f": {run.message}" if run.message else ""))
    allowed = lab.viewer.may_manage(run.owner)
    not_yours = "" if allowed else f"only {visible(run.owner) or 'its owner'} or the teacher can change this run"
    if not_yours:  # said in words too: a phone shows no tooltip on a disabled button
        st.caption(f"You can look at this run, not change it: {not_yours}.")
    name, act = st.columns(2)
    name.text_input("New name", value=run.name, key=f"name_{run.id}", max_chars=100, disabled=not allowed)
    name.button("Rename", on_click=rename, args=(lab, run.id), disabled=not allowed, help=not_yours or None)
    file = run_views.checkpoint_file(run, lab.jobs.runs_dir)
    if file is not None:
        act.download_button(
            f"Download checkpoint ({file.stat().st_size / 1e6:.1f} MB)",
            file.read_bytes,
            file_name=file.name,
            mime="application/octet-stream",
            on_click="ignore",
        )
    else:
        act.caption("No checkpoint to download: " + run_views.no_checkpoint_reason(run, lab.jobs.runs_dir))
    if run.status in ("queued", "running"):
        label = "Take it out of the queue" if run.status == "queued" else "Stop it"
        if act.button(label, disabled=not allowed, help=not_yours or None):
            try:
                lab.jobs.stop(run.id, by=lab.viewer)
            except (NotAllowed, RunStoreError) as err:
                st.session_state["runs_result"] = ("error", str(err))
            st.rerun()
    else:
        why_not = not_yours or resume_problem(run)
        if act.button("Resume from its last finished epoch", disabled=bool(why_not), help=why_not or None):
            try:
                lab.jobs.requeue(run.id, by=lab.viewer)
            except (NotAllowed, ValueError) as err:  # RunStoreError, QueueFull
                st.session_state["runs_result"] = ("error", str(err))
            else:
                st.switch_page(TRAIN_PAGE)
        if why_not and allowed and run.status != "completed":  # a finished run needs no resuming
            act.caption(f"Cannot resume: {why_not}.")
    if st.session_state.get("delete_pending") == run.id:
        confirm_delete(lab, run)
    else:
        busy = run.status == "running"
        act.button(
            "Delete this run...",
            disabled=busy or not allowed,
            on_click=ask_delete,
            args=(run.id,),
            help=not_yours or ("stop it first" if busy else None),
        )


def show_result() -> None:
    """The outcome of the last rename or delete (set by its callback before this run)."""
    kind, message = st.session_state.pop("runs_result", (None, ""))
    if kind:
        getattr(st, kind)(message)


start_page("Runs", controls=True)
lab = open_lab()
statuses = st.sidebar.multiselect(
    "Status",
    [*STATUSES, "damaged"],
    default=[*STATUSES, "damaged"],
    key="runs_status",
    help="damaged: a row that cannot be read whole",
)
search = st.sidebar.text_input("Search name or id", key="runs_search")
smoothing = st.sidebar.slider(
    "Loss smoothing",
    0.0,
    0.99,
    plots.SMOOTHING,
    0.01,
    help="weight of the past in the moving average of the loss curves; 0 = raw",
)

st.title("Runs")

store = lab.jobs.store
if store is None:
    st.error(run_views.store_problem(store))
    st.stop()
try:
    gone = store.mark_interrupted()  # runs whose process died (server killed, laptop closed) since the last look
    runs = {r.id: r for r in store.list_runs()}
    shown = [r for r in store.list_runs(search=search.strip()) if run_views.status_of(r) in statuses]
except RunStoreError as err:  # e.g. a damaged database file; the message says what to do
    st.error(str(err))
    st.stop()
if gone:
    st.info(
        f"{len(gone)} run(s) whose process ended without finishing are now marked interrupted (or failed, when "
        "the kernel stopped them for memory): resume them below."
    )
if not runs:
    show_result()  # e.g. the delete of the last run
    st.info("No runs yet: train one on the Train page, or with `python -m cifar_lab train`.")
    st.stop()

rows = run_views.run_rows(shown)
if hides_test(lab.settings) and not lab.viewer.teacher:  # the class ranks by a hold-out until the reveal
    rows = [{k: v for k, v in row.items() if k != "test accuracy"} for row in rows]
st.dataframe(rows, hide_index=True, column_config=COLUMNS, key="runs_table")
st.caption(f"{len(shown)} of {len(runs)} runs, newest first; click a column header to sort.")

st.subheader("Compare")
compare(store, {i: r for i, r in runs.items() if not r.damaged}, smoothing)  # a damaged row's config is not known

st.subheader("Manage a run")
manage(lab, runs)
show_result()
