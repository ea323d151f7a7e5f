"""Figure builders and image helpers: the data they draw, not how they look."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cifar_lab.dashboard import plots
from cifar_lab.dashboard.job_view import LossPoint
from cifar_lab.events import EpochEnd

CLASSES = ("a", "b", "c")


def epoch(n: int, train_acc: float, test_acc: float) -> EpochEnd:
    return EpochEnd(n, 3, 2.0 / n, train_acc, 2.5 / n, test_acc, 1.0, float(n))


def test_ema_is_bias_corrected_and_follows_the_data():
    assert plots.ema([5.0, 5.0, 5.0]) == pytest.approx([5.0, 5.0, 5.0])  # no pull towards 0 at the start
    smooth = plots.ema([0.0] * 50 + [1.0] * 200)
    assert smooth[49] == 0 and smooth[-1] == pytest.approx(1.0, abs=1e-6)
    assert plots.ema([1.0, 3.0], smoothing=0) == [1.0, 3.0]


def test_loss_figure_draws_steps_smoothed_and_epochs():
    losses = [LossPoint(s, s / 10, 2.0 - s / 100, 1) for s in range(1, 31)]
    fig = plots.loss_figure(losses, [epoch(1, 0.3, 0.25), epoch(2, 0.5, 0.45)])
    raw, smooth, train, test = fig.data
    assert list(raw.x) == [p.epoch for p in losses] and list(raw.y) == [p.loss for p in losses]
    assert len(smooth.y) == 30 and smooth.name == "trend (smoothed)"
    assert 0.2 < np.mean(np.asarray(smooth.y) > np.asarray(raw.y)) < 0.8  # crosses a straight fall, not above it
    assert list(train.x) == [1, 2] and list(test.y) == [2.5, 1.25]


def test_the_loss_trend_runs_through_the_middle_of_a_noisy_falling_loss_not_above_it():
    rng = np.random.default_rng(0)
    falling = 2.0 * np.exp(-np.arange(300) / 100)
    noisy = (falling + rng.normal(0, 0.15, 300)).tolist()
    lagging = np.asarray(plots.ema(noisy)) - falling  # the forwards-only average: above the loss it follows
    centred = np.asarray(plots.trend(noisy)) - falling
    assert lagging[50:].mean() > 0.03 and abs(centred[50:-50].mean()) < 0.01
    above = np.mean(np.asarray(plots.trend(noisy)) > np.asarray(noisy))
    assert 0.35 < above < 0.65  # about as many raw points above it as below


def test_accuracy_figure_has_train_and_test_per_epoch():
    fig = plots.accuracy_figure([epoch(1, 0.3, 0.25), epoch(2, 0.5, 0.45)])
    assert [t.name for t in fig.data] == ["train", "test"]
    assert list(fig.data[1].y) == [0.25, 0.45]
    assert len(plots.accuracy_figure([]).data[0].x) == 0  # empty before the first epoch, no error


def test_the_accuracy_chart_shows_test_accuracy_during_the_first_epoch():
    from cifar_lab.events import EarlyScore

    early = [EarlyScore(s, s / 8, a, 0.01, 500) for s, a in ((2, 0.2), (4, 0.3), (6, 0.35))]
    during = plots.accuracy_figure([], early=early).data[-1]
    assert during.name == "test, during epoch 1" and list(during.x) == [0.25, 0.5, 0.75]
    joined = plots.accuracy_figure([epoch(1, 0.3, 0.4)], early=early)
    assert [t.name for t in joined.data] == ["train", "test", "test, during epoch 1"]
    assert list(joined.data[-1].y) == [0.2, 0.3, 0.35, 0.4]  # it runs on into the first epoch's point
    assert [t.name for t in plots.accuracy_figure([], show_test=False, early=early).data] == ["train"]


def test_confusion_figure_counts_and_row_shares():
    confusion = np.array([[8, 2, 0], [1, 1, 0], [0, 0, 0]])
    counts = plots.confusion_figure(confusion, CLASSES)
    assert np.array_equal(np.asarray(counts.data[0].z), confusion)
    shares = np.asarray(plots.confusion_figure(confusion, CLASSES, normalised=True).data[0].z)
    assert shares[0].tolist() == [0.8, 0.2, 0.0] and shares[1].tolist() == [0.5, 0.5, 0.0]
    assert shares[2].tolist() == [0, 0, 0]  # a class with no images: zeros, not NaN
    assert tuple(counts.layout.yaxis.range) == (2.5, -0.5)  # first true class on top
    cells = counts.data[1]  # invisible markers that make the cells clickable
    assert list(zip(cells.x, cells.y))[1] == ("b", "a") and cells.customdata[1].tolist() == [2, 0.2]


def test_bar_figures():
    per_class = plots.per_class_figure({"a": 0.9, "b": 0.5}, overall=0.7)
    assert list(per_class.data[0].y) == [0.9, 0.5] and list(per_class.data[1].y) == [0.7, 0.7]
    labels = plots.per_class_figure({"a": 0.9, "b": 0.0}).data[0]  # the foot of a bar, or above one too short
    assert list(labels.text) == ["90%", "0%"] and list(labels.textposition) == ["inside", "outside"]
    probs = plots.probability_figure(["cat", "dog", "frog"], [0.7, 0.2, 0.1])
    assert list(probs.data[0].y) == ["cat", "dog", "frog"] and probs.data[0].text[0] == "70.0%"
    counts = plots.class_counts_figure(CLASSES, [5, 5, 5], [1, 1, 1])
    assert [t.name for t in counts.data] == ["train", "test"]


def test_normalisation_figure_shows_raw_and_normalised_pixels():
    x = torch.full((4, 3, 8, 8), 128, dtype=torch.uint8)
    fig = plots.normalisation_figure(x, "half")
    assert len(fig.data) == 6  # 3 channels x (before, after)
    assert float(np.max(fig.data[1].x)) == pytest.approx(128 / 127.5 - 1)


def test_mosaic_places_upscaled_images_in_a_grid():
    images = torch.zeros(5, 3, 2, 2, dtype=torch.uint8)
    images[3] = 200
    out = plots.mosaic(images, cols=3, scale=2, gap=1)
    assert out.shape == (2 * 5, 3 * 5, 3)
    assert (out[5:9, 0:4] == 200).all()  # image 3: second row, first column
    assert (out[4] == 255).all()  # the gap between rows is white


def test_upscale_and_to_hwc():
    image = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    hwc = plots.to_hwc(image)
    assert hwc.shape == (2, 2, 3) and hwc[1, 0, 2] == image[2, 1, 0]
    big = plots.upscale(hwc, 3)
    assert big.shape == (6, 6, 3) and (big[3:6, 0:3] == hwc[1, 0]).all()
