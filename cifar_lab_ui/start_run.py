"""Starting a run from a page: the participant's name, the class's caps, the time it will take, then the queue."""

from __future__ import annotations

import json
import threading

from cifar_lab.budget import measured_seconds
from cifar_lab.class_caps import caps_problems
from cifar_lab.config import TrainConfig
from cifar_lab.dashboard import ui_state
from cifar_lab.dashboard.leaderboard import run_label
from cifar_lab.data import DataError
from cifar_lab.devices import resolve_device
from cifar_lab.run_files import SaveError
from cifar_lab.runs import RunStoreError

NO_NAME = "Type your name in the sidebar first: the class sees it beside your run."
MOST_MEASURED = 64  # settings whose measured time the server keeps
# Seconds of a run timed here with "Measure it here", by settings and data source: the machine's, so every session's.
_MEASURED: dict[tuple[str, str], float] = {}
_MEASURING = threading.Lock()  # one measurement at a time: two at once would each read the machine half as fast


def queue_run(lab: ui_state.Lab, config: TrainConfig, preset: str) -> str:
    """Queue `config` for this session's participant; returns why it was refused ("" when queued)."""
    viewer = lab.viewer
    if not viewer.owner:
        return NO_NAME
    if not viewer.teacher and (problems := caps_problems(config, preset, lab.settings, estimate(lab, config))):
        return " ".join(problems)
    try:
        lab.jobs.submit(
            config,
            owner=viewer.owner,
            data=lab.load_data(),
            source=lab.source,
            preset=preset,
            name=run_label(viewer.owner, preset, config),
            limit=None if viewer.teacher else lab.settings.runs_per_participant,
        )
    except (DataError, SaveError, RunStoreError, ValueError) as err:  # each names its fix; QueueFull the limit
        return str(err)
    return ""


def estimate(lab: ui_state.Lab, config: TrainConfig) -> float | None:
    """Estimated seconds for `config` here: its time budget, else from the runs this machine has finished, else from
    a few of its steps timed with measure_here; None before any of these."""
    try:
        from_runs = lab.jobs.estimate_seconds(config, lab.source)
    except RunStoreError:
        from_runs = None
    return from_runs if from_runs is not None else _MEASURED.get(_measured_key(config, lab.source))


def measure_here(lab: ui_state.Lab, config: TrainConfig) -> str:
    """Time a few steps of `config` on this machine for estimate(); returns why it could not ("" when done)."""
    try:
        data = lab.load_data()
        with _MEASURING:
            seconds = measured_seconds(config, data, resolve_device(config.device))
    except (DataError, ValueError) as err:  # e.g. no data, or the settings do not run here; each names its fix
        return f"The time could not be measured: {err}"
    if len(_MEASURED) >= MOST_MEASURED:
        _MEASURED.pop(next(iter(_MEASURED)))
    _MEASURED[_measured_key(config, lab.source)] = seconds
    return ""


def _measured_key(config: TrainConfig, source: str) -> tuple[str, str]:
    """The settings that decide a run's time: the seed and the budget do not."""
    return json.dumps(config.replace(seed=0, minutes=0.0).to_dict(), sort_keys=True), source
