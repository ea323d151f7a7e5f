"""Explanations: Grad-CAM finds a planted patch; filters, feature maps and the summary match the model."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from cifar_lab.config import TrainConfig
from cifar_lab.data import CifarData
from cifar_lab.explain import (
    BORDER,
    MAX_STAGES,
    FeatureMaps,
    default_cam_layer,
    feature_grid,
    feature_maps,
    filter_grid,
    first_layer_filters,
    grad_cam,
    jet,
    overlay,
)
from cifar_lab.models import MODELS, build_model, count_macs, count_params
from cifar_lab.preprocess import normalize
from cifar_lab.summary import model_summary
from cifar_lab.train import train

HAS_FASTNET = importlib.util.find_spec("cifar_lab.fastnet") is not None
ARCH_LIST = [a for a in MODELS if a != "fastnet" or HAS_FASTNET]
PATCH = 6  # side of the planted bright square, pixels
QUADRANTS = ((0, 0), (0, 1), (1, 0), (1, 1))  # class k's patch sits in quadrant (row half, column half)


def small(arch: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return build_model(TrainConfig(arch=arch, width=8, depth=2, **kw))


def corner_patches(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3, 32, 32) uint8 dim noise with one white square near the image corner that is the class (0..3)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 160, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % len(QUADRANTS)
    inset = torch.randint(0, 5, (n, 2), generator=g)  # pixels between the square and the corner
    for i in range(n):
        top, left = (32 - PATCH - v if half else v for half, v in zip(QUADRANTS[y[i]], inset[i].tolist()))
        x[i, :, top : top + PATCH, left : left + PATCH] = 255
    return x, y


@pytest.fixture(scope="module")
def patch_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny VGG trained (a few seconds) to tell the four patch corners apart, and 32 unseen test images."""
    train_x, train_y = corner_patches(1024, seed=0)
    test_x, test_y = corner_patches(32, seed=1)
    data = CifarData(
        train_x, train_y, test_x, test_y, ("top-left", "top-right", "bottom-left", "bottom-right"), "corner patches"
    )
    # flip and crop off: both would move the patch and so change the class. One thread: the steps are tiny.
    config = TrainConfig(
        arch="cnn",
        width=8,
        depth=2,
        batch_size=64,
        epochs=6,
        precision="fp32",
        device="cpu",
        flip=False,
        crop_pad=0,
        threads=1,
        seed=0,
    )
    threads = torch.get_num_threads()
    try:
        result = train(config, data)
    finally:
        torch.set_num_threads(threads)
    assert result.test_accuracy > 0.9, "the patch task should be learnt; Grad-CAM of a guessing model means nothing"
    return result.model, normalize(test_x), test_y


def test_grad_cam_peaks_in_the_planted_patchs_quadrant(patch_model):
    model, x, y = patch_model
    hits, inside = 0, 0
    for image, label in zip(x, y.tolist()):
        cam = grad_cam(model, image[None])
        assert cam.shape == (32, 32) and cam.dtype == np.float32 and cam.min() >= 0 and cam.max() == 1
        row, col = np.unravel_index(cam.argmax(), cam.shape)
        hits += (row // 16, col // 16) == QUADRANTS[label]
        halves = cam.reshape(2, 16, 2, 16).sum(axis=(1, 3))  # (2, 2) heat per quadrant
        inside += np.unravel_index(halves.argmax(), (2, 2)) == QUADRANTS[label]
    assert hits >= 0.9 * len(y), f"the heatmap's peak was in the patch's quadrant for only {hits}/{len(y)} images"
    assert inside >= 0.9 * len(y), f"most heat lay in the patch's quadrant for only {inside}/{len(y)} images"


def test_grad_cam_for_a_chosen_class_differs_from_the_predicted_one(patch_model):
    model, x, y = patch_model
    image, label = x[:1], int(y[0])
    assert np.array_equal(grad_cam(model, image), grad_cam(model, image, target_class=label))
    other = grad_cam(model, image, target_class=(label + 3) % 4)
    assert other.shape == (32, 32) and not np.allclose(other, grad_cam(model, image))


@pytest.mark.parametrize("arch", ARCH_LIST)
def test_grad_cam_shape_and_range_every_arch(arch):
    model = small(arch)
    cam = grad_cam(model, torch.randn(1, 3, 32, 32), target_class=3)
    assert cam.shape == (32, 32) and cam.dtype == np.float32
    assert cam.min() >= 0 and cam.max() <= 1


def test_grad_cam_matches_the_input_size_and_takes_a_layer():
    model = small("cnn")
    assert grad_cam(model, torch.randn(1, 3, 40, 40)).shape == (40, 40)
    first = model.features[0]
    cam = grad_cam(model, torch.randn(3, 32, 32), layer=first)
    assert cam.shape == (32, 32) and cam.min() >= 0 and cam.max() <= 1


def test_grad_cam_of_a_silent_layer_is_zero_not_nan():
    """An all-zero activation (no evidence anywhere) gives a zero map, not a division by zero."""
    model = small("tutorial")
    with torch.no_grad():
        model.conv1.weight.zero_()
        model.conv1.bias.zero_()
    cam = grad_cam(model, torch.randn(1, 3, 32, 32), layer=model.conv1)
    assert np.isfinite(cam).all() and cam.max() == 0


def test_grad_cam_works_inside_a_callers_inference_mode():
    model = small("cnn")
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        inside = grad_cam(model, x)
    assert np.array_equal(inside, grad_cam(model, x))


@pytest.mark.parametrize(
    "arch, layer",
    [("tutorial", "conv2"), ("cnn", "features.4"), ("resnet", "net.8")]
    + ([("fastnet", "groups.2")] if HAS_FASTNET else []),
)
def test_default_cam_layer_is_the_last_spatial_block(arch, layer):
    assert default_cam_layer(small(arch)) == layer


def test_bad_inputs_are_refused_with_the_fix():
    model = small("tutorial")
    with pytest.raises(ValueError, match="preprocess_image"):
        grad_cam(model, torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="preprocess_image"):
        feature_maps(model, torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="0..9"):
        grad_cam(model, torch.zeros(1, 3, 32, 32), target_class=10)
    with pytest.raises(ValueError, match="layer"):
        grad_cam(model, torch.zeros(1, 3, 32, 32), layer=nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="no Conv2d"):
        first_layer_filters(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)))


@pytest.mark.parametrize("arch", ARCH_LIST)
def test_explaining_leaves_modes_weights_and_grads_as_found(arch):
    model = small(arch)
    model.train()
    loss = model(torch.randn(4, 3, 32, 32)).sum()
    loss.backward()
    next(model.parameters()).grad = None  # a parameter without a grad must stay without one
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}  # BatchNorm running stats included
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    x = torch.randn(1, 3, 32, 32)
    grad_cam(model, x)
    feature_maps(model, x)
    first_layer_filters(model)
    model_summary(model)
    default_cam_layer(model)
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    for p, g in zip(model.parameters(), grads):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())


@pytest.mark.parametrize(
    "arch, shape",
    [("tutorial", (6, 5, 5, 3)), ("cnn", (8, 3, 3, 3)), ("resnet", (8, 3, 3, 3))]
    + ([("fastnet", (24, 2, 2, 3))] if HAS_FASTNET else []),
)
def test_first_layer_filters_have_the_first_convs_shape(arch, shape):
    filters = first_layer_filters(small(arch))
    assert filters.shape == shape and filters.dtype == np.uint8
    assert (filters.reshape(len(filters), -1).min(1) == 0).all()  # each filter stretched on its own
    assert (filters.reshape(len(filters), -1).max(1) == 255).all()


def test_filter_grid_lays_tiles_out_with_borders():
    filters = first_layer_filters(small("tutorial"))  # (6, 5, 5, 3)
    grid = filter_grid(filters, cols=4, scale=2)
    assert grid.shape == (2 * 11 + 1, 4 * 11 + 1, 3) and grid.dtype == np.uint8
    assert (grid[0] == BORDER).all() and (grid[:, 0] == BORDER).all() and (grid[11] == BORDER).all()
    assert np.array_equal(grid[1:11, 12:22], filters[1].repeat(2, axis=0).repeat(2, axis=1))
    assert (grid[12:22, 23:] == BORDER).all()  # slots 6 and 7 are empty


EXPECTED_MAPS = {
    "tutorial": [("conv1", (6, 28, 28)), ("conv2", (16, 10, 10))],
    "cnn": [
        ("features.0", (8, 32, 32)),
        ("features.1", (8, 32, 32)),
        ("features.3", (16, 16, 16)),
        ("features.4", (16, 16, 16)),
    ],
    "resnet": [
        ("net.0", (8, 32, 32)),
        ("net.1", (16, 32, 32)),
        ("net.3", (16, 16, 16)),
        ("net.4", (32, 16, 16)),
        ("net.6", (64, 8, 8)),
        ("net.8", (64, 4, 4)),
    ],
    "fastnet": [
        ("whiten", (24, 31, 31)),
        ("groups.0", (8, 15, 15)),
        ("groups.1", (32, 7, 7)),
        ("groups.2", (32, 3, 3)),
    ],
}


@pytest.mark.parametrize("arch", ARCH_LIST)
def test_feature_maps_have_the_shapes_the_model_implies(arch):
    maps = feature_maps(small(arch), torch.randn(1, 3, 32, 32))
    assert [(m.name, m.array.shape) for m in maps] == EXPECTED_MAPS[arch]
    assert all(m.array.dtype == np.float32 for m in maps)


def test_feature_maps_are_the_layers_real_outputs():
    model = small("tutorial")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = model.conv1(x)[0].numpy()
    np.testing.assert_allclose(feature_maps(model, x)[0].array, expected, rtol=1e-5, atol=1e-6)


def test_deep_nets_show_at_most_max_stages_first_and_last_kept():
    model = build_model(TrainConfig(arch="cnn", width=4, depth=5))  # 10 conv blocks
    names = [m.name for m in feature_maps(model, torch.randn(1, 3, 32, 32))]
    assert len(names) == MAX_STAGES and names[0] == "features.0" and names[-1] == "features.13"


def test_feature_grid_shows_the_most_active_channels_in_channel_order():
    array = np.zeros((6, 4, 4), np.float32)
    for c in range(6):
        array[c, c // 4, c % 4] = 1.0  # channel c lights one pixel of its own
    array += np.array([0, 5, 0, 0, 9, 0], np.float32)[:, None, None]  # channels 1 and 4 are the most active
    grid = feature_grid(FeatureMaps("x", array), max_channels=2)
    tile = 48  # 4 pixels scaled by ceil(MIN_TILE / 4) = 12
    assert grid.shape == (tile + 2, 2 * (tile + 1) + 1, 3) and grid.dtype == np.uint8
    first, second = grid[1 : 1 + tile, 1 : 1 + tile, 0], grid[1 : 1 + tile, tile + 2 : 2 * tile + 2, 0]
    assert np.array_equal(first, (array[1] > 5).repeat(12, 0).repeat(12, 1) * 255)  # channel 1 comes first
    assert np.array_equal(second, (array[4] > 9).repeat(12, 0).repeat(12, 1) * 255)
    assert (grid[0] == BORDER).all() and (grid[:, tile + 1] == BORDER).all()


def test_feature_grid_of_flat_maps_is_grey_and_bad_shapes_are_refused():
    grid = feature_grid(np.zeros((3, 4, 4), np.float32))
    assert grid.shape == (48 + 2, 3 * 49 + 1, 3) and grid[10, 10].tolist() == [128, 128, 128]
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        feature_grid(np.zeros((4, 4), np.float32))


def test_overlay_scales_the_picture_and_blends_jet():
    image = np.zeros((32, 32, 3), np.uint8)
    image[:16] = 200
    cam = np.zeros((32, 32), np.float32)
    cam[:, 16:] = 1.0
    plain = overlay(image, cam, alpha=0.0)
    assert plain.shape == (128, 128, 3) and plain.dtype == np.uint8
    assert np.array_equal(plain, image.repeat(4, axis=0).repeat(4, axis=1))  # hard pixel edges
    heat = overlay(image, cam, alpha=1.0)
    assert heat[64, 127].tolist() == [128, 0, 0] and heat[64, 0].tolist() == [0, 0, 128]  # jet: hot red, cold blue
    assert overlay(np.zeros((64, 48, 3), np.uint8), cam).shape == (128, 96, 3)
    assert overlay(image, cam, side=None).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="uint8"):
        overlay(image.astype(np.float32), cam)


def test_jet_runs_blue_to_red():
    ramp = jet(np.linspace(0, 1, 5))
    assert ramp.shape == (5, 3) and ramp.min() >= 0 and ramp.max() <= 1
    assert ramp[0].argmax() == 2 and ramp[2].argmax() == 1 and ramp[4].argmax() == 0


@pytest.mark.parametrize("arch", ARCH_LIST)
def test_summary_totals_match_the_model(arch):
    model = small(arch)
    summary = model_summary(model)
    assert summary.total_params == count_params(model) == sum(r.params for r in summary.rows)
    assert summary.macs == count_macs(model)
    assert summary.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert len(summary.table()) == len(summary.rows)


def test_summary_rows_of_the_tutorial_net():
    summary = model_summary(small("tutorial"))
    rows = {r.name: r for r in summary.rows}
    assert list(rows) == ["conv1", "pool", "conv2", "fc1", "fc2", "fc3"]
    assert (rows["conv1"].type, rows["conv1"].output_shape, rows["conv1"].params) == ("Conv2d", (6, 28, 28), 456)
    assert rows["pool"].calls == 2 and rows["fc3"].output_shape == (10,)
    assert summary.total_params == 62_006
    assert summary.table()[1]["output"] == "6x14x14 (x2)"
    words = [(r["layer"], r["block"]) for r in summary.table()]
    assert words[0] == ("convolution: learned filters", "1 (28x28)")
    assert words[2] == ("convolution: learned filters", "2 (10x10)")
    assert words[-1] == ("fully connected: one score per class", "-")
    assert summary.table()[0]["name in the code"] == "conv1 (Conv2d)"


def test_fastnet_layers_are_named_in_words_and_its_whitening_is_said_to_be_frozen():
    table = model_summary(small("fastnet")).table()
    assert table[0]["layer"] == "whitening: fixed filters computed from the data (frozen)"
    kinds = {r["layer"] for r in table}
    assert {"convolution: learned filters", "normalisation", "fully connected: one score per class"} <= kinds
    assert not any(r["layer"] in ("Conv2d", "BatchNormNoScale") for r in table)  # no class names as the words


def test_summary_counts_shared_and_own_parameters_once():
    shared = nn.Linear(4, 4)

    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))  # held by the model itself, not by a leaf layer
            self.a, self.b = shared, shared

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x.mean(dim=(2, 3)).repeat(1, 2)[:, :4])) * self.scale

    model = Odd()
    summary = model_summary(model)
    assert summary.total_params == count_params(model) == sum(r.params for r in summary.rows) == 21
