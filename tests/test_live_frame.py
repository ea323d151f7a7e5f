"""Watchers share what they see: one snapshot and one pair of figures per change of a job, for every session."""

from __future__ import annotations

import pytest

from cifar_lab.config import TrainConfig
from cifar_lab.dashboard.jobs import JobManager
from cifar_lab.dashboard.live_frame import LiveFrames
from cifar_lab.dashboard.training_job import TrainingJob
from cifar_lab.events import EpochEnd, Step
from cifar_lab.runner import new_run

TINY = TrainConfig(arch="cnn", width=8, depth=1, batch_size=32, epochs=2, eval_subset=0, precision="fp32")


@pytest.fixture(autouse=True)
def own_run_store(monkeypatch):
    monkeypatch.delenv("CIFAR_LAB_RUNS_DB", raising=False)


@pytest.fixture
def job(tmp_path):
    """A job that never starts: the test plays the training loop by calling its listener."""
    return TrainingJob(new_run(TINY, folder=tmp_path, name="watched"))


def step(n: int) -> Step:
    return Step(n, 20, 1, 2.3 - 0.01 * n, 0.1, 1000.0, 0.1 * n)


def test_the_same_job_update_gives_every_watcher_the_same_frame(job):
    frames = LiveFrames()
    job._record(step(1))
    first = frames.frame(job)
    again = frames.frame(job)  # a second watcher, or the next redraw, before the job has moved
    assert again is first and again.loss is first.loss and again.accuracy is first.accuracy
    assert len(first.snapshot.losses) == 1


def test_a_new_point_or_epoch_gives_a_new_frame_with_it(job):
    frames = LiveFrames()
    job._record(step(1))
    first = frames.frame(job)
    job._record(step(2))
    second = frames.frame(job)
    assert second is not first and second.loss is not first.loss
    assert len(second.snapshot.losses) == 2 and second.loss.data[0].x.size == 2
    assert frames.frame(job) is second
    job._record(EpochEnd(1, 2, 2.0, 0.4, 2.1, 0.35, 1.0, 1000.0))
    third = frames.frame(job)
    assert third is not second and len(third.snapshot.epochs) == 1


def test_test_accuracy_hidden_is_a_frame_of_its_own(job):
    frames = LiveFrames()
    job._record(EpochEnd(1, 2, 2.0, 0.4, 2.1, 0.35, 1.0, 1000.0))
    shown, hidden = frames.frame(job, show_test=True), frames.frame(job, show_test=False)
    assert [t.name for t in shown.accuracy.data] == ["train", "test"]
    assert [t.name for t in hidden.accuracy.data] == ["train"]
    assert frames.frame(job, show_test=False) is hidden and frames.frame(job, show_test=True) is shown


def test_every_change_of_a_job_moves_its_version(job):
    versions = [job.version]
    job._record(step(1))
    versions.append(job.version)
    job._set(message="training")
    versions.append(job.snapshot().version)
    assert versions == sorted(set(versions))


def test_measured_throughput_is_read_again_only_when_a_run_has_completed(tmp_path):
    manager = JobManager(tmp_path)
    before = manager.measured()
    assert manager.measured() is before
    assert manager.waiting() == []
    store = manager.store
    assert store is not None
    run_id = store.create_run(TINY, "done")
    store.finish(run_id, "completed", metrics={"test_accuracy": 0.5, "images_per_s": 1000.0, "train_seconds": 1.0})
    after = manager.measured()
    assert after is not before and after.images_per_s(TINY) == 1000.0
    assert manager.measured() is after
