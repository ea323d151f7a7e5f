"""The dashboard's background jobs: event order, checkpoints, stop, one job at a time."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import pytest
import torch

from cifar_lab.checkpoint import load_checkpoint
from cifar_lab.config import TrainConfig
from cifar_lab.dashboard.job_view import LossSeries
from cifar_lab.dashboard.jobs import JobBusyError, JobManager
from cifar_lab.data import synthetic_data
from cifar_lab.events import Finished, Stopped

TINY = TrainConfig(
    arch="cnn",
    width=8,
    depth=1,
    batch_size=32,
    epochs=2,
    eval_subset=0,
    precision="fp32",
    threads=1,
    schedule="constant",
    lr=0.05,
)


@pytest.fixture(autouse=True)
def own_run_store(monkeypatch):
    """Each manager keeps its run store beside its checkpoints (tmp_path), whatever the environment says."""
    monkeypatch.delenv("CIFAR_LAB_RUNS_DB", raising=False)


@pytest.fixture(scope="module")
def data():
    return synthetic_data(n_train=256, n_test=64)


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_job_records_events_in_order_and_saves_the_model(tmp_path, data):
    job = JobManager(tmp_path).start(TINY, data=data, name="tiny")
    assert job.join(60)
    snap = job.snapshot()
    assert snap.status == "completed" and snap.done and snap.progress == 1.0
    steps = [p.step for p in snap.losses]
    assert steps == sorted(steps) and steps[-1] == 2 * 8  # 256 images / batch 32 = 8 steps per epoch
    assert [e.epoch for e in snap.epochs] == [1, 2]
    assert all(e.state_dict == {} and e.resume_state == {} for e in snap.epochs)  # weights live in the file
    assert isinstance(snap.final, Finished) and snap.test_accuracy == snap.final.test_accuracy
    assert snap.checkpoint == tmp_path / f"tiny-{snap.run_id}.pth"  # the id makes the file the run's own
    ckpt = load_checkpoint(snap.checkpoint)
    assert ckpt.epoch == 2 and ckpt.config == TINY
    assert ckpt.metrics["test_accuracy"] == pytest.approx(snap.final.test_accuracy)


def test_snapshot_is_a_frozen_copy(tmp_path, data):
    job = JobManager(tmp_path).start(TINY.replace(epochs=1), data=data)
    job.join(60)
    snap = job.snapshot()
    with pytest.raises(AttributeError):
        snap.status = "running"
    assert isinstance(snap.losses, tuple) and isinstance(snap.epochs, tuple)


def test_stop_ends_the_job_within_a_second_and_keeps_the_last_epoch(tmp_path, data):
    job = JobManager(tmp_path).start(TINY.replace(epochs=500), data=data, name="long")
    wait_for(lambda: len(job.snapshot().epochs) >= 1)
    t0 = time.monotonic()
    job.stop()
    assert job.join(1.0), "the job did not end within a second of stop()"
    assert time.monotonic() - t0 < 1.0
    snap = job.snapshot()
    assert snap.status == "stopped" and isinstance(snap.final, Stopped)
    assert load_checkpoint(snap.checkpoint).epoch == len(snap.epochs) >= 1


def test_only_one_job_runs_even_when_started_at_the_same_moment(tmp_path, data):
    manager = JobManager(tmp_path)
    barrier, started, refused = threading.Barrier(8), [], []

    def press_start() -> None:
        barrier.wait()
        try:
            started.append(manager.start(TINY.replace(epochs=500), data=data))
        except JobBusyError as err:
            refused.append(err)

    threads = [threading.Thread(target=press_start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(started) == 1 and len(refused) == 7
    assert all(err.job is started[0] for err in refused)
    assert "already running" in str(refused[0])
    assert manager.stop(timeout=5) and started[0].status == "stopped"
    assert manager.start(TINY.replace(epochs=1), data=data).join(60)  # free again once stopped


def test_a_data_problem_ends_as_failed_with_the_fix(tmp_path):
    job = JobManager(tmp_path).start(TINY, source=str(tmp_path / "nowhere"))
    assert job.join(30)
    snap = job.snapshot()
    assert snap.status == "failed" and "synthetic" in snap.message and snap.checkpoint is None


def test_names_never_overwrite_an_earlier_checkpoint(tmp_path, data):
    manager = JobManager(tmp_path)
    first = manager.start(TINY.replace(epochs=1), data=data, name="same")
    first.join(60)
    second = manager.start(TINY.replace(epochs=1), data=data, name="same")
    second.join(60)
    assert first.checkpoint_path != second.checkpoint_path  # the display name is a label; the run id names the file
    for job in (first, second):
        assert job.checkpoint_path.name == f"same-{job.plan.run_id}.pth"
        assert load_checkpoint(job.checkpoint_path).config == job.config


def test_loss_series_stays_bounded_and_keeps_the_mean():
    series = LossSeries(cap=100)
    for step in range(1, 10_001):
        series.add(step, step / 100, float(step % 7))
    points = series.snapshot()
    assert len(points) <= 101 and points[-1].step == 10_000
    assert sum(p.count for p in points) == 10_000
    mean = sum(p.loss * p.count for p in points) / 10_000
    assert mean == pytest.approx(sum(s % 7 for s in range(1, 10_001)) / 10_000)


def test_core_modules_do_not_import_streamlit():
    code = (
        "import sys, cifar_lab.dashboard.jobs, cifar_lab.dashboard.plots, cifar_lab.dashboard.ui_state; "
        "assert 'streamlit' not in sys.modules, 'streamlit imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_dashboard_run_is_recorded_in_the_run_store(tmp_path, data):
    manager = JobManager(tmp_path)
    job = manager.start(TINY, data=data, source="synthetic", name="recorded")
    assert job.join(60)
    snap = job.snapshot()
    record = manager.store.get_run(snap.run_id)
    assert record.status == "completed" and record.epochs_done == 2 and record.name == "recorded"
    assert record.data_source == "synthetic" and record.checkpoint == str(tmp_path / f"recorded-{snap.run_id}.pth")
    assert [e.epoch for e in manager.store.epochs(snap.run_id)] == [1, 2]


def test_a_stopped_run_resumes_from_its_last_finished_epoch(tmp_path):
    manager = JobManager(tmp_path)
    first = manager.start(TINY.replace(epochs=300), source="synthetic")  # the job loads the data itself
    wait_for(lambda: len(first.snapshot().epochs) >= 1)
    manager.stop()
    done = len(first.snapshot().epochs)
    run_id = first.snapshot().run_id
    assert [r.id for r in manager.resumable()] == [run_id]

    second = manager.resume(run_id)
    wait_for(lambda: len(second.snapshot().epochs) >= done + 1)  # its earlier epochs are there from the start
    manager.stop()
    snap = second.snapshot()
    assert snap.run_id == run_id and snap.epochs[done].epoch == done + 1  # continues, not from scratch
    assert [e.epoch for e in snap.epochs] == list(range(1, len(snap.epochs) + 1))  # earlier epochs still charted
    assert snap.saved_epoch == snap.epochs[-1].epoch == load_checkpoint(second.checkpoint_path).epoch
    assert second.checkpoint_path == first.checkpoint_path
    assert manager.store.get_run(run_id).status == "stopped"


def test_resuming_needs_an_idle_manager(tmp_path, data):
    manager = JobManager(tmp_path)
    manager.start(TINY.replace(epochs=500), data=data, source="synthetic")
    with pytest.raises(JobBusyError):
        manager.resume("no-such-run")
    manager.stop()


def test_a_running_job_is_redrawn_less_often_where_training_shares_the_cpu_with_the_browser(monkeypatch):
    from cifar_lab import devices
    from cifar_lab.dashboard import ui_state

    assert ui_state.live_refresh_s(TrainConfig(device="cpu")) == ui_state.CPU_LIVE_REFRESH_S
    assert ui_state.CPU_LIVE_REFRESH_S > ui_state.LIVE_REFRESH_S
    monkeypatch.setattr(devices, "resolve_device", lambda name: torch.device("cuda"))
    assert ui_state.live_refresh_s(TrainConfig(device="auto")) == ui_state.LIVE_REFRESH_S

    def unavailable(name):
        raise ValueError("device 'mps' is not available")

    monkeypatch.setattr(devices, "resolve_device", unavailable)
    assert ui_state.live_refresh_s(TrainConfig(device="mps")) == ui_state.LIVE_REFRESH_S


def test_the_server_logs_jobs_starting_stopping_and_failing(tmp_path, data, caplog):
    manager = JobManager(tmp_path)
    with caplog.at_level(logging.INFO, logger="cifar_lab"):
        job = manager.start(TINY.replace(epochs=500), data=data, name="logged")
        wait_for(lambda: job.snapshot().last_step is not None)
        manager.stop()
        failing = manager.start(TINY, source=str(tmp_path / "nowhere"))
        assert failing.join(60)
    run_id, lines = job.plan.run_id, caplog.text
    assert f"job {run_id} started" in lines and f"job {run_id} asked to stop" in lines
    assert f"run {run_id} stopped after" in lines and f"job {failing.plan.run_id} failed: " in lines
    assert any(r.levelno == logging.INFO and "recorded" in r.getMessage() for r in caplog.records)
