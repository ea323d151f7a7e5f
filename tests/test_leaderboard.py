"""The leaderboard's view-model: who ranks where and why, what each run changed, and accuracy per varied setting."""

from __future__ import annotations

from typing import Any

import pytest

from cifar_lab import class_settings
from cifar_lab.class_settings import ClassSettings
from cifar_lab.config import TrainConfig, preset
from cifar_lab.dashboard import leaderboard
from cifar_lab.dashboard.setting_plots import value_text
from cifar_lab.runs import RunRecord, RunStore

TEST_MODE = ClassSettings()
HIDDEN_TEST = ClassSettings(validation=True, revealed=False)
REVEALED = ClassSettings(validation=True, revealed=True)


def run(
    run_id: str,
    accuracy: float,
    *,
    validation: float | None = None,
    seconds: float = 120.0,
    ended: str = "2025-01-01T10:00:00.000+00:00",
    owner: str = "ann",
    start: str = "classroom",
    changed: dict[str, Any] | None = None,
    **fields: Any,
) -> RunRecord:
    """A completed run as the store reads it back."""
    config = (preset(start, **(changed or {})) if start else TrainConfig(**(changed or {}))).to_dict()
    metrics: dict[str, Any] = {"test_accuracy": accuracy, "total_seconds": seconds, "train_seconds": seconds - 10}
    if validation is not None:
        metrics["validation_accuracy"] = validation
    values: dict[str, Any] = dict(
        id=run_id,
        name=f"run {run_id}",
        config=config,
        status="completed",
        message="",
        checkpoint=None,
        data_source=None,
        device="cpu",
        started="2025-01-01T09:00:00.000+00:00",
        ended=ended,
        updated=ended,
        epochs_done=config["epochs"],
        test_accuracy=accuracy,
        metrics=metrics,
        pid=None,
        host=None,
        owner=owner,
        preset=start,
    )
    return RunRecord(**{**values, **fields})


def ids(entries: list[leaderboard.Entry]) -> list[str]:
    return [e.run_id for e in entries]


def test_finished_runs_rank_by_test_accuracy_and_only_finished_sound_visible_ones_show():
    records = [
        run("a", 0.80),
        run("b", 0.90),
        run("c", 0.85),
        run("failed", 0.0, status="failed", test_accuracy=None),
        run("running", 0.0, status="running", test_accuracy=None),
        run("damaged", 0.99, damaged="config is not valid JSON"),
        run("hidden", 0.95, hidden=True),
    ]
    board = leaderboard.entries(records, TEST_MODE)
    assert ids(board) == ["b", "c", "a"] and [e.rank for e in board] == [1, 2, 3]
    assert [e.accuracy for e in board] == [e.test_accuracy for e in board] == [0.90, 0.85, 0.80]
    teacher = leaderboard.entries(records, TEST_MODE, include_hidden=True)
    assert ids(teacher) == ["hidden", "b", "c", "a"] and teacher[0].hidden and not teacher[1].hidden


def test_validation_mode_ranks_by_validation_accuracy_and_hides_test_until_revealed():
    records = [
        run("tuned-on-test", 0.92, validation=0.84),
        run("honest", 0.90, validation=0.88),
        run("before-the-hold-out", 0.95),  # finished before the teacher turned validation on
    ]
    hidden = leaderboard.entries(records, HIDDEN_TEST)
    assert ids(hidden) == ["honest", "tuned-on-test", "before-the-hold-out"]
    assert [e.accuracy for e in hidden] == [0.88, 0.84, None]
    assert all(e.test_accuracy is None for e in hidden)
    assert [e.validation_accuracy for e in hidden] == [0.88, 0.84, None]
    assert leaderboard.ranked_by(HIDDEN_TEST) == "validation accuracy" and leaderboard.hides_test(HIDDEN_TEST)
    revealed = leaderboard.entries(records, REVEALED)
    assert ids(revealed) == ["before-the-hold-out", "tuned-on-test", "honest"]
    assert [e.test_accuracy for e in revealed] == [0.95, 0.92, 0.90]
    assert revealed[1].validation_accuracy == 0.84  # both numbers side by side: the lesson of the reveal
    assert leaderboard.ranked_by(REVEALED) == "test accuracy" and not leaderboard.hides_test(REVEALED)


def test_ties_go_to_fewer_minutes_then_the_earlier_finish():
    records = [
        run("slow", 0.9, seconds=300),
        run("late", 0.9, seconds=120, ended="2025-01-01T11:00:00.000+00:00"),
        run("early", 0.9, seconds=120, ended="2025-01-01T10:30:00.000+00:00"),
        run("untimed", 0.9, metrics={"test_accuracy": 0.9}),
    ]
    board = leaderboard.entries(records, TEST_MODE)
    assert ids(board) == ["early", "late", "slow", "untimed"]
    assert board[0].minutes == pytest.approx(2.0) and board[3].minutes is None


def test_minutes_fall_back_to_train_seconds_for_runs_recorded_before_total_seconds():
    old = run("old", 0.8, metrics={"test_accuracy": 0.8, "train_seconds": 90.0})
    assert leaderboard.entries([old], TEST_MODE)[0].minutes == pytest.approx(1.5)


def test_changes_are_the_settings_moved_from_the_preset_compactly():
    tuned = run(
        "t", 0.91, changed=dict(lr=2.0, epochs=12, momentum=1 / 3, flip=False, threads=1, validation=50, seed=81)
    )
    # threads, validation, and a seed the dashboard drew at random: no one's choice
    assert leaderboard.changes(tuned) == "flip off · lr 2 · momentum 0.333 · epochs 12"
    assert leaderboard.run_label("Ada", "classroom", preset("classroom", lr=2.0, seed=7)) == "Ada · classroom · lr 2"
    assert leaderboard.changes(run("same", 0.9)) == ""
    defaults = run("d", 0.9, start="", changed=dict(arch="cnn", depth=4, weight_decay=5e-5))
    assert leaderboard.changes(defaults) == "arch cnn · depth 4 · weight decay 5e-05"
    board = leaderboard.entries([tuned, defaults], TEST_MODE)
    assert [(e.preset, e.changes) for e in board] == [
        ("classroom", "flip off · lr 2 · momentum 0.333 · epochs 12"),
        ("", "arch cnn · depth 4 · weight decay 5e-05"),
    ]


def test_a_preset_unknown_to_this_version_is_said_not_crashed_on():
    future = run("f", 0.9, start="", preset="turbo")
    entry = leaderboard.entries([future], TEST_MODE)[0]
    assert entry.preset == "turbo" and entry.changes == "preset 'turbo' is unknown to this version of the lab"


def test_values_print_compactly():
    assert [value_text(v) for v in (0.3333333, 2.0, 5e-4, 12, True, "muon")] == [
        "0.333",
        "2",
        "0.0005",
        "12",
        "on",
        "muon",
    ]


def test_varied_settings_are_those_the_runs_differ_in_most_varied_first():
    records = [
        run("a", 0.80, changed=dict(lr=0.1, epochs=4, threads=1, seed=1, depth=5)),
        run("b", 0.85, changed=dict(lr=2.0, epochs=4, threads=2, seed=2)),
        run("c", 0.90, changed=dict(lr=0.5, seed=3, opt="sgd")),
        run("d", 0.70),
        run("failed", 0.0, status="failed", changed=dict(width=64)),
    ]
    # lr: three runs off its commonest value; epochs: two; opt: one. threads (speed only), seed (chance) and depth
    # (a fastnet has no depth) never count, nor does the failed run's width.
    assert leaderboard.varied_settings(records) == ["lr", "epochs", "opt"]
    assert leaderboard.varied_settings(records, limit=2) == ["lr", "epochs"]
    assert leaderboard.varied_settings(records[3:]) == []


def test_one_scatter_per_setting_with_its_axis_points_and_hover():
    records = [
        run("a", 0.80, owner="ann", changed=dict(lr=0.1, epochs=4)),
        run("b", 0.85, owner="bob", changed=dict(lr=2.0, opt="sgd")),
        run("c", 0.90, owner="cy", changed=dict(lr=0.5, flip=False)),
        run("hidden", 0.99, hidden=True, changed=dict(lr=9.0)),
    ]
    figures = leaderboard.setting_figures(records, TEST_MODE, ["lr", "epochs", "opt", "flip"])
    assert list(figures) == ["lr", "epochs", "opt", "flip"]
    lr = figures["lr"]
    (points,) = lr.data
    assert list(points.x) == [0.1, 2.0, 0.5] and list(points.y) == pytest.approx([80, 85, 90])
    assert lr.layout.xaxis.type == "log"  # 0.1 to 2 spans 20 times
    assert list(lr.layout.xaxis.ticktext) == ["0.1", "0.5", "2"]  # the values tried, not 0.2, 0.3, ...
    assert lr.layout.title.text == "accuracy vs learning rate" and lr.layout.yaxis.title.text == "test accuracy (%)"
    assert [list(c) for c in points.customdata] == [["ann", "run a"], ["bob", "run b"], ["cy", "run c"]]
    assert "%{customdata[0]}" in points.hovertemplate and "%{customdata[1]}" in points.hovertemplate
    assert lr.layout.height == 260 and lr.layout.showlegend is False
    assert lr.layout.title.yref == "paper" and lr.layout.margin.t >= 50  # the toolbar's band is above the title
    assert figures["epochs"].layout.xaxis.type == "linear" and list(figures["epochs"].data[0].x) == [4, 3, 3]
    opt = figures["opt"]
    assert opt.layout.xaxis.type == "category" and list(opt.layout.xaxis.categoryarray) == ["sgd", "muon"]
    assert list(opt.data[0].x) == ["muon", "sgd", "muon"]
    assert list(figures["flip"].layout.xaxis.categoryarray) == ["off", "on"]


def test_in_validation_mode_the_scatters_plot_validation_accuracy():
    records = [
        run("a", 0.80, validation=0.70, changed=dict(lr=0.5)),
        run("b", 0.85, validation=0.75, changed=dict(lr=0.6)),
        run("none", 0.99, changed=dict(lr=0.7)),  # no hold-out: nothing to plot while test is hidden
    ]
    lr = leaderboard.setting_figures(records, HIDDEN_TEST, ["lr"])["lr"]
    assert list(lr.data[0].x) == [0.5, 0.6] and list(lr.data[0].y) == pytest.approx([70, 75])
    assert lr.layout.yaxis.title.text == "validation accuracy (%)" and lr.layout.xaxis.type == "linear"


def test_the_board_reads_the_store_and_the_class_settings(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    for owner, lr, accuracy, held_out in (("ann", 0.5, 0.81, 0.79), ("bob", 1.0, 0.84, 0.78), ("cy", 0.75, 0.0, 0.0)):
        run_id = store.create_run(preset("classroom", lr=lr), owner, owner=owner, preset="classroom")
        if owner != "cy":  # cy's run is still training
            store.finish(run_id, "completed", metrics={"test_accuracy": accuracy, "validation_accuracy": held_out})
    board = leaderboard.load_board(store)
    assert [(e.owner, e.changes) for e in board.entries] == [("bob", "lr 1"), ("ann", "lr 0.5")]
    assert list(board.figures) == ["lr"] and not board.test_hidden and board.ranked_by == "test accuracy"
    class_settings.update(store, validation=True, revealed=False)
    board = leaderboard.load_board(store)
    assert [e.owner for e in board.entries] == ["ann", "bob"] and board.test_hidden
    assert all(e.test_accuracy is None for e in board.entries)
    with store.transaction() as conn:  # the teacher hides ann's run
        conn.execute("UPDATE runs SET hidden = 1 WHERE owner = 'ann'")
    assert [e.owner for e in leaderboard.load_board(store).entries] == ["bob"]
    assert [e.owner for e in leaderboard.load_board(store, include_hidden=True).entries] == ["ann", "bob"]
