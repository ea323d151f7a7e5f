"""Why the model said that: Grad-CAM heatmaps, first-layer filters and per-block feature maps as images.

Every function takes a model and the (1, 3, H, W) normalised tensor `inference.preprocess_image` returns,
leaves the model's modes and gradients as it found them, and gives back numpy arrays ready to display.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .summary import LayerRow, ModelSummary, eval_mode, model_summary  # noqa: F401  (the Explain panel's API)

MAX_STAGES = 8  # feature-map stages shown at most; deeper nets are sampled evenly, first and last kept
DISPLAY_SIDE = 128  # pixels on the longer side of an overlay: 4x a CIFAR image
MIN_TILE = 48  # feature-map tiles are scaled up by a whole factor to at least this many pixels
FILTER_SCALE = 8  # screen pixels per filter weight: 5x5 tutorial filters become 40x40 tiles
BORDER = 255  # grid lines between tiles: white
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@dataclass(frozen=True)
class FeatureMaps:
    name: str  # the block's module path, e.g. "features.3"
    array: np.ndarray  # (C, H, W) float32 activations for one image


# --- which layers count as conv blocks ------------------------------------------------------------------------


def conv_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's conv blocks: Conv2d layers, custom modules holding convs (a residual block, a conv group)
    and Sequentials with a single conv (conv-BN-ReLU). Plain containers of several blocks are opened."""
    blocks: list[tuple[str, nn.Module]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            convs = sum(isinstance(m, nn.Conv2d) for m in child.modules())
            if convs == 0:
                continue
            if isinstance(child, nn.Conv2d) or not isinstance(child, _CONTAINERS) or convs == 1:
                blocks.append((prefix + name, child))
            else:
                visit(f"{prefix}{name}.", child)

    visit("", model)
    return blocks


def default_cam_layer(model: nn.Module) -> str:
    """Name of the layer Grad-CAM uses by default: the last conv block whose output still has >= 2x2 positions
    (the most class-specific layer that keeps a spatial layout)."""
    blocks = dict(conv_blocks(model))
    with eval_mode(model), torch.inference_mode():
        outputs, _ = _run(model, blocks, _blank(model))
    return _last_spatial(outputs)


# --- Grad-CAM --------------------------------------------------------------------------------------------------


def grad_cam(
    model: nn.Module, image: torch.Tensor, target_class: int | None = None, layer: nn.Module | None = None
) -> np.ndarray:
    """(H, W) float32 map in [0, 1] of where `layer`'s evidence for `target_class` (default: the predicted
    class) lies, upsampled bilinearly to the image's size. Selvaraju et al. 2017: channel weights are the
    spatially averaged gradients of the class score; the map is ReLU(sum of weighted activations)."""
    x = _check_image(image)
    watched = {"layer": layer} if layer is not None else dict(conv_blocks(model))
    if not watched:
        raise ValueError("Grad-CAM needs a conv layer and this model has none")
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        # A leaf input that requires grad keeps the graph alive even where every parameter is frozen.
        device, dtype = _placement(model)
        x = x.detach().clone().to(device=device, dtype=dtype).requires_grad_(True)
        outputs, logits = _run(model, watched, x)
        name = "layer" if layer is not None else _last_spatial(outputs)
        activation = outputs.get(name)
        if activation is None or activation.dim() != 4:
            raise ValueError(
                "the Grad-CAM layer must be a module the forward pass applies, with a (1, C, H, W) "
                "output; pass a Conv2d or conv block of this model, or layer=None"
            )
        target = _target_class(logits, target_class)
        # autograd.grad leaves every parameter's .grad untouched, unlike backward().
        (gradient,) = torch.autograd.grad(logits[0, target], activation)
    weights = gradient[0].float().mean(dim=(1, 2))  # (C,)
    cam = F.relu(torch.einsum("c,chw->hw", weights, activation[0].detach().float()))  # (h, w)
    cam = F.interpolate(cam[None, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
    peak = float(cam.max())
    return (cam / peak if peak > 0 else cam).clamp(0, 1).cpu().numpy().astype(np.float32)


def jet(values: np.ndarray) -> np.ndarray:
    """The jet colour ramp (dark blue, cyan, yellow, dark red): (...) values in [0, 1] -> (..., 3) in [0, 1]."""
    v = np.clip(values, 0, 1)[..., None]
    centres = np.array([3.0, 2.0, 1.0])  # red, green, blue peak at v = 3/4, 1/2, 1/4
    return np.clip(1.5 - np.abs(4 * v - centres), 0, 1)


def overlay(image: np.ndarray, cam: np.ndarray, *, alpha: float = 0.5, side: int | None = DISPLAY_SIDE) -> np.ndarray:
    """The heatmap blended over the picture: (H', W', 3) uint8 with the longer side `side` pixels (None: the
    image's own size). The picture is scaled with hard pixel edges, the heatmap smoothly."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"overlay wants an (H, W, 3) uint8 picture such as inference.model_view(img); got "
            f"{image.dtype} {image.shape}"
        )
    if cam.ndim != 2:
        raise ValueError(f"overlay wants a 2-D heatmap from grad_cam; got shape {cam.shape}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha={alpha} must lie in [0, 1] (0: picture only, 1: heatmap only)")
    h, w = image.shape[:2]
    scale = side / max(h, w) if side else 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL order: (W, H)
    pixels = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
    base = np.asarray(Image.fromarray(image).resize(size, pixels), dtype=np.float32)
    heat = np.asarray(Image.fromarray(cam.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))
    blended = (1 - alpha) * base + alpha * 255 * jet(heat)
    return blended.round().clip(0, 255).astype(np.uint8)


# --- filters and feature maps ----------------------------------------------------------------------------------


def first_layer_filters(model: nn.Module) -> np.ndarray:
    """The first Conv2d's filters as (N, k, k, 3) uint8 RGB, each stretched on its own to 0..255."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError("this model has no Conv2d layer, so it has no filters to show")
    weight = conv.weight.detach().float().cpu()  # (N, C_in, kh, kw)
    if weight.shape[1] == 1:
        weight = weight.expand(-1, 3, -1, -1)
    if weight.shape[1] != 3:
        raise ValueError(f"the first conv takes {weight.shape[1]} channels; filters are shown for RGB input only")
    return _stretch(weight.permute(0, 2, 3, 1), dims=(1, 2, 3))  # (N, kh, kw, 3)


def filter_grid(filters: np.ndarray, cols: int = 8, *, scale: int = FILTER_SCALE) -> np.ndarray:
    """(N, k, k, 3) filters -> one uint8 RGB image, `cols` tiles a row, each weight `scale` pixels wide."""
    if filters.ndim != 4 or filters.shape[3] != 3:
        raise ValueError(f"filter_grid wants (N, k, k, 3) filters from first_layer_filters; got {filters.shape}")
    return _tile(filters, cols, scale)


def feature_maps(model: nn.Module, image: torch.Tensor) -> list[FeatureMaps]:
    """The output of each conv block (see conv_blocks) for one image, in the order the forward pass makes them;
    at most MAX_STAGES of them, spread evenly over the depth."""
    x = _check_image(image)
    blocks = dict(conv_blocks(model))
    with eval_mode(model), torch.inference_mode():
        device, dtype = _placement(model)
        outputs, _ = _run(model, blocks, x.to(device=device, dtype=dtype))
        stages = [(name, out[0].float().cpu().numpy()) for name, out in outputs.items() if out.dim() == 4]
    keep = sorted({round(i) for i in np.linspace(0, len(stages) - 1, MAX_STAGES)}) if stages else []
    return [FeatureMaps(*stages[i]) for i in keep]


def feature_grid(maps: FeatureMaps | np.ndarray, max_channels: int = 16, cols: int = 8) -> np.ndarray:
    """One block's (C, H, W) maps as a grey uint8 RGB grid: the `max_channels` most active channels (by mean
    activation) in channel order, each stretched on its own to 0..255 and scaled up to >= MIN_TILE pixels."""
    array = maps.array if isinstance(maps, FeatureMaps) else np.asarray(maps)
    if array.ndim != 3:
        raise ValueError(f"feature_grid wants (C, H, W) maps from feature_maps; got shape {array.shape}")
    strongest = np.sort(np.argsort(-array.mean(axis=(1, 2)), kind="stable")[:max_channels])
    grey = _stretch(torch.from_numpy(np.ascontiguousarray(array[strongest])), dims=(1, 2))  # (n, H, W)
    scale = max(1, math.ceil(MIN_TILE / max(array.shape[1:])))
    return _tile(np.repeat(grey[..., None], 3, axis=3), min(cols, len(strongest)), scale)


# --- helpers ---------------------------------------------------------------------------------------------------


def _check_image(image: torch.Tensor) -> torch.Tensor:
    if isinstance(image, torch.Tensor) and image.dim() == 3:
        image = image.unsqueeze(0)
    if (
        not isinstance(image, torch.Tensor)
        or image.dim() != 4
        or image.shape[:2] != (1, 3)
        or not image.is_floating_point()
    ):
        got = f"{image.dtype} {tuple(image.shape)}" if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(
            f"expected one normalised image, a (1, 3, H, W) float tensor such as "
            f"inference.preprocess_image(img) returns; got {got}"
        )
    return image


def _placement(model: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    """The parameters' device and dtype; None for each without parameters, which `.to` reads as "leave it"."""
    param = next(model.parameters(), None)
    return (None, None) if param is None else (param.device, param.dtype)


def _blank(model: nn.Module) -> torch.Tensor:
    device, dtype = _placement(model)
    return torch.zeros(1, 3, 32, 32).to(device=device, dtype=dtype)


def _run(
    model: nn.Module, modules: dict[str, nn.Module], x: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One forward pass recording each watched module's first output, in the order the modules finish."""
    outputs: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module: nn.Module, _inputs, output) -> None:
            if name not in outputs and isinstance(output, torch.Tensor):
                outputs[name] = output

        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in modules.items()]
    try:
        logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs, logits


def _last_spatial(outputs: dict[str, torch.Tensor]) -> str:
    spatial = [name for name, out in outputs.items() if out.dim() == 4 and min(out.shape[-2:]) >= 2]
    if not spatial:
        raise ValueError(
            "no conv layer of this model keeps a 2x2 or larger map at this input size; "
            "pass layer= to grad_cam explicitly"
        )
    return spatial[-1]


def _target_class(logits: torch.Tensor, target_class: int | None) -> int:
    classes = logits.shape[1]
    if target_class is None:
        return int(logits[0].argmax())
    if not 0 <= int(target_class) < classes:
        raise ValueError(
            f"target_class={target_class} is out of range: the model has {classes} classes "
            f"(0..{classes - 1}); pass None for the predicted class"
        )
    return int(target_class)


def _stretch(values: torch.Tensor, dims: tuple[int, ...]) -> np.ndarray:
    """Min-max each slice over `dims` to 0..255 uint8; a constant slice becomes mid-grey."""
    lo, hi = values.amin(dim=dims, keepdim=True), values.amax(dim=dims, keepdim=True)
    span = hi - lo
    scaled = torch.where(span > 0, (values - lo) / span.clamp_min(1e-12), torch.full_like(values, 0.5))
    return (scaled * 255).round().to(torch.uint8).numpy()


def _tile(tiles: np.ndarray, cols: int, scale: int) -> np.ndarray:
    """(N, h, w, 3) uint8 tiles -> a grid `cols` wide, each tile scaled `scale`x, 1-pixel borders all round."""
    if cols < 1 or scale < 1:
        raise ValueError(f"cols={cols} and scale={scale} must both be at least 1")
    n, h, w = tiles.shape[:3]
    th, tw = h * scale, w * scale
    rows = max(1, math.ceil(n / cols))
    grid = np.full((rows * (th + 1) + 1, cols * (tw + 1) + 1, 3), BORDER, dtype=np.uint8)
    big = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[1 + r * (th + 1) : 1 + r * (th + 1) + th, 1 + c * (tw + 1) : 1 + c * (tw + 1) + tw] = big[i]
    return grid
