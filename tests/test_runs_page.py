"""The Runs page (AppTest) and its pure helpers: table, filters, comparison, rename, delete, export, resume."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
from apptest_helpers import (
    PARTICIPANT,
    button_starting,
    lab_environment,
    lab_manager,
    open_page,
    stop_everything,
)
from conftest import TINY_RUN
from streamlit.testing.v1 import AppTest

from cifar_lab.checkpoint import save_checkpoint
from cifar_lab.config import TrainConfig
from cifar_lab.dashboard import plots, run_views
from cifar_lab.data import synthetic_data
from cifar_lab.events import EpochEnd, Finished, Step, Stopped
from cifar_lab.models import build_model
from cifar_lab.runs import RunStore, RunStoreError

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/6_Runs.py"
TINY = TINY_RUN.replace(epochs=3)


@pytest.fixture(autouse=True)
def lab_env(tmp_path, monkeypatch):
    yield lab_environment(tmp_path, monkeypatch)
    stop_everything(lab_manager())


manager = lab_manager


def record(
    store: RunStore,
    name: str,
    config: TrainConfig = TINY,
    *,
    status: str = "completed",
    epochs: int = 2,
    checkpoint: Path | None = None,
    owner: str = PARTICIPANT,
) -> str:
    """A run as the training listeners would have left it: steps, epochs, and its outcome; `owner`'s (by default
    the participant the page tests play)."""
    run_id = store.create_run(config, name, "synthetic", checkpoint, owner=owner)
    listen = store.listener(run_id)
    for epoch in range(1, epochs + 1):
        for step in range(1, 5):
            listen(Step((epoch - 1) * 4 + step, 4 * config.epochs, epoch, 2.3 / (epoch + step / 4), 0.05, 100.0, 1.0))
        listen(EpochEnd(epoch, config.epochs, 2.0 / epoch, 0.2 * epoch, 2.1 / epoch, 0.15 * epoch, 1.0, 1.0 * epoch))
    if status == "completed":
        listen(Finished(0.42, epochs, 3.0, 100.0))
    elif status == "stopped":
        listen(Stopped(epochs, 4 * epochs))
    elif status != "running":
        store.finish(run_id, status, message=f"{status} on purpose")
    return run_id


def saved_model(path: Path, config: TrainConfig = TINY) -> Path:
    return save_checkpoint(path, build_model(config), config, classes=synthetic_data(10, 10).classes, epoch=1)


def open_runs() -> AppTest:
    return open_page(PAGE)


button = button_starting


def table(at: AppTest, which: int = 0):
    """The runs table (0) or the config diff (1) as a pandas DataFrame; read-only tables carry no key."""
    return at.dataframe[which].value


def chart(at: AppTest, key: str) -> dict:
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith(key))


# --- the page ----------------------------------------------------------------------------------------------------


def test_without_runs_the_page_says_how_to_make_one():
    at = open_runs()
    assert at.title[0].value == "Runs" and "No runs yet" in at.info[0].value


def test_table_lists_every_run_with_its_columns_and_filters_by_status_and_text():
    store = manager().store
    record(store, "alpha")
    record(store, "beta", status="stopped")
    failed = record(store, "gamma", status="failed")
    at = open_runs()
    rows = table(at)
    assert list(rows.columns) == [  # what and how well first: a phone's narrow table shows those
        "name",
        "status",
        "test accuracy",
        "epochs",
        "of",
        "owner",
        "arch",
        "started",
        "device",
        "message",
        "id",
    ]
    assert list(rows["name"]) == ["gamma", "beta", "alpha"]  # newest first
    assert rows.set_index("name").loc["alpha", "test accuracy"] == " 42.0 %"
    at.sidebar.multiselect(key="runs_status").set_value(["failed"]).run()
    assert list(table(at)["id"]) == [failed] and "failed on purpose" in table(at)["message"][0]
    at.sidebar.multiselect(key="runs_status").set_value(["completed", "stopped"]).run()
    at.sidebar.text_input(key="runs_search").set_value("ET").run()  # part of "beta", any case
    assert list(table(at)["name"]) == ["beta"]
    assert "1 of 3 runs" in at.caption[0].value


def test_compare_overlays_curves_and_shows_only_the_config_fields_that_differ():
    store = manager().store
    a = record(store, "sgd-run")
    b = record(store, "adam-run", TINY.replace(opt="adam", lr=0.002), epochs=3)
    at = open_runs()
    assert at.multiselect(key="compare").value == [b, a]  # the two newest, at first
    loss, accuracy = chart(at, "runs_loss"), chart(at, "runs_accuracy")
    assert [t["name"] for t in loss["data"]] == [f"adam-run ({b})", f"sgd-run ({a})"]
    assert len(accuracy["data"]) == 4  # test and train per run
    diff = table(at, 1)
    assert list(diff["field"]) == ["opt", "lr"]
    assert diff.set_index("field").loc["lr", f"sgd-run ({a})"] == "0.05"
    labels = [d.label for d in at.get("download_button")]
    assert "Metrics per epoch (CSV)" in labels and "Everything recorded (JSON)" in labels
    at.multiselect(key="compare").set_value([a]).run()
    assert len(at.dataframe) == 1  # no diff for one run


def test_rename_changes_the_name_and_refuses_an_empty_one():
    run_id = record(manager().store, "old name")
    at = open_runs()
    at.text_input(key=f"name_{run_id}").set_value("  better name ").run()
    button(at, "Rename").click().run()
    assert manager().store.get_run(run_id).name == "better name" and "is now called" in at.success[0].value
    at.text_input(key=f"name_{run_id}").set_value("   ").run()
    button(at, "Rename").click().run()
    assert "not valid" in at.error[0].value and manager().store.get_run(run_id).name == "better name"


def test_delete_asks_first_and_removes_the_checkpoint_only_when_asked(lab_env):
    lab_env.mkdir(parents=True, exist_ok=True)
    keep, drop = saved_model(lab_env / "keep.pth"), saved_model(lab_env / "drop.pth")
    store = manager().store
    kept_run, dropped_run = record(store, "keep", checkpoint=keep), record(store, "drop", checkpoint=drop)
    at = open_runs()
    at.selectbox(key="manage_run").set_value(dropped_run).run()
    button(at, "Delete this run").click().run()
    assert "Delete run **drop" in at.warning[0].value
    button(at, "Cancel").click().run()
    assert store.get_run(dropped_run) and not at.warning
    button(at, "Delete this run").click().run()
    at.checkbox(key="delete_file").check().run()
    button(at, "Yes, delete it").click().run()
    assert "and its checkpoint" in at.success[0].value and not drop.exists()
    assert [r.id for r in store.list_runs()] == [kept_run] and at.multiselect(key="compare").value == [kept_run]
    button(at, "Delete this run").click().run()  # the page moved on to the remaining run
    button(at, "Yes, delete it").click().run()  # the checkbox left unticked: the file stays
    assert "its checkpoint is kept" in at.success[0].value and keep.exists()
    assert "No runs yet" in at.info[0].value


def test_a_running_run_cannot_be_deleted_or_resumed_only_stopped():
    record(manager().store, "busy", status="running")
    at = open_runs()
    assert button(at, "Delete this run").disabled and not button(at, "Stop it").disabled
    assert not [b for b in at.button if b.label.startswith("Resume")]


def test_a_participant_cannot_change_another_s_run_on_the_runs_page_and_the_teacher_can():
    run_id = record(manager().store, "bob's", status="stopped", owner="Bob")
    at = open_runs()
    for label in ("Rename", "Delete this run", "Resume"):
        assert button(at, label).disabled, label
    assert "only Bob or the teacher" in button(at, "Rename").help
    assert any("You can look at this run, not change it: only Bob" in c.value for c in at.caption)  # phones: no hover
    teacher = open_page(PAGE, name="", teacher=True)
    teacher.text_input(key=f"name_{run_id}").set_value("renamed by the teacher").run()
    button(teacher, "Rename").click().run()
    assert manager().store.get_run(run_id).name == "renamed by the teacher"


def test_checkpoint_download_is_offered_for_files_in_the_runs_folder_only(lab_env, tmp_path):
    lab_env.mkdir(parents=True, exist_ok=True)
    inside, outside = saved_model(lab_env / "in.pth"), saved_model(tmp_path / "out.pth")
    store = manager().store
    record(store, "outside", checkpoint=outside)
    inside_run = record(store, "inside", checkpoint=inside)
    at = open_runs()
    assert at.selectbox(key="manage_run").value == inside_run
    assert any(d.label.startswith("Download checkpoint") for d in at.get("download_button"))
    at.selectbox(key="manage_run").set_value(next(r.id for r in store.list_runs() if r.name == "outside")).run()
    assert not any(d.label.startswith("Download checkpoint") for d in at.get("download_button"))
    assert any("outside the runs folder" in c.value for c in at.caption)


def test_a_stopped_run_resumes_from_the_runs_page_and_the_train_page_shows_it():
    data = synthetic_data(n_train=128, n_test=32)
    manager().start(TINY.replace(epochs=300), data=data, source="synthetic", owner=PARTICIPANT)
    job = manager().current
    deadline = time.monotonic() + 60
    while not job.snapshot().epochs:
        assert time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.05)
    manager().stop()
    run_id = job.snapshot().run_id
    at = open_runs()
    assert at.selectbox(key="manage_run").value == run_id
    button(at, "Resume from its last finished epoch").click().run()
    resumed = manager().current
    assert resumed is not job and resumed.snapshot().run_id == run_id
    assert at.title[0].value == "Train" and run_id in at.subheader[0].value


def test_a_run_whose_config_this_version_cannot_read_is_listed_and_refused_clearly(lab_env):
    store = manager().store
    run_id = record(store, "from the future", status="interrupted", checkpoint=saved_model(lab_env / "future.pth"))
    with store.transaction() as conn:  # as a newer version of the lab might have written it
        conn.execute("UPDATE runs SET config = json_set(config, '$.arch', 'vit', '$.patch', 4) WHERE id = ?", [run_id])
    record(store, "today")
    at = open_runs()
    assert not at.exception and table(at).set_index("id").loc[run_id, "arch"] == "vit"
    diff = table(at, 1)
    assert set(diff["field"]) == {"arch", "patch"}
    at.selectbox(key="manage_run").set_value(run_id).run()
    button(at, "Resume").click().run()
    assert not at.exception and "cannot be resumed by this version" in at.error[0].value
    assert "arch='vit'" in at.error[0].value and manager().current is None


# --- the pure helpers --------------------------------------------------------------------------------------------


def test_config_diff_keeps_field_order_and_marks_missing_fields():
    a, b = TINY.to_dict(), {**TINY.to_dict(), "lr": 0.1, "width": 16, "future_field": 1}
    diff = run_views.config_diff({"a": a, "b": b})
    assert list(diff) == ["width", "lr", "future_field"]
    assert diff["future_field"] == [run_views.MISSING, 1]
    assert run_views.config_diff({"a": a, "b": dict(a)}) == {}
    assert run_views.diff_rows(diff, ["a", "b"])[0] == {"field": "width", "a": "8", "b": "16"}


def test_curves_and_rows_come_from_the_store(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run_id = record(store, "curvy", epochs=2)
    (c,) = run_views.curves(store, [store.get_run(run_id)])
    assert c.label == f"curvy ({run_id})" and c.steps.tolist() == list(range(1, 9))
    assert c.epochs.tolist() == [1, 2] and c.test_acc.tolist() == pytest.approx([0.15, 0.3])
    (row,) = run_views.run_rows(store.list_runs())
    assert (row["status"], row["epochs"], row["of"], row["test accuracy"]) == ("completed", 2, 3, " 42.0 %")
    assert len(row["started"]) == 19  # local "YYYY-MM-DD HH:MM:SS"


def test_checkpoint_file_is_none_outside_the_folder_or_when_missing(tmp_path):
    store = RunStore(tmp_path / "runs" / "db.sqlite")
    inside = saved_model(tmp_path / "runs" / "a.pth")
    outside = saved_model(tmp_path / "b.pth")
    runs = {p: store.get_run(record(store, p.stem, checkpoint=p)) for p in (inside, outside)}
    assert run_views.checkpoint_file(runs[inside], tmp_path / "runs") == inside.resolve()
    assert run_views.checkpoint_file(runs[outside], tmp_path / "runs") is None
    assert "outside the runs folder" in run_views.no_checkpoint_reason(runs[outside], tmp_path / "runs")
    inside.unlink()
    assert run_views.checkpoint_file(runs[inside], tmp_path / "runs") is None
    assert "its file, a.pth, has been deleted" in run_views.no_checkpoint_reason(runs[inside], tmp_path / "runs")
    no_file = store.get_run(record(store, "early"))
    assert "none was recorded" in run_views.no_checkpoint_reason(no_file, tmp_path / "runs")


@pytest.mark.parametrize(
    ("status", "epochs", "said"),
    [
        ("queued", 0, "this run has not started yet; its first checkpoint is saved when its first epoch ends."),
        ("running", 0, "this run is in its first epoch; its first checkpoint is saved when that epoch ends."),
        ("stopped", 0, "this run ended (stopped) before its first epoch did, so nothing was saved."),
    ],
)
def test_a_run_without_a_checkpoint_yet_is_not_called_missing(tmp_path, status, epochs, said):
    store = RunStore(tmp_path / "runs" / "db.sqlite")
    young = record(store, "young", status="running", epochs=epochs, checkpoint=tmp_path / "runs" / "y.pth")
    run = dataclasses.replace(store.get_run(young), status=status)
    reason = run_views.no_checkpoint_reason(run, tmp_path / "runs")
    assert reason == said and "does not exist" not in reason


def test_comparison_figures_give_each_run_one_colour():
    runs = [
        run_views.RunCurves(
            f"r{i}",
            np.arange(1, 11.0),
            np.linspace(2, 1, 10),
            np.array([1.0, 2.0]),
            np.array([0.3, 0.5]),
            np.array([0.25, 0.4]),
        )
        for i in range(2)
    ]
    loss = plots.runs_loss_figure(runs, smoothing=0.0)
    assert [t.name for t in loss.data] == ["r0", "r1"]
    assert np.allclose(loss.data[0].y, runs[0].loss)  # smoothing 0 is the raw curve
    accuracy = plots.runs_accuracy_figure(runs)
    colours = [t.line.color for t in accuracy.data]
    assert colours[0] == colours[1] != colours[2] == colours[3]
    assert accuracy.data[1].line.dash == "dot"


def test_export_names_are_plain_file_names(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    one = store.get_run(record(store, "../../x"))
    assert run_views.export_name([one], "csv") == f"cifar_lab-{one.id}.csv"
    assert run_views.export_name([one, one], "json") == "cifar_lab-runs-2.json"


def test_resume_is_refused_at_once_for_a_finished_run_or_a_missing_checkpoint(lab_env):
    store = manager().store
    done = record(store, "done", checkpoint=saved_model(lab_env / "done.pth"))
    lost = record(store, "lost", status="stopped", checkpoint=lab_env / "gone.pth")
    with pytest.raises(RunStoreError, match="is completed"):
        manager().resume(done)
    with pytest.raises(RunStoreError, match="has no checkpoint"):
        manager().resume(lost)
    assert manager().current is None  # no job was started to fail a moment later


def test_the_accuracy_column_says_why_a_run_has_no_score_and_sorts_as_the_numbers(tmp_path):
    store = RunStore(tmp_path / "runs" / "db.sqlite")
    done = store.get_run(record(store, "done"))
    said = {
        status: run_views.accuracy_text(dataclasses.replace(done, status=status, test_accuracy=None))
        for status in ("queued", "running", "stopped", "failed")
    }
    assert said == {"queued": "waiting", "running": "training", "stopped": "not scored", "failed": "not scored"}
    scores = [0.095, 1.0, 0.862, 0.42]
    texts = [run_views.accuracy_text(dataclasses.replace(done, test_accuracy=a)) for a in scores]
    assert texts == ["  9.5 %", "100.0 %", " 86.2 %", " 42.0 %"]
    assert sorted(texts) == [texts[i] for i in sorted(range(4), key=scores.__getitem__)]  # as the numbers sort
