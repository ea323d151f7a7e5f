"""The model registry: output shapes, parameter and multiply-add counts, the tutorial net layer for layer."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from cifar_lab.config import ARCHS, TrainConfig
from cifar_lab.models import DESCRIPTIONS, MODELS, TutorialNet, build_model, count_macs, count_params

HAS_FASTNET = importlib.util.find_spec("cifar_lab.fastnet") is not None
ARCH_LIST = [a for a in MODELS if a != "fastnet" or HAS_FASTNET]


def small(arch: str, **kw) -> TrainConfig:
    return TrainConfig(arch=arch, width=8, depth=2, **kw)


def test_registry_matches_config_choices():
    assert set(MODELS) == set(ARCHS)
    assert set(DESCRIPTIONS) == set(MODELS)


@pytest.mark.parametrize("arch", ARCH_LIST)
@pytest.mark.parametrize("num_classes", [10, 3])
def test_output_shape_every_arch(arch, num_classes):
    torch.manual_seed(0)
    model = build_model(small(arch), num_classes=num_classes)
    x = torch.randn(5, 3, 32, 32)
    for mode in (True, False):
        model.train(mode)
        out = model(x)
        assert out.shape == (5, num_classes)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ARCH_LIST)
def test_channels_last_input_gives_same_output(arch):
    torch.manual_seed(0)
    model = build_model(small(arch)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a = model(x)
        b = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_cnn_every_depth(depth):
    model = build_model(TrainConfig(arch="cnn", width=4, depth=depth))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 * depth


def test_cnn_batchnorm_switch():
    with_bn = build_model(small("cnn", batchnorm=True))
    without = build_model(small("cnn", batchnorm=False))
    assert any(isinstance(m, nn.BatchNorm2d) for m in with_bn.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in without.modules())


def test_dropout_is_active_in_train_mode_only():
    torch.manual_seed(0)
    model = build_model(small("cnn", dropout=0.5))
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_tutorial_net_has_exactly_62006_parameters():
    assert count_params(build_model(TrainConfig(arch="tutorial"))) == 62_006
    assert count_params(TutorialNet()) == 62_006


def test_tutorial_state_dict_keys_match_the_pytorch_tutorial():
    expected = {f"{layer}.{p}" for layer in ("conv1", "conv2", "fc1", "fc2", "fc3") for p in ("weight", "bias")}
    state = build_model(TrainConfig(arch="tutorial")).state_dict()
    assert set(state) == expected
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["conv1.weight"] == (6, 3, 5, 5) and shapes["conv2.weight"] == (16, 6, 5, 5)
    assert shapes["fc1.weight"] == (120, 400) and shapes["fc2.weight"] == (84, 120)
    assert shapes["fc3.weight"] == (10, 84)


def test_tutorial_macs_equal_the_hand_count():
    conv1 = 6 * 28 * 28 * (5 * 5 * 3)  # 6 output maps of 28x28, each output a 5x5x3 dot product
    conv2 = 16 * 10 * 10 * (5 * 5 * 6)
    linear = 400 * 120 + 120 * 84 + 84 * 10
    assert conv1 + conv2 + linear == 651_720
    assert count_macs(build_model(TrainConfig(arch="tutorial"))) == 651_720


@pytest.mark.parametrize("arch", ARCH_LIST)
def test_count_macs_positive_and_leaves_model_as_found(arch):
    model = build_model(small(arch))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    macs = count_macs(model)
    assert isinstance(macs, int) and macs > count_params(model) / 10
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats untouched


def test_macs_and_params_grow_with_width():
    narrow, wide = build_model(small("cnn")), build_model(TrainConfig(arch="cnn", width=16, depth=2))
    assert count_macs(wide) > 3 * count_macs(narrow)
    assert count_params(wide) > 3 * count_params(narrow)


def test_resnet_full_width_is_about_6_6_million_parameters():
    assert 6.4e6 < count_params(build_model(TrainConfig(arch="resnet", width=64))) < 6.8e6


def test_build_model_unknown_arch_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_model(SimpleNamespace(arch="nope", width=8, depth=2, batchnorm=True, dropout=0.0))
    message = str(err.value)
    assert "nope" in message
    for name in MODELS:
        assert name in message


def test_same_seed_same_initial_weights():
    torch.manual_seed(3)
    a = build_model(small("cnn")).state_dict()
    torch.manual_seed(3)
    b = build_model(small("cnn")).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
