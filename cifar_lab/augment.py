"""Random flip, shift (reflect-padded crop), rotation and cutout on whole (B, 3, H, W) batches, on any device; and
the shrinking of the lowres epochs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(
    x: torch.Tensor, *, flip: bool, crop_pad: int, rotate: float, cutout: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A randomly augmented copy of x (B, C, H, W), uint8 or float, same shape/dtype/device; x itself when all off.

    flip: mirror left-right with probability 1/2. crop_pad: shift by up to this many pixels, the uncovered border
    filled by reflection. rotate: angle uniform in [-rotate, +rotate] degrees, corners filled with 0.
    cutout: zero one square of this side, placed wholly inside the image. Random numbers come only from
    `generator` (drawn on its device, then moved to x's), so a seeded generator reproduces a batch exactly.
    """
    if x.dim() != 4:
        raise ValueError(f"augment wants a batch (B, C, H, W), got shape {tuple(x.shape)}")
    if crop_pad:
        x = random_shift(x, crop_pad, generator)
    if flip:
        x = random_flip(x, generator)
    if rotate:
        x = random_rotate(x, rotate, generator)
    if cutout:
        x = random_cutout(x, cutout, generator)
    return x


def _uniform(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """n floats in [0, 1) from generator (or the global RNG), on `device`."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(n, generator=generator, device=gen_device).to(device)


def _randint(high: int, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """n ints in [0, high] inclusive, on `device`."""
    return (_uniform(n, generator, device) * (high + 1)).long().clamp_(max=high)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    mirror = _uniform(x.shape[0], generator, x.device) < 0.5  # (B,)
    return torch.where(mirror[:, None, None, None], x.flip(3), x)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map positions in [-size+1, 2*size-2] into [0, size-1] as reflect padding does (edge not repeated)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def random_shift(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Same as reflect-padding by `pad` and cropping H x W at a random offset, done as one gather."""
    b, c, h, w = x.shape
    if pad >= min(h, w):
        raise ValueError(f"crop_pad={pad} must be smaller than the image side ({min(h, w)})")
    dy = _randint(2 * pad, b, generator, x.device) - pad  # (B,) shift in pixels, -pad..pad
    dx = _randint(2 * pad, b, generator, x.device) - pad
    rows = _reflect(torch.arange(h, device=x.device) + dy[:, None], h)  # (B, H) source row per output row
    cols = _reflect(torch.arange(w, device=x.device) + dx[:, None], w)  # (B, W)
    index = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return x.reshape(b, c, h * w).gather(2, index).view(b, c, h, w)


def random_rotate(x: torch.Tensor, degrees: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate each image about its centre by an angle uniform in [-degrees, degrees] (bilinear, 0 outside)."""
    b, _, h, w = x.shape
    work = _working_dtype(x)
    angle = (_uniform(b, generator, x.device) * 2 - 1) * math.radians(degrees)  # (B,) radians
    # Sampling grid in grid_sample's [-1, 1] units (align_corners=False): source = rotation @ output position.
    # Built from two fixed (H, W, 2) fields because F.affine_grid's batched matmul costs more than the sampling.
    xs = (torch.arange(w, device=x.device, dtype=work) + 0.5 - w / 2).expand(h, w)  # pixels from the centre
    ys = (torch.arange(h, device=x.device, dtype=work) + 0.5 - h / 2)[:, None].expand(h, w)
    along_cos = torch.stack([xs / (w / 2), ys / (h / 2)], dim=-1)  # (H, W, 2)
    along_sin = torch.stack([-ys / (w / 2), xs / (h / 2)], dim=-1)
    grid = angle.cos().to(work)[:, None, None, None] * along_cos + angle.sin().to(work)[:, None, None, None] * along_sin
    out = F.grid_sample(x.to(work), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _as_dtype(out, x.dtype)


def shrink(x: torch.Tensor, side: int) -> torch.Tensor:
    """A batch (B, C, H, W), uint8 or float, resized to side x side in its own dtype, antialiased: each output pixel
    is a weighted average of the input pixels around it, so detail too fine for the smaller image blurs instead of
    turning into stripes."""
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    out = F.interpolate(
        x.to(_working_dtype(x)), size=(side, side), mode="bilinear", antialias=True, align_corners=False
    )
    return _as_dtype(out, x.dtype)


def _working_dtype(x: torch.Tensor) -> torch.dtype:
    """Resampling computes in float32 for pixels stored as uint8 or in a 16-bit float."""
    return torch.float32 if x.dtype in (torch.uint8, torch.float16, torch.bfloat16) else x.dtype


def _as_dtype(out: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A resampled float batch back in the input's dtype; uint8 rounded, not truncated."""
    if dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out.to(dtype)


def random_cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one size x size square per image, wholly inside it (clipped to the image side)."""
    b, _, h, w = x.shape
    size_y, size_x = min(size, h), min(size, w)
    top = _randint(h - size_y, b, generator, x.device)[:, None]  # (B, 1)
    left = _randint(w - size_x, b, generator, x.device)[:, None]
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= top) & (rows < top + size_y)  # (B, H)
    in_cols = (cols >= left) & (cols < left + size_x)  # (B, W)
    return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0)
