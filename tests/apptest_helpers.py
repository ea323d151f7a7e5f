"""AppTest helpers shared by the page tests: open a page, find a button, fill the Train form."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from cifar_lab import class_settings, paths
from cifar_lab.config import SETTINGS
from cifar_lab.dashboard import ui_state
from cifar_lab.dashboard.jobs import JobManager
from cifar_lab.roles import ENV_TEACHER_KEY
from cifar_lab.runs import RunStoreError

ROOT = Path(__file__).resolve().parents[1]
PARTICIPANT = "Ada"
TEACHER_KEY = "key-for-tests"  # what a test that plays the teacher types; its fixture sets CIFAR_LAB_TEACHER_KEY


def open_page(page: str = "dashboard.py", *, name: str = PARTICIPANT, teacher: bool = False) -> AppTest:
    """Run the home page (as a browser would first), switch to `page`, and insist it raised nothing. The session
    plays the participant `name`; with `teacher`, it has typed TEACHER_KEY (the test sets CIFAR_LAB_TEACHER_KEY)."""
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.session_state["participant_name"] = name
    if teacher:
        at.session_state["teacher_key"] = TEACHER_KEY
    at.run()
    if page != "dashboard.py":
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button_starting(at: AppTest, label: str):
    """The first button whose label starts with `label`."""
    matches = [b for b in at.button if b.label.startswith(label)]
    assert matches, f"no button {label!r}; have {[b.label for b in at.button]}"
    return matches[0]


def fill_train_form(at: AppTest, values: dict[str, Any]) -> AppTest:
    """Set the Train form's widgets to `values`, after switching to the cnn (which decides the fields that apply)."""
    at.selectbox(key="cfg_arch").set_value("cnn").run()
    for name, value in values.items():
        if SETTINGS[name].choices:
            at.selectbox(key=f"cfg_{name}").set_value(value)
        elif isinstance(value, bool):
            at.checkbox(key=f"cfg_{name}").set_value(value)
        else:
            at.number_input(key=f"cfg_{name}").set_value(value)
    return at.run()


def stop_everything(jobs: JobManager) -> None:
    """A page test's teardown: pause the queue so that nothing starts after the stop, then stop what trains."""
    if jobs.store is not None:
        with contextlib.suppress(RunStoreError):  # a test that damaged the store on purpose
            class_settings.update(jobs.store, paused=True)
    jobs.stop(timeout=5)


def lab_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Synthetic data, an empty runs folder with its own run store, no shipped model to fall back on, the teacher's
    key set (open_page(..., teacher=True) plays the teacher), fresh caches. Returns the runs folder."""
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFAR_LAB_RUNS_DB", str(tmp_path / "runs" / "cifar_lab.db"))
    monkeypatch.setenv(paths.ENV_MODELS, str(tmp_path / "models"))
    monkeypatch.setenv(ENV_TEACHER_KEY, TEACHER_KEY)
    monkeypatch.chdir(tmp_path)
    st.cache_resource.clear()
    return tmp_path / "runs"


def lab_manager() -> JobManager:
    """The process-wide JobManager (and so the run store) that the pages use."""
    return st.cache_resource(ui_state.job_manager)(str(ui_state.runs_dir().resolve()))
