"""The Train page's look inside the network: drawn once per epoch from that epoch's weights, shared by watchers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cifar_lab.config import TrainConfig
from cifar_lab.dashboard.insides import SAMPLE_INDEX, insides
from cifar_lab.dashboard.live_frame import LiveFrames
from cifar_lab.dashboard.training_job import TrainingJob
from cifar_lab.events import EpochEnd
from cifar_lab.models import build_model
from cifar_lab.runner import new_run
from tests.conftest import TINY_RUN


def weights(config: TrainConfig, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in build_model(config).state_dict().items()}


def epoch_end(epoch: int, state: dict[str, torch.Tensor]) -> EpochEnd:
    return EpochEnd(epoch, 3, 2.0, 0.3, 2.1, 0.3, 1.0, 10.0, state_dict=state)


@pytest.fixture(autouse=True)
def own_run_store(monkeypatch):
    monkeypatch.delenv("CIFAR_LAB_RUNS_DB", raising=False)


@pytest.fixture
def job(tmp_path, tiny_data):
    """A job that never starts, with its data loaded: the test plays the training loop through its listener."""
    return TrainingJob(new_run(TINY_RUN, folder=tmp_path, name="watched"), data=tiny_data)


def test_insides_show_the_weights_they_are_given(tiny_data):
    image, label = tiny_data.test_x[3], int(tiny_data.test_y[3])
    before = insides(TINY_RUN, weights(TINY_RUN, 0), image, label, tiny_data.classes, epoch=1)
    after = insides(TINY_RUN, weights(TINY_RUN, 1), image, label, tiny_data.classes, epoch=2)
    assert before.label == tiny_data.classes[label] and before.predicted in tiny_data.classes
    assert 0 < before.confidence <= 1
    assert np.array_equal(before.view.transpose(2, 0, 1), image.numpy())
    assert before.filter_shape == (8, 3, 3) and not before.frozen_filters  # cnn width 8: 3x3 filters, learned
    assert [s.shape[0] for s in before.stages] == [8, 8][: len(before.stages)] and before.stages
    assert not np.array_equal(before.filters, after.filters)  # other weights, other filters


def test_fastnet_says_its_first_layer_is_frozen(tiny_data):
    config = TrainConfig(arch="fastnet", width=16, precision="fp32", device="cpu")
    shown = insides(config, weights(config, 0), tiny_data.test_x[0], 0, tiny_data.classes, epoch=1)
    assert shown.frozen_filters and shown.filter_shape == (24, 2, 2)
    assert len(shown.stages) == 2  # the first and the last block only


def test_a_frame_has_no_insides_before_the_first_epoch_then_those_of_the_last(job):
    frames = LiveFrames()
    assert frames.frame(job).insides is None
    job._record(epoch_end(1, weights(TINY_RUN, 0)))
    first = frames.frame(job).insides
    assert first is not None and first.epoch == 1
    assert first.label == job.sample(SAMPLE_INDEX)[2][int(job.sample(SAMPLE_INDEX)[1])]
    job._record(epoch_end(2, weights(TINY_RUN, 1)))
    second = frames.frame(job).insides
    assert second is not None and second.epoch == 2 and not np.array_equal(first.filters, second.filters)
    assert job.snapshot().epochs[-1].state_dict == {}  # the snapshot still carries no weights


def test_insides_are_drawn_once_per_epoch_not_per_redraw(job, monkeypatch):
    import cifar_lab.dashboard.live_frame as live_frame

    drawn = []
    real = live_frame.insides
    monkeypatch.setattr(live_frame, "insides", lambda *a, **k: drawn.append(k["epoch"]) or real(*a, **k))
    frames = LiveFrames()
    job._record(epoch_end(1, weights(TINY_RUN, 0)))
    for _ in range(3):
        frames.frame(job, show_test=True)
        frames.frame(job, show_test=False)
        job._set(message="training")  # a new version: the frame is built again, the insides are not
    assert drawn == [1]


def test_weights_that_do_not_fit_leave_the_charts_and_are_not_tried_again(job, caplog):
    frames = LiveFrames()
    job._record(epoch_end(1, {"conv.weight": torch.zeros(1)}))
    frame = frames.frame(job)
    assert frame.insides is None and frame.loss is not None
    assert "could not be drawn" in caplog.text
    caplog.clear()
    job._set(message="training")
    assert frames.frame(job).insides is None and "could not be drawn" not in caplog.text


def test_a_job_trained_for_real_shows_its_last_epoch(tmp_path, tiny_data):
    job = TrainingJob(new_run(TINY_RUN, folder=tmp_path, name="real"), data=tiny_data).start()
    assert job.join(timeout=60)
    shown = LiveFrames().frame(job).insides
    assert job.status == "completed" and shown is not None and shown.epoch == TINY_RUN.epochs
