"""FastNet: a small conv net built to reach good CIFAR-10 accuracy in the fewest training seconds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # models.py builds FastNet, and the config imports models.py
    from .config import TrainConfig

# Side of the square patches the frozen first layer whitens (pixels). 2x2 patches of 3 channels give 12
# directions; each is used with both signs so the GELU after it keeps the information of either sign.
WHITEN_KERNEL = 2
WHITEN_EPS = 5e-4  # added to each eigenvalue so near-constant directions are not amplified into noise
BN_MOMENTUM = 0.4  # PyTorch's convention (weight of the new batch); high, because runs are only a few epochs
BN_EPS = 1e-12  # the inputs are already well scaled; a larger eps would shrink quiet channels
# The whitening bias trains during this fraction of the epochs (at least one), then freezes: a trainable bias
# makes backpropagation compute the gradient of the first 31x31 conv's input, 11 % of a step's time at width 32.
# Measured at w32, 3 epochs: bias trained in epoch 1 only 85.8 %, always 85.8 %, never 85.4 %. The default of
# TrainConfig.whiten_bias_fraction.
WHITEN_BIAS_FRACTION = 1 / 3
HEAD_SCALE = 1 / 9  # logits = HEAD_SCALE * linear(features): keeps early logits small so the loss starts near log(10)
NEWTON_SCHULZ_STEPS = 3  # enough: the update only needs singular values near 1, not exactly 1


class BatchNormNoScale(nn.BatchNorm2d):
    """BatchNorm with a learned shift only: the scale stays 1 because the next conv can absorb it."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Module):
    """conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU; halves the image side.

    With `skip_conv`, a third conv -> BN follows, added to the first GELU's output before a last GELU, so the
    second and third convs form a residual block.
    With `pooled_only`, the first conv computes only the rows and columns the max-pool reads (see
    `_pooled_padding`): the same outputs, for less work on odd sides.
    """

    def __init__(self, channels_in: int, channels_out: int, skip_conv: bool = False, pooled_only: bool = False) -> None:
        super().__init__()
        self.pooled_only = pooled_only
        # Padding is not part of the state_dict, so checkpoints load the same either way.
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=0 if pooled_only else 1, bias=False)
        self.norm1 = BatchNormNoScale(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.norm2 = BatchNormNoScale(channels_out)
        self.conv3 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False) if skip_conv else None
        self.norm3 = BatchNormNoScale(channels_out) if skip_conv else None
        for conv in (self.conv1, self.conv2, self.conv3):
            if conv is not None:
                _dirac_init(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pooled_only:
            x = F.pad(x, _pooled_padding(x))
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        y = F.gelu(self.norm2(self.conv2(x)))
        if self.conv3 is None or self.norm3 is None:  # built and dropped together (see _load_from_state_dict)
            return y
        return F.gelu(self.norm3(self.conv3(y)) + x)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # Checkpoints saved before the last group had its third conv: drop the conv, so they load and predict
        # exactly as they were trained. PyTorch then skips the removed children.
        if self.conv3 is not None and prefix + "conv3.weight" not in state_dict:
            self.conv3 = self.norm3 = None
        super()._load_from_state_dict(state_dict, prefix, *args)


def _pooled_padding(x: torch.Tensor) -> tuple[int, int, int, int]:
    """F.pad's (left, right, top, bottom) zero padding for a 3x3 conv feeding a 2x2 max-pool: the usual one pixel,
    except on the right and bottom of an odd side. There the usual padding's last output column (row) is one the
    pool drops (it rounds the side down), so leaving it out skips its work and changes no pooled value."""
    height, width = x.shape[-2:]
    return (1, 1 - width % 2, 1, 1 - height % 2)


def _dirac_init(conv: nn.Conv2d) -> None:
    """Make the first in_channels filters pass their input through unchanged: an implicit residual."""
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(conv.in_channels, conv.out_channels)])


class FastNet(nn.Module):
    """Frozen patch-whitening layer, three conv groups of widths (w, 4w, 4w), global max-pool, scaled linear head.

    The last group has a third conv with a skip (see ConvGroup): at 3x3 pixels it costs about 5 % more time per
    training step, and over 10 epochs it scored as well as two convs over 11 (docs/benchmarks.md).

    Input: (B, 3, 32, 32) float, normalised per channel; other sides >= 16 work too (the head pools globally).
    Call `init_from_data` with a few thousand training images before training; until then the first layer is
    an untrained random projection.
    """

    def __init__(
        self,
        width: int = 64,
        num_classes: int = 10,
        dropout: float = 0.0,
        whiten_bias_fraction: float = WHITEN_BIAS_FRACTION,
    ) -> None:
        super().__init__()
        self.whiten_bias_fraction = whiten_bias_fraction
        widths = (width, 4 * width, 4 * width)
        whiten_width = 2 * 3 * WHITEN_KERNEL**2  # 24: 12 patch directions, each with both signs
        self.whiten = nn.Conv2d(3, whiten_width, WHITEN_KERNEL, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        # Only the middle group computes just what its pool reads (15x15 -> 14x14 at 32x32 input): 2-4 % less
        # time per training step at width 48 on a 2-core CPU, about 1 % at width 32. On the 31x31 and 7x7 sides of
        # the other groups the padding copy and the backend's odd-shaped kernels cost what the skipped rows save
        # (docs/benchmarks.md).
        self.groups = nn.Sequential(
            ConvGroup(whiten_width, widths[0]),
            ConvGroup(widths[0], widths[1], pooled_only=True),
            ConvGroup(widths[1], widths[2], skip_conv=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[2], num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.whiten(x))  # (B, 24, 31, 31)
        x = self.groups(x)  # (B, 4w, 3, 3) at 32x32 input
        x = self.dropout(x.amax(dim=(2, 3)))  # (B, 4w)
        return self.head(x) * HEAD_SCALE

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the training loop before each epoch (0-based): freezes the whitening bias after the first
        `whiten_bias_fraction` of the epochs (see WHITEN_BIAS_FRACTION). Without the call the bias trains
        throughout."""
        self._whiten_bias().requires_grad_(epoch < max(1, round(epochs * self.whiten_bias_fraction)))

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
        whiten_bias = self._whiten_bias()
        whiten_bias.copy_(torch.cat((bias, -bias)).to(whiten_bias.dtype))

    def _whiten_bias(self) -> torch.Tensor:
        bias = self.whiten.bias
        assert bias is not None, "the whitening conv is built with bias=True"
        return bias

    def param_groups(self, config: TrainConfig) -> list[dict[str, Any]]:
        """Optimizer groups, each with its `lr_scale`: build_optimizer gives it a peak lr of config.lr * lr_scale.
        Units: config.lr is the peak lr of the linear head (and, with SGD, of the conv filters) for the batch-mean
        loss; config.weight_decay is PyTorch's coupled decay, so each step shrinks those weights by lr * wd. With SGD
        or Muon, biases learn config.bias_lr_scale times faster with the decay divided by the same factor, so every
        parameter decays by the same fraction per step (Adam rescales updates itself: 1x). With opt="muon" the conv
        filters form an `orthogonalize` group (see `Muon`) of scale config.muon_lr_scale with momentum
        config.muon_momentum. The frozen whitening filters are left out.
        """
        scale = config.bias_lr_scale if config.opt in ("sgd", "muon") else 1.0
        # Chosen by role, not by requires_grad, so freezing the whitening bias later leaves the groups unchanged.
        frozen = {id(self.whiten.weight)} | {id(m.weight) for m in self.modules() if isinstance(m, BatchNormNoScale)}
        trainable = [p for p in self.parameters() if id(p) not in frozen]
        biases = [p for p in trainable if p.ndim == 1]
        filters = [p for p in trainable if p.ndim == 4] if config.opt == "muon" else []
        weights = [p for p in trainable if p.ndim > 1 and not any(p is f for f in filters)]
        groups = [
            dict(params=weights, lr_scale=1.0, weight_decay=config.weight_decay),
            dict(params=biases, lr_scale=scale, weight_decay=config.weight_decay / scale),
        ]
        if filters:
            groups.append(
                dict(
                    params=filters,
                    lr_scale=config.muon_lr_scale,
                    momentum=config.muon_momentum,
                    weight_decay=0.0,
                    orthogonalize=True,
                )
            )
        return groups


class Muon(torch.optim.Optimizer):
    """Nesterov SGD, except in groups with `orthogonalize=True` (conv filters), whose momentum update is replaced by
    the nearest semi-orthogonal matrix (Newton-Schulz) and applied to filters held at a fixed norm.

    Each filter bank is followed by BatchNorm, so the loss ignores its scale; fixing the scale makes lr the size
    of the step relative to the weights, and orthogonalising gives every direction of the update equal weight.
    Other groups follow torch.optim.SGD exactly (coupled weight decay, dampening 0).
    """

    def __init__(
        self, params: Any, lr: float, momentum: float = 0.85, nesterov: bool = True, weight_decay: float = 0.0
    ) -> None:
        super().__init__(
            params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, orthogonalize=False)
        )

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            momentum, orthogonal = group["momentum"], group["orthogonalize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad if orthogonal or not group["weight_decay"] else p.grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.clone()
                else:
                    state["momentum_buffer"].mul_(momentum).add_(grad)
                buf = state["momentum_buffer"]
                update = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
                if orthogonal:
                    p.mul_(len(p) ** 0.5 / p.norm().clamp_min(1e-12))  # output filters of norm 1 on average
                    update = orthogonalize(update.reshape(len(p), -1)).view_as(p)
                p.add_(update, alpha=-group["lr"])
        return loss


def orthogonalize(g: torch.Tensor, steps: int = NEWTON_SCHULZ_STEPS) -> torch.Tensor:
    """(M, N) -> approximately U V^T of g's SVD, in g's dtype: singular values pushed towards 1 (into about
    [0.7, 1.2] unless g is badly conditioned; the smallest then grow a lot but stay below).

    A quintic Newton-Schulz iteration whose coefficients (from the Muon optimizer) maximise the slope at zero,
    so three steps suffice. Each step maps x to p(x x^T) x for a polynomial p, so x x^T after a step is
    p(G) G p(G) with G = x x^T before it: the iteration runs on the small Gram matrix alone and multiplies the
    wide matrix only twice, not twice per step. For a (192, 1728) filter bank that halves the time (in
    exact arithmetic it is the same iteration).
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.float()
    x = x / (x.norm() + 1e-7)  # spectral norm <= Frobenius norm = 1: inside the iteration's basin
    wide = x.shape[0] <= x.shape[1]
    x = x if wide else x.T  # iterate on the smaller Gram matrix
    gram = x @ x.T
    identity = torch.eye(len(gram), device=gram.device, dtype=gram.dtype)
    total = identity  # the product of every step's p(G), applied to x at the end
    for step in range(steps):
        factor = a * identity + b * gram + c * gram @ gram
        total = factor @ total
        if step < steps - 1:
            gram = factor @ gram @ factor
    x = total @ x
    return (x if wide else x.T).to(g.dtype)


def _patches(x: torch.Tensor, side: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * (H-side+1) * (W-side+1), C * side * side), flattened like a conv filter (C, kh, kw)."""
    channels = x.shape[1]
    windows = x.unfold(2, side, 1).unfold(3, side, 1)  # (B, C, H', W', side, side)
    return windows.permute(0, 2, 3, 1, 4, 5).reshape(-1, channels * side * side)
