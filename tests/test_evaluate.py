"""Evaluation: confusion matrix bookkeeping and test-time augmentation."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cifar_lab.checkpoint import Checkpoint
from cifar_lab.config import TrainConfig
from cifar_lab.evaluate import SHIFTED_FRACTION, TTA_SHIFTS, evaluate, evaluate_checkpoint, predict_logits


class ChannelMeans(nn.Module):
    """Logits from per-channel means: blind to mirroring, so flip TTA must change nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3)))


class LeftHalf(nn.Module):
    """Looks only at the left half of the image: mirroring changes its answer."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[:, :, :, : x.shape[3] // 2].mean(dim=(2, 3)))


def images(n: int = 20) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_flip_tta_leaves_a_mirror_blind_model_unchanged_and_keeps_shapes():
    torch.manual_seed(0)
    model, x = ChannelMeans(), images()
    plain = predict_logits(model, x)
    assert plain.shape == (20, 4)
    assert torch.allclose(predict_logits(model, x, tta=True), plain, atol=1e-5)
    assert predict_logits(model, x, tta=True, shifts=True).shape == (20, 4)


def test_flip_tta_averages_the_image_and_its_mirror():
    torch.manual_seed(0)
    model, x = LeftHalf(), images()
    expected = 0.5 * (predict_logits(model, x) + predict_logits(model, x.flip(3)))
    assert torch.allclose(predict_logits(model, x, tta=True), expected, atol=1e-5)


def shifted(x: torch.Tensor, d: int) -> torch.Tensor:
    """uint8 images moved d pixels up and left (down and right when negative), the edge reflected in."""
    padded = F.pad(x.float(), (abs(d),) * 4, mode="reflect")
    return padded[:, :, abs(d) + d : abs(d) + d + 32, abs(d) + d : abs(d) + d + 32].to(torch.uint8)


def test_shift_tta_gives_the_least_confident_images_the_mean_over_diagonal_shifts_and_leaves_the_rest():
    torch.manual_seed(0)
    model, x = LeftHalf(), images(40)
    mirror = predict_logits(model, x, tta=True)
    views = [predict_logits(model, shifted(x, d), tta=True) for d in (0, *TTA_SHIFTS)]
    all_shifts = torch.stack(views).mean(0)
    result = predict_logits(model, x, tta=True, shifts=True)

    order = F.softmax(mirror, 1).amax(1).argsort()
    unsure, sure = order[: math.ceil(SHIFTED_FRACTION * 40)], order[math.ceil(SHIFTED_FRACTION * 40) :]
    assert torch.allclose(result[unsure], all_shifts[unsure], atol=1e-5)
    assert torch.allclose(result[sure], mirror[sure], atol=1e-5)
    assert not torch.allclose(mirror[unsure], all_shifts[unsure], atol=1e-3)  # the shifts did change the answer


def test_shift_tta_of_a_single_image_scores_every_shifted_view():
    torch.manual_seed(0)
    model, x = LeftHalf(), images(1)
    views = [predict_logits(model, shifted(x, d), tta=True) for d in (0, *TTA_SHIFTS)]
    assert torch.allclose(predict_logits(model, x, tta=True, shifts=True), torch.stack(views).mean(0), atol=1e-5)


def test_evaluate_counts_and_leaves_the_mode_as_found():
    torch.manual_seed(0)
    model, x = LeftHalf(), images(40)
    y = torch.arange(40) % 4
    model.train()
    result = evaluate(model, x, y, classes=("a", "b", "c", "d"), tta=True, shifts=True)
    assert model.training
    assert result.confusion.sum() == 40 and result.confusion.sum(1).tolist() == [10, 10, 10, 10]
    assert np.trace(result.confusion) / 40 == result.accuracy
    assert np.allclose(result.probabilities.sum(1), 1, atol=1e-5)
    assert set(result.per_class_accuracy) == {"a", "b", "c", "d"}


def test_many_batches_on_the_cpu_keep_freed_memory_and_one_batch_does_not(monkeypatch):
    import cifar_lab.evaluate as evaluate_module

    asked: list[bool] = []
    real = evaluate_module.freed_memory_kept

    def spy(enabled=True):
        asked.append(enabled)
        return real(enabled)

    monkeypatch.setattr(evaluate_module, "freed_memory_kept", spy)
    model = ChannelMeans()
    many = predict_logits(model, images(20), batch_size=8)
    one = predict_logits(model, images(20), batch_size=20)
    assert asked == [True, False]
    assert torch.allclose(many, one, atol=1e-5)  # the same logits either way


def test_a_checkpoint_gets_the_shifts_its_config_asks_for_only_when_tta_is_on():
    torch.manual_seed(0)
    model, x, y, classes = LeftHalf(), images(40), torch.arange(40) % 4, ("a", "b", "c", "d")
    ckpt = Checkpoint(
        model=model,
        config=TrainConfig(tta=True, tta_shifts=True, precision="fp32"),
        classes=classes,
        epoch=1,
        metrics={},
    )
    shifted_views = evaluate(model, x, y, classes=classes, tta=True, shifts=True).probabilities
    mirror_only = evaluate(model, x, y, classes=classes, tta=True).probabilities
    assert not np.allclose(shifted_views, mirror_only, atol=1e-4)
    assert np.allclose(evaluate_checkpoint(ckpt, x, y, classes=classes, tta=True).probabilities, shifted_views)
    assert np.allclose(
        evaluate_checkpoint(ckpt, x, y, classes=classes, tta=False).probabilities,
        evaluate(model, x, y, classes=classes).probabilities,
    )
    without = Checkpoint(
        model=model, config=TrainConfig(tta=True, precision="fp32"), classes=classes, epoch=1, metrics={}
    )
    assert np.allclose(evaluate_checkpoint(without, x, y, classes=classes, tta=True).probabilities, mirror_only)


def test_a_checkpoint_is_scored_in_the_number_format_it_was_trained_in():
    torch.manual_seed(0)
    model, x, y, classes = LeftHalf(), images(40), torch.arange(40) % 4, ("a", "b", "c", "d")

    def scored(precision: str) -> np.ndarray:
        ckpt = Checkpoint(model=model, config=TrainConfig(precision=precision), classes=classes, epoch=1, metrics={})
        return evaluate_checkpoint(ckpt, x, y, classes=classes, tta=False).probabilities

    in_bf16 = evaluate(model, x, y, classes=classes, dtype=torch.bfloat16).probabilities
    in_fp32 = evaluate(model, x, y, classes=classes).probabilities
    assert not np.allclose(in_bf16, in_fp32, rtol=0, atol=1e-6)  # the formats differ visibly on this model
    assert np.array_equal(scored("bf16"), in_bf16)
    assert np.array_equal(scored("fp32"), in_fp32)
