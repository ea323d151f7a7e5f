"""The pages with a damaged run row or a damaged database file: words on the page, never a traceback (AppTest)."""

from __future__ import annotations

import os
import sqlite3

import pytest
import streamlit as st
from apptest_helpers import PARTICIPANT, ROOT, button_starting, open_page, stop_everything
from conftest import TINY_RUN
from streamlit.testing.v1 import AppTest

from cifar_lab.checkpoint import save_checkpoint
from cifar_lab.dashboard import run_views, ui_state
from cifar_lab.data import synthetic_data
from cifar_lab.events import EpochEnd, Step
from cifar_lab.models import build_model
from cifar_lab.runs import RunStore

TINY = TINY_RUN.replace(epochs=3)
PAGES = {"Home": None, "Train": "pages/2_Train.py", "Runs": "pages/6_Runs.py", "Models": "pages/5_Models.py"}


@pytest.fixture(autouse=True)
def lab_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFAR_LAB_RUNS_DB", str(tmp_path / "runs" / "cifar_lab.db"))
    monkeypatch.chdir(tmp_path)
    st.cache_resource.clear()
    yield tmp_path / "runs"
    stop_everything(manager())


def manager():
    return st.cache_resource(ui_state.job_manager)(str(ui_state.runs_dir().resolve()))


def stopped_run(store: RunStore, name: str, runs_dir) -> str:
    """A stopped run after one epoch, with its checkpoint: offered for resume."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(
        runs_dir / f"{name}.pth", build_model(TINY), TINY, classes=synthetic_data(10, 10).classes, epoch=1
    )
    run_id = store.create_run(TINY, name, "synthetic", path, owner=PARTICIPANT)
    listen = store.listener(run_id)
    listen(Step(1, 12, 1, 2.0, 0.05, 10.0, 0.1))
    listen(EpochEnd(1, 3, 2.0, 0.3, 2.1, 0.25, 1.5, 2.0))
    store.finish(run_id, "stopped", message="stopped by request after 1 epoch(s)")
    return run_id


def damage(store: RunStore, run_id: str, sql: str) -> None:
    with sqlite3.connect(store.path) as conn:
        conn.execute(f"UPDATE runs SET {sql} WHERE id = ?", [run_id])


def open_any(page: str | None) -> AppTest:
    """The page, or the home page alone for None; either raised nothing."""
    if page is None:
        at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
        assert not at.exception, [e.value for e in at.exception]
        return at
    return open_page(page)


def test_runs_page_lists_a_damaged_run_as_damaged_and_cannot_compare_or_resume_it(lab_env):
    store = manager().store
    good = stopped_run(store, "good", lab_env)
    bad = stopped_run(store, "bad", lab_env)
    damage(store, bad, "config='{bad'")
    at = open_page(PAGES["Runs"])
    rows = at.dataframe[0].value.set_index("id")
    assert rows.loc[bad, "status"] == "damaged" and "config is not valid JSON" in rows.loc[bad, "message"]
    assert rows.loc[good, "status"] == "stopped"
    assert at.multiselect(key="compare").value == [good]
    assert not any(bad in option for option in at.multiselect(key="compare").options)
    at.selectbox(key="manage_run").set_value(bad).run()
    assert not at.exception
    assert any(
        bad in e.value and "config is not valid JSON" in e.value and "runs --check --repair" in e.value
        for e in at.error
    )
    assert button_starting(at, "Resume").disabled
    at.selectbox(key="manage_run").set_value(good).run()
    assert not button_starting(at, "Resume").disabled


def test_train_page_leaves_a_damaged_run_out_of_the_resume_list(lab_env):
    store = manager().store
    good = stopped_run(store, "good", lab_env)
    bad = stopped_run(store, "bad", lab_env)
    damage(store, bad, "metrics='{'")
    at = open_page(PAGES["Train"])
    options = at.selectbox(key="resume_run").options
    assert any(good in o for o in options) and not any(bad in o for o in options)


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_works_beside_a_damaged_row(lab_env, page):
    store = manager().store
    stopped_run(store, "good", lab_env)
    damage(store, stopped_run(store, "bad", lab_env), "config='{bad', status='lost'")
    at = open_any(PAGES[page])
    assert not at.exception and not [e for e in at.error if "damaged" not in e.value]


@pytest.mark.parametrize("page", ["Home", "Train", "Runs"])
def test_a_database_damaged_while_serving_is_shown_in_words(lab_env, page):
    store = manager().store
    stopped_run(store, "good", lab_env)
    open_any(PAGES[page])  # the server is up and has read the history
    size = store.path.stat().st_size
    with open(store.path, "r+b") as f:
        f.write(os.urandom(size))
    at = open_any(PAGES[page])
    assert not at.exception
    messages = [e.value for e in at.error]
    assert any("file is not a database" in m and "damaged: move it away" in m for m in messages), messages


def test_run_views_shows_a_damaged_row_in_the_table(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    bad = store.create_run(TINY, "bad")
    damage(store, bad, "test_accuracy='abc'")
    (row,) = run_views.run_rows(store.list_runs())
    assert row["status"] == "damaged" and row["test accuracy"] == "not scored"
    assert "test_accuracy 'abc' is not a number" in row["message"]
