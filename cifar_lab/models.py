"""The model zoo: a registry of CIFAR-10 networks by name, with size and cost counters."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from .settings import described

if TYPE_CHECKING:  # the config takes its arch choices from MODELS, so it imports this module
    from .config import TrainConfig


@runtime_checkable
class InitFromData(Protocol):
    """A model with layers set from training images before the first step (fastnet's whitening filters)."""

    def init_from_data(self, x: torch.Tensor) -> None: ...


@runtime_checkable
class EpochAware(Protocol):
    """A model told each epoch (0-based) before it starts (fastnet freezes its whitening bias part way)."""

    def start_epoch(self, epoch: int, epochs: int) -> None: ...


class TutorialNet(nn.Module):
    """The PyTorch CIFAR-10 tutorial's network, layer for layer (62,006 parameters).

    Attribute names match the tutorial so its saved `state_dict` loads as is.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))  # (B, 6, 14, 14)
        x = self.pool(F.relu(self.conv2(x)))  # (B, 16, 5, 5)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def conv_bn(c_in: int, c_out: int, batchnorm: bool = True) -> nn.Sequential:
    """3x3 conv (same padding) -> BatchNorm -> ReLU; the conv drops its bias when BN follows."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batchnorm)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class VGGNet(nn.Module):
    """The tutorial's "more conv layers" improvement: `depth` blocks of two 3x3 convs then a 2x2 max-pool.

    Block i has width * 2**i channels (capped at 512); the head averages the map and applies dropout.
    """

    def __init__(
        self, width: int = 32, depth: int = 3, batchnorm: bool = True, dropout: float = 0.0, num_classes: int = 10
    ) -> None:
        super().__init__()
        blocks, c_in = [], 3
        for i in range(depth):
            c_out = min(width * 2**i, 512)
            blocks += [conv_bn(c_in, c_out, batchnorm), conv_bn(c_out, c_out, batchnorm), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, C, 32 / 2**depth, 32 / 2**depth)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(self.dropout(x))


class Residual(nn.Module):
    """x + f(x), with f two conv-BN-ReLU layers of unchanged width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """The ResNet-9 of the DAWNBench CIFAR-10 entries; widths w, 2w, 4w, 8w (w=64: 6.6 M parameters)."""

    def __init__(self, width: int = 64, dropout: float = 0.0, num_classes: int = 10) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            conv_bn(3, w),
            conv_bn(w, 2 * w),
            nn.MaxPool2d(2),
            Residual(2 * w),  # 16x16
            conv_bn(2 * w, 4 * w),
            nn.MaxPool2d(2),  # 8x8
            conv_bn(4 * w, 8 * w),
            nn.MaxPool2d(2),
            Residual(8 * w),  # 4x4
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(8 * w, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Scaling the logits down keeps the untrained net's softmax soft; 0.125 is the DAWNBench choice.
        return self.classifier(self.net(x)) * 0.125


def _tutorial(config: TrainConfig, num_classes: int) -> nn.Module:
    """the PyTorch tutorial's 2-conv LeNet, 62 k parameters"""
    return TutorialNet(num_classes)


def _cnn(config: TrainConfig, num_classes: int) -> nn.Module:
    """VGG-style: blocks of two 3x3 convs with BatchNorm, then max-pool"""
    return VGGNet(config.width, config.depth, config.batchnorm, config.dropout, num_classes)


def _resnet(config: TrainConfig, num_classes: int) -> nn.Module:
    """ResNet-9 with residual blocks, the classic fast CIFAR-10 net"""
    return ResNet9(config.width, config.dropout, num_classes)


def _fastnet(config: TrainConfig, num_classes: int) -> nn.Module:
    """whitened first layer, three conv groups; fastest to high accuracy"""
    from .fastnet import FastNet  # imported lazily: the module also holds its data-dependent init

    return FastNet(
        width=config.width,
        num_classes=num_classes,
        dropout=config.dropout,
        whiten_bias_fraction=config.whiten_bias_fraction,
    )


# The registry: name -> builder of a fresh network. The builder's docstring is the description that --help, the
# Train form and docs/configuration.md show; the names are the config's arch choices.
MODELS: dict[str, Callable[[TrainConfig, int], nn.Module]] = {
    "tutorial": _tutorial,
    "cnn": _cnn,
    "resnet": _resnet,
    "fastnet": _fastnet,
}
DESCRIPTIONS: dict[str, str] = described(MODELS)


def build_model(config: TrainConfig, num_classes: int = 10) -> nn.Module:
    """A freshly initialised network for `config.arch`."""
    if config.arch not in MODELS:
        raise ValueError(f"unknown architecture {config.arch!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[config.arch](config, num_classes)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, image_size: int = 32) -> int:
    """Multiply-adds of one forward pass for one image (convolutions and linear layers)."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += out[0].numel() * k

    def linear_hook(m: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * m.in_features

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total
