"""A layer table for any model: each layer's type, output shape and parameters, with totals and multiply-adds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .models import count_macs, count_params


@dataclass(frozen=True)
class LayerRow:
    name: str  # module path, e.g. "features.0.1"; "(model)" for parameters held by the model itself
    type: str  # class name, e.g. "BatchNorm2d"
    output_shape: tuple[int, ...]  # per image, batch dimension dropped, e.g. (6, 28, 28); () if it never ran
    params: int  # parameters this layer holds itself (frozen ones included, shared ones counted once)
    calls: int = 1  # times one forward pass applies the layer (the tutorial's single pool runs twice)


@dataclass(frozen=True)
class ModelSummary:
    rows: tuple[LayerRow, ...]
    total_params: int  # equals models.count_params(model)
    trainable_params: int  # those with requires_grad (fastnet's whitening filters are frozen)
    macs: int  # multiply-adds for one image of image_size x image_size, from models.count_macs

    def table(self) -> list[dict[str, str | int]]:
        """Rows as plain dicts for a dataframe: each layer in words with the block it belongs to (the layers that
        work on images of one size), shapes written out ("6x28x28", "x2" when applied twice), and its name in the
        code last, for whoever reads the code."""

        def shape(row: LayerRow) -> str:
            text = "x".join(map(str, row.output_shape)) or "-"
            return f"{text} (x{row.calls})" if row.calls > 1 else text

        blocks = _blocks(self.rows)
        return [
            {
                "layer": layer_in_words(r),
                "block": blocks.get(r.name, "-"),
                "output": shape(r),
                "parameters": r.params,
                "name in the code": f"{r.name} ({r.type})",
            }
            for r in self.rows
        ]


KINDS = {
    "Conv2d": "convolution: learned filters",
    "BatchNorm2d": "normalisation",
    "BatchNormNoScale": "normalisation",
    "ReLU": "activation: keeps the positive values",
    "GELU": "activation",
    "MaxPool2d": "pooling: halves the image side",
    "AdaptiveMaxPool2d": "pooling: one value per channel",
    "Flatten": "flatten: maps to one list of numbers",
    "Dropout": "dropout: switches features off at random while training",
    "Linear": "fully connected",
}


def layer_in_words(row: LayerRow) -> str:
    """e.g. "convolution: learned filters" or "whitening: fixed filters from the data (frozen)"."""
    if row.name == "whiten":  # fastnet.FastNet: computed from the training images, never trained
        return "whitening: fixed filters computed from the data (frozen)"
    if row.type == "Linear" and _is_last(row):
        return "fully connected: one score per class"
    return KINDS.get(row.type, row.type)


def _is_last(row: LayerRow) -> bool:
    return row.name.split(".")[-1] in ("head", "classifier", "fc3", "fc")


def _blocks(rows: tuple[LayerRow, ...]) -> dict[str, str]:
    """Layer name -> "1 (32x32)": blocks numbered by the image side their convolutions work at, in order."""
    sides: list[int] = []
    blocks = {}
    for row in rows:
        if len(row.output_shape) != 3:
            continue
        side = row.output_shape[1]
        if row.type == "Conv2d" and side not in sides:
            sides.append(side)
        if side in sides:
            blocks[row.name] = f"{sides.index(side) + 1} ({side}x{side})"
    return blocks


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode for the block; each submodule's own mode is restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode


def model_summary(model: nn.Module, image_size: int = 32) -> ModelSummary:
    """One row per leaf layer (and per module holding parameters of its own), in definition order."""
    modules = [
        (name or "(model)", m)
        for name, m in model.named_modules()
        if not list(m.children()) or list(m.parameters(recurse=False))
    ]
    shapes, calls = _output_shapes(model, dict(modules), image_size)
    seen: set[int] = set()
    rows = []
    for name, module in modules:
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        rows.append(
            LayerRow(name, type(module).__name__, shapes.get(name, ()), sum(p.numel() for p in own), calls.get(name, 0))
        )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelSummary(tuple(rows), count_params(model), trainable, count_macs(model, image_size))


def _output_shapes(
    model: nn.Module, modules: dict[str, nn.Module], image_size: int
) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    """Each module's first output shape (batch dimension dropped) and call count for one blank image."""
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}

    def hook_for(name: str):
        def hook(_module: nn.Module, _inputs, output) -> None:
            calls[name] = calls.get(name, 0) + 1
            if name not in shapes and isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape[1:])

        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in modules.items()]
    param = next(model.parameters(), None)
    x = torch.zeros(1, 3, image_size, image_size)
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype)
    try:
        with eval_mode(model), torch.inference_mode():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes, calls
