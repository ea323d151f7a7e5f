"""FastNet: a small conv net built to reach good CIFAR-10 accuracy in the fewest training seconds."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Side of the square patches the frozen first layer whitens (pixels). 2x2 patches of 3 channels give 12
# directions; each is used with both signs so the GELU after it keeps the information of either sign.
WHITEN_KERNEL = 2
WHITEN_EPS = 5e-4  # added to each eigenvalue so near-constant directions are not amplified into noise
BN_MOMENTUM = 0.4  # PyTorch's convention (weight of the new batch); high, because runs are only a few epochs
BN_EPS = 1e-12  # the inputs are already well scaled; a larger eps would shrink quiet channels
BIAS_LR_SCALE = 64.0  # BatchNorm and whitening biases learn this much faster than the weights
HEAD_SCALE = 1 / 9  # logits = HEAD_SCALE * linear(features): keeps early logits small so the loss starts near log(10)


class BatchNormNoScale(nn.BatchNorm2d):
    """BatchNorm with a learned shift only: the scale stays 1 because the next conv can absorb it."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Module):
    """conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU; halves the image side."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False)
        self.norm1 = BatchNormNoScale(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.norm2 = BatchNormNoScale(channels_out)
        for conv in (self.conv1, self.conv2):
            _dirac_init(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


def _dirac_init(conv: nn.Conv2d) -> None:
    """Make the first in_channels filters pass their input through unchanged: an implicit residual."""
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(conv.in_channels, conv.out_channels)])


class FastNet(nn.Module):
    """Frozen patch-whitening layer, three conv groups of widths (w, 4w, 4w), global max-pool, scaled linear head.

    Input: (B, 3, 32, 32) float, normalised per channel; other sides >= 16 work too (the head pools globally).
    Call `init_from_data` with a few thousand training images before training; until then the first layer is
    an untrained random projection.
    """

    def __init__(self, width: int = 64, num_classes: int = 10, dropout: float = 0.0) -> None:
        super().__init__()
        widths = (width, 4 * width, 4 * width)
        whiten_width = 2 * 3 * WHITEN_KERNEL**2  # 24: 12 patch directions, each with both signs
        self.whiten = nn.Conv2d(3, whiten_width, WHITEN_KERNEL, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.groups = nn.Sequential(
            ConvGroup(whiten_width, widths[0]), ConvGroup(widths[0], widths[1]), ConvGroup(widths[1], widths[2])
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[2], num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.whiten(x))  # (B, 24, 31, 31)
        x = self.groups(x)  # (B, 4w, 3, 3) at 32x32 input
        x = self.dropout(x.amax(dim=(2, 3)))  # (B, 4w)
        return self.head(x) * HEAD_SCALE

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Set the frozen whitening filters from (B, 3, H, W) normalised training images (B ~ 5000 is plenty).

        The filters are the eigenvectors of the covariance of all 2x2 patches, scaled by 1/sqrt(eigenvalue),
        so the first half of the layer's outputs has identity covariance over these patches; the bias
        centres them. The second half is the negation of the first.
        """
        weight = self.whiten.weight
        patches = _patches(x.to(device=weight.device, dtype=torch.float32), WHITEN_KERNEL)  # (N, 12)
        mean = patches.mean(dim=0)
        centred = patches - mean
        covariance = centred.T @ centred / len(patches)  # (12, 12)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance.double())
        filters = (eigenvectors.T / torch.sqrt(eigenvalues[:, None] + WHITEN_EPS)).float()  # (12, 12) rows
        filters = filters.flip(0)  # largest-variance direction first
        bias = -(filters @ mean)
        shape = (-1, 3, WHITEN_KERNEL, WHITEN_KERNEL)
        weight.copy_(torch.cat((filters, -filters)).reshape(shape).to(weight.dtype))
        self.whiten.bias.copy_(torch.cat((bias, -bias)).to(self.whiten.bias.dtype))

    def param_groups(self, config: Any) -> list[dict[str, Any]]:
        """Optimizer groups. Units: config.lr is the peak lr of the conv and linear weights for the batch-mean
        loss; config.weight_decay is PyTorch's (coupled) decay for them, so each step shrinks weights by lr * wd.
        With SGD, biases learn BIAS_LR_SCALE times faster with weight decay divided by the same factor, so
        every parameter decays by the same fraction per step (Adam rescales updates itself, so it gets 1x).
        The frozen whitening filters are left out.
        """
        scale = BIAS_LR_SCALE if getattr(config, "opt", "sgd") == "sgd" else 1.0
        biases = [p for p in self.parameters() if p.requires_grad and p.ndim == 1]
        weights = [p for p in self.parameters() if p.requires_grad and p.ndim > 1]
        # lr_scale: the loop's schedule sets each group's lr to peak * factor * lr_scale.
        return [
            dict(params=weights, lr=config.lr, lr_scale=1.0, weight_decay=config.weight_decay),
            dict(params=biases, lr=config.lr * scale, lr_scale=scale, weight_decay=config.weight_decay / scale),
        ]


def _patches(x: torch.Tensor, side: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * (H-side+1) * (W-side+1), C * side * side), flattened like a conv filter (C, kh, kw)."""
    channels = x.shape[1]
    windows = x.unfold(2, side, 1).unfold(3, side, 1)  # (B, C, H', W', side, side)
    return windows.permute(0, 2, 3, 1, 4, 5).reshape(-1, channels * side * side)
