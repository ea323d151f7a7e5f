"""Sweep: the teacher lists a few values of two or three settings; one run per combination trains on the Ray
cluster, each scored on images held out of training; trials fill a table live, a chart shows which settings
mattered, and any trial's settings can be sent to the Train form."""

from __future__ import annotations

import streamlit as st

from cifar_lab.config import PRESETS, preset
from cifar_lab.dashboard import sweep_plots
from cifar_lab.dashboard.sweeps import SweepBusy, SweepDesk, shared_desk
from cifar_lab.executors import RayMissing, require_ray
from cifar_lab.roles import NotAllowed
from cifar_lab.runs import RunStore
from cifar_lab.sweep_record import Trial, best_of, stored_trials, sweep_ids
from cifar_lab.sweep_space import SWEEPABLE, parse_param
from cifar_lab_ui.lab import open_lab
from cifar_lab_ui.navigation import start_page

TRAIN_PAGE = "pages/2_Train.py"
REFRESH_S = 2.0
ROWS = 3  # settings a sweep varies at most from this page: beyond three, a chart no longer shows what mattered
STARTING_VALUES = {"lr": "0.5, 0.75, 1", "width": "32, 48", "label_smoothing": "0.1, 0.2"}


def sweep_form(lab, desk: SweepDesk) -> None:
    st.subheader("New sweep")
    name = str(st.selectbox("Start from preset", list(PRESETS), index=list(PRESETS).index("classroom")))
    params = []
    for row in range(ROWS):
        left, right = st.columns([1, 2])
        default = list(STARTING_VALUES)[row]
        setting = str(left.selectbox(f"Setting {row + 1}", ["(none)", *SWEEPABLE], index=SWEEPABLE.index(default) + 1))
        values = right.text_input(f"Values {row + 1}", STARTING_VALUES.get(setting, ""), key=f"sweep_values_{row}")
        if setting != "(none)" and values.strip():
            params.append(f"{setting}={values.replace(' ', '')}")
    scheduler = str(
        st.radio(
            "Weak trials",
            ["fifo", "asha"],
            horizontal=True,
            format_func=lambda s: "train every trial to the end" if s == "fifo" else "end early (ASHA)",
        )
    )
    if st.button("Start sweep", type="primary"):
        try:
            from cifar_lab.sweep import SweepSpec

            spec = SweepSpec(
                preset(name),
                tuple(parse_param(p) for p in params),
                scheduler=scheduler,
                preset=name,
                owner=lab.viewer.owner,
                data_source=lab.source,
            )
            desk.start(spec, lab.load_data(), folder=str(lab.jobs.runs_dir), store=lab.jobs.store, by=lab.viewer)
        except (ValueError, SweepBusy, NotAllowed) as err:
            st.error(str(err))


def use_config(trials: list[Trial], preset_name: str) -> None:
    """Choose a trial (the best first) and send its settings to the Train form."""
    by_id = {t.run_id: t for t in trials}
    if not by_id:
        return
    best = best_of(trials)
    labels = {rid: f"{rid}: " + ", ".join(f"{k} {v}" for k, v in t.params.items()) for rid, t in by_id.items()}
    first = list(by_id).index(best.run_id) if best else 0
    chosen = str(
        st.selectbox("Trial", list(by_id), index=first, format_func=lambda rid: labels[rid], key="sweep_trial")
    )
    if st.button("Use this config", help="fills the Train form with this trial's settings"):
        for key in [k for k in st.session_state if str(k).startswith("cfg_")]:
            del st.session_state[key]
        st.session_state["train_form"] = by_id[chosen].config
        st.session_state["train_preset"] = preset_name if preset_name in PRESETS else "classroom"
        st.session_state.pop("preset", None)
        st.switch_page(TRAIN_PAGE)


def trial_rows(trials: list[Trial]) -> list[dict[str, object]]:
    return [
        {  # what was tried and what it scored first: a phone's narrow table shows the first few columns
            **t.params,
            "validation accuracy": None if t.val_accuracy is None else round(100 * t.val_accuracy, 2),
            "status": t.status,
            "test accuracy": None if t.test_accuracy is None else round(100 * t.test_accuracy, 2),
            "epochs": t.epochs,
            "node": t.node,
            "run": t.run_id,
        }
        for t in trials
    ]


def live(desk: SweepDesk, store: RunStore) -> None:
    """The sweep running now, or any earlier one in the run store (the CLI's too, sharing the runs folder)."""
    job = desk.current
    ids = sweep_ids(store)
    if job is not None and job.sweep.id not in ids:
        ids.insert(0, job.sweep.id)
    if not ids:
        st.caption("No sweep yet.")
        return
    chosen = str(st.selectbox("Sweep", ids, key="sweep_shown"))
    if job is not None and chosen == job.sweep.id:
        trials, swept, status = job.trials(), [p.name for p in job.sweep.spec.params], job.status
        preset_name = job.sweep.spec.preset
        if job.error:
            st.error(f"The sweep stopped with an error: {job.error}")
    else:
        trials = stored_trials(store, chosen)
        swept, status = list(trials[0].params) if trials else [], "ended"
        preset_name = store.get_run(trials[0].run_id).preset if trials else ""
    st.subheader(f"{chosen}: {status}, {len(trials)} trial(s)")
    if trials:
        st.dataframe(trial_rows(trials), hide_index=True, key="sweep_trials")
    figure = sweep_plots.parallel_coordinates(trials, swept)
    if figure is not None:
        st.plotly_chart(figure, key="sweep_parcoords", config={"displayModeBar": False})
        st.caption(
            "Each line is a trial: follow it from the settings it tried to the validation accuracy it got. "
            "Trials are compared on images held out of training, never on the test set."
        )
    use_config(trials, preset_name)


start_page("Sweep")
lab = open_lab()
desk = shared_desk()
st.title("Sweep")
st.caption(
    "Try several values of two or three settings at once: each combination is a run, trained where the Ray "
    "cluster has room and scored on images held out of training. The chart shows which settings mattered."
)
try:
    require_ray()
except RayMissing as err:
    st.info(f"Sweeps run on Ray, which this server does not have: {err}. Then restart the dashboard.")
    st.stop()
if lab.viewer.teacher:
    if desk.current is not None and not desk.current.done and st.button("Stop the sweep"):
        desk.stop(by=lab.viewer)
    sweep_form(lab, desk)
else:
    st.caption("Only the teacher starts sweeps; everyone can watch them and use a trial's settings.")
if lab.jobs.store is None:
    st.error("The run history cannot be opened, so sweeps cannot be recorded; see the warning at start-up.")
    st.stop()
st.fragment(live, run_every=REFRESH_S)(desk, lab.jobs.store)
