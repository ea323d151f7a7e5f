"""What the Train page says beside its charts: why test accuracy can be above train accuracy."""

from __future__ import annotations

from cifar_lab.config import TrainConfig, preset
from cifar_lab.dashboard.job_view import why_test_beats_train
from cifar_lab.events import EpochEnd


def epoch(train_acc: float, test_acc: float) -> EpochEnd:
    return EpochEnd(1, 3, 1.2, train_acc, 0.6, test_acc, 1.0, 1.0)


def test_test_above_train_is_explained_by_what_makes_training_harder():
    note = why_test_beats_train(preset("classroom"), [epoch(0.83, 0.86)])
    assert note.startswith("Test accuracy is above train accuracy here, and that is expected")
    assert "flipped, shifted at random (augmentation)" in note and "softened answers (label smoothing)" in note
    plain = TrainConfig(arch="cnn", flip=False, crop_pad=0, label_smoothing=0.0, dropout=0.0)
    assert "still improving" in why_test_beats_train(plain, [epoch(0.5, 0.6)])


def test_no_note_while_train_is_ahead_or_before_the_first_epoch():
    assert why_test_beats_train(preset("classroom"), [epoch(0.9, 0.86)]) == ""
    assert why_test_beats_train(preset("classroom"), []) == ""
