"""Starting a run from a page: the participant's name, the class's caps, then the queue."""

from __future__ import annotations

from cifar_lab.class_caps import caps_problems
from cifar_lab.config import TrainConfig
from cifar_lab.dashboard import ui_state
from cifar_lab.dashboard.leaderboard import run_label
from cifar_lab.data import DataError
from cifar_lab.run_files import SaveError
from cifar_lab.runs import RunStoreError

NO_NAME = "Type your name in the sidebar first: the class sees it beside your run."


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
    """Estimated seconds for `config` here, from the runs this machine has finished; None before any comparable."""
    try:
        return lab.jobs.estimate_seconds(config, lab.source)
    except RunStoreError:
        return None
