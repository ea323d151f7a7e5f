"""The time budget: what it chooses for the time there is, that it counts its own measuring, and what it refuses."""

from __future__ import annotations

import json
import shlex

import pytest
from test_cli import FAST, call, workdir  # noqa: F401  (call, workdir: its fixtures)

from cifar_lab import budget
from cifar_lab.budget import BudgetTooSmall, choose, predict_seconds
from cifar_lab.config import TrainConfig, preset
from cifar_lab.dashboard.jobs import JobManager
from cifar_lab.runs import RunStore, default_db_path
from cifar_lab.train import Calibration
from tests.conftest import TINY_RUN

CLASSROOM = preset("classroom")  # fastnet width 32, 3 epochs
NARROWER, WIDER = budget._widths(CLASSROOM)
AGAIN = "the same run again, without a budget: "


def per_epoch_model(epoch_s: dict[int, float], fixed_s: float = 5.0, shrunk_share: float = 0.55):
    """Seconds of a candidate: `epoch_s[width]` per full-size epoch, shrunk_share of it per shrunk one."""

    def seconds(c: TrainConfig) -> float:
        full = c.epochs - c.lowres_epochs
        return fixed_s + epoch_s[c.width] * (full + shrunk_share * c.lowres_epochs)

    return seconds


def pick(left_s: float, epoch_s: dict[int, float], recipe: TrainConfig = CLASSROOM) -> TrainConfig | None:
    narrower, wider = budget._widths(recipe)
    return choose(recipe, per_epoch_model(epoch_s), lambda: left_s, narrower=narrower, wider=wider)


def shape(c: TrainConfig | None) -> tuple[int, int, int] | None:
    return None if c is None else (c.width, c.epochs, c.lowres_epochs)


def test_the_widths_tried_are_multiples_of_16_nearest_first():
    assert (NARROWER, WIDER) == ([16], [48, 64])
    assert budget._widths(preset("best")) == ([48, 32, 16], [80, 96, 112, 128])
    assert budget._widths(preset("improved")) == ([], [])  # only fastnet's width is the budget's to change


def test_the_recipe_as_it_is_when_it_fits_and_more_epochs_with_time_to_spare():
    assert shape(pick(100, {32: 30})) == (32, 3, 0)
    assert shape(pick(160, {32: 30})) == (32, 5, 0)  # a faster machine trains longer in the same minutes


def test_past_twice_the_recipe_s_epochs_a_wider_net_is_tried():
    assert shape(pick(400, {32: 30, 48: 60, 64: 100})) == (48, 6, 0)
    assert shape(pick(400, {32: 30, 48: 40, 64: 140})) == (48, 9, 0)  # 64 would fit fewer than the recipe's 3
    assert shape(pick(4000, {32: 30, 48: 60, 64: 100})) == (64, 39, 0)  # the widest tried, with every epoch that fits


def test_short_of_time_the_first_epoch_shrinks_then_the_net_narrows_then_the_epochs_go():
    assert shape(pick(85, {32: 30, 16: 12})) == (32, 3, 1)  # 5 + 30 * (2 + 0.55) = 81.5
    assert shape(pick(70, {32: 30, 16: 12})) == (16, 5, 0)  # narrower, with every epoch that fits
    assert shape(pick(70, {32: 30, 16: 30})) == (16, 2, 0)  # nothing narrower helps: fewer epochs
    assert pick(20, {32: 30, 16: 30}) is None  # not even one epoch


def test_an_architecture_without_widths_to_pick_gets_its_epochs_and_shrunk_ones():
    improved = preset("improved")  # cnn, 10 epochs
    assert shape(pick(405, {32: 40}, improved)) == (32, 10, 0)
    assert shape(pick(352, {32: 40}, improved)) == (32, 10, 3)  # 5 + 40 * (7 + 3 * 0.55) = 351
    assert shape(pick(350, {32: 40}, improved)) == (32, 9, 1)  # at most a third shrunk: then fewer epochs
    tutorial = preset("tutorial")  # its net takes 32x32 images only: no shrunk epochs
    assert shape(pick(50, {tutorial.width: 30}, tutorial)) == (tutorial.width, 1, 0)


def test_fastnet_s_epochs_after_its_whitening_bias_freezes_are_timed_by_their_own_steps():
    cost = Calibration(setup_s=0.0, step_s=1.0, score_s=0.0, save_s=0.0, later_step_s=0.5)
    config = preset("best").replace(eval_subset=0, tta=False)  # 10 epochs: the first 3 train the bias
    assert budget.bias_epochs(config) == 3
    assert predict_seconds(config, cost, 0.0, train_images=512, test_images=0) == pytest.approx(3 * 1.0 + 7 * 0.5)
    shrunk = config.replace(lowres_epochs=2)
    assert predict_seconds(shrunk, cost, 0.25, train_images=512, test_images=0) == pytest.approx(2 * 0.25 + 1.0 + 3.5)


def test_the_prediction_counts_steps_scoring_views_and_saves():
    cost = Calibration(setup_s=1.0, step_s=0.5, score_s=0.001, save_s=0.2, later_step_s=0.5)
    config = TrainConfig(arch="cnn", epochs=2, batch_size=100, eval_subset=1000, tta=True)
    seconds = predict_seconds(config, cost, 0.25, train_images=1000, test_images=2000)
    # set-up 1 + 2 epochs of 10 steps * 0.5 + 2 * (1000 scored * 0.001 + 0.2 saved) + 2000 * 0.001 * 2 views + 0.2,
    # and the first epoch's three early scores of 500 test images each
    assert seconds == pytest.approx(1 + 10 + 2.4 + 4 + 0.2 + 1.5)
    shrunk = predict_seconds(config.replace(lowres_epochs=1), cost, 0.25, train_images=1000, test_images=2000)
    assert seconds - shrunk == pytest.approx(10 * 0.25)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_measuring_counts_in_the_budget_and_a_budget_too_small_says_by_how_much(tiny_data):
    clock, calls = FakeClock(), []

    def measure(config, data, device, *, steps, shrunk, stop=None):
        calls.append((config.width, shrunk))
        clock.now += 10.0  # each measurement takes ten seconds of the budget
        step = 0.1 * config.width / 32
        return Calibration(setup_s=0.0, step_s=step, score_s=0.0, save_s=0.0, later_step_s=step)

    config = CLASSROOM.replace(minutes=1.0, eval_subset=0, tta=False)
    steps = 1  # 512 images in batches of 512
    chosen = budget.plan(config, tiny_data, None, clock=clock, measure=measure)
    assert calls[0] == (32, False) and chosen.measured_s == pytest.approx(10.0 * len(calls))
    assert chosen.config.minutes == 0 and chosen.predicted_s + chosen.measured_s <= 60
    assert chosen.predicted_s == pytest.approx(chosen.config.epochs * steps * 0.1 * chosen.config.width / 32)
    assert "--minutes 0" in chosen.summary() and f"--epochs {chosen.config.epochs}" in chosen.command()
    assert chosen.in_words().endswith("Time budget (minutes) 0") and "--" not in chosen.summary(for_page=True)
    clock.now = 0.0
    with pytest.raises(BudgetTooSmall, match=r"0\.1 min is too short here: even one epoch at width 16 takes about 0 s"):
        budget.plan(config.replace(minutes=0.1), tiny_data, None, clock=clock, measure=measure)


def test_a_budgeted_cli_run_records_its_choice_and_the_command_it_prints_repeats_it_exactly(call, tmp_path):
    code, out, err = call("train", *FAST, "--minutes", "0.15", "--out", tmp_path, "--json")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    chosen = summary["config"]
    assert chosen["minutes"] == 0 and chosen["epochs"] >= 1 and summary["epochs"] == chosen["epochs"]
    assert "0.15 min budget:" in err and "s measuring this machine, then" in err
    again = next(line for line in err.splitlines() if line.startswith(AGAIN)).removeprefix(AGAIN)
    assert f"--epochs {chosen['epochs']}" in again and "--minutes 0 " in again  # classroom's own budget is off
    stored = RunStore(default_db_path(tmp_path)).get_run(summary["run_id"])
    assert stored.train_config.to_dict() == chosen  # a resume trains on with what was chosen

    command = again.split(" train ", 1)[1]
    code, out, err = call("train", *shlex.split(command), "--out", tmp_path, "--json")
    assert code == 0, err
    repeated = json.loads(out.strip().splitlines()[-1])
    assert repeated["config"] == chosen and repeated["test_accuracy"] == summary["test_accuracy"]


def test_a_run_length_set_by_hand_turns_a_presets_budget_off_and_the_cli_says_so(call, tmp_path):
    assert (preset("classroom").minutes, preset("best").minutes) == (2, 12)
    assert preset("classroom", epochs=1).minutes == 0 and preset("best", width=48).minutes == 0
    assert preset("classroom", epochs=5, minutes=3).minutes == 3  # a budget asked for with them stays
    assert preset("classroom", lr=1.0).minutes == 2 and preset("improved", epochs=1).minutes == 0
    code, _, err = call("train", *FAST, "--out", tmp_path)
    assert code == 0, err
    assert "note: --epochs, --width given, so the classroom preset's 2-minute budget is off" in err


def test_a_queued_run_with_a_budget_records_and_shows_what_it_chose(tmp_path, tiny_data):
    manager = JobManager(tmp_path, slots=1)
    run_id = manager.submit(TINY_RUN.replace(minutes=0.05), owner="Ada", data=tiny_data, source="synthetic")
    job = manager.job(run_id)
    assert job is not None and job.join(timeout=60)
    record = manager.store.get_run(run_id)
    assert record.status == "completed", record.message
    chosen = record.train_config
    assert chosen.minutes == 0 and chosen.replace(epochs=TINY_RUN.epochs) == TINY_RUN
    snapshot = job.snapshot()
    assert snapshot.config == chosen and len(snapshot.epochs) == chosen.epochs  # the charts span what was chosen
    assert snapshot.budget.startswith("0.05 min budget:")  # the Train page says what was measured and chosen
    assert "Time budget (minutes) 0 on the Train form" in snapshot.budget
    if chosen.epochs != TINY_RUN.epochs:
        assert f"set Epochs {chosen.epochs}" in snapshot.budget
    assert "--" not in snapshot.budget  # a page speaks of its own fields, not of command-line flags


def test_a_width_too_slow_even_with_shrunk_epochs_is_not_timed_on_shrunk_images(tiny_data):
    clock, calls = FakeClock(), []
    full_step = {64: 10.0, 48: 5.0, 32: 2.0, 16: 1.0}

    def measure(config, data, device, *, steps, shrunk, stop=None):
        calls.append((config.width, shrunk))
        clock.now += 1.0
        step = full_step[config.width] * (0.55 if shrunk else 1.0)
        return Calibration(setup_s=0.0, step_s=step, score_s=0.0, save_s=0.0, later_step_s=step)

    # One step per epoch: width 64's 10 epochs take 100 s, at least 83.5 s with 3 of them shrunk; width 48's 50 s,
    # 47.75 s with one shrunk, 45.5 s with two.
    config = preset("best").replace(minutes=52 / 60, eval_subset=0, tta=False, tta_shifts=False)
    chosen = budget.plan(config, tiny_data, None, clock=clock, measure=measure)
    assert calls == [(64, False), (48, False), (48, True)]
    assert shape(chosen.config) == (48, 10, 2)


def test_a_stop_while_the_budget_is_measured_ends_the_measuring_and_the_run_before_its_first_step(tmp_path, tiny_data):
    import threading

    from conftest import start_run

    from cifar_lab.events import Planned, Step
    from cifar_lab.train import MeasuringStopped, calibrate

    stop = threading.Event()
    stop.set()
    with pytest.raises(MeasuringStopped):
        calibrate(TINY_RUN, tiny_data, budget.torch.device("cpu"), steps=2, shrunk=False, stop=stop)
    store = RunStore(tmp_path / "runs.db", runs_dir=tmp_path)
    run = start_run(TINY_RUN.replace(minutes=5), tiny_data, tmp_path, store=store)  # minutes of measuring and training
    events: list = []
    result = run.run(stop=stop, on_event=events.append)
    assert result.status == "stopped" and result.epochs_done == 0
    assert not any(isinstance(e, Planned | Step) for e in events)  # nothing chosen, not one step trained
    assert store.get_run(run.run_id).status == "stopped"


def test_the_time_of_settings_as_set_is_their_steps_timed_here_with_shrunk_ones_apart(tiny_data):
    calls = []

    def measure(config, data, device, *, steps, shrunk, stop=None):
        calls.append((config.lowres_epochs, config.minutes, shrunk))
        return Calibration(setup_s=1.0, step_s=0.2 if not shrunk else 0.1, score_s=1e-4, save_s=0.1, later_step_s=0.2)

    plain = TINY_RUN.replace(minutes=3)  # a budget is not what is timed: the settings as they are
    seconds = budget.measured_seconds(plain, tiny_data, None, measure=measure)
    cost = measure(plain, tiny_data, None, steps=1, shrunk=False)
    expected = predict_seconds(plain.replace(minutes=0.0), cost, 0.0, len(tiny_data.train_x), len(tiny_data.test_x))
    assert seconds == pytest.approx(expected) and calls[0] == (0, 0.0, False)
    calls.clear()
    shrunk = budget.measured_seconds(TINY_RUN.replace(lowres_epochs=1), tiny_data, None, measure=measure)
    assert calls == [(0, 0.0, False), (1, 0.0, True)] and shrunk < seconds  # a shrunk epoch is cheaper
