"""Any picture in, top-k classes out, through the same preprocessing the test set gets."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from .preprocess import normalize as normalize_pixels

MAX_PIXELS = 40_000_000  # larger images are refused: a 32x32 classifier gains nothing from them
SIDE = 32  # CIFAR-10 images are 32x32


class ImageError(ValueError):
    """An input that cannot be used as an image; the message says why and what to do."""


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float  # 0..1


def open_image(source: bytes | str | os.PathLike | Image.Image, name: str = "") -> Image.Image:
    """Decode an image fully (first frame of an animation), applying its EXIF orientation."""
    if isinstance(source, Image.Image):
        return source
    label = name or (str(source) if not isinstance(source, bytes) else "the uploaded file")
    if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
        raise ImageError(f"{label}: no such file")
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(
                    f"{label}: {image.width}x{image.height} pixels is too large; "
                    f"use an image under {MAX_PIXELS // 1_000_000} megapixels"
                )
            image.seek(0)
            image.load()
            return ImageOps.exif_transpose(image)
    except ImageError:
        raise
    except UnidentifiedImageError as err:
        raise ImageError(f"{label} is not an image this lab can read (PNG, JPEG, WebP, GIF or BMP)") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(
            f"{label} was refused: its pixel count is so large it could exhaust memory "
            f"(a 'decompression bomb'); use an image under {MAX_PIXELS // 1_000_000} megapixels"
        ) from err
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"{label} looks damaged or truncated and could not be decoded: {err}") from err


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB whatever the mode: transparency goes on white, 16-bit greys are scaled, CMYK/P/L are converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or arr.max() > 255 else 255.0
        image = Image.fromarray((arr / top * 255).clip(0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("La", "RGBa"):  # premultiplied alpha: undo it first
        image = image.convert("LA" if image.mode == "La" else "RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def model_view(image: Image.Image) -> np.ndarray:
    """The (32, 32, 3) uint8 picture the model actually sees: RGB, centre-cropped square, resized."""
    rgb = to_rgb(image)
    side = min(rgb.size)
    square = ImageOps.fit(rgb, (side, side), method=Image.Resampling.BICUBIC) if rgb.width != rgb.height else rgb
    small = square.resize((SIDE, SIDE), Image.Resampling.BICUBIC, reducing_gap=3.0) if side != SIDE else square
    return np.asarray(small, dtype=np.uint8)


def preprocess_image(image: Image.Image, normalize: str = "cifar") -> torch.Tensor:
    """Any PIL image -> the (1, 3, 32, 32) float tensor the model expects (the test set's transform)."""
    pixels = torch.from_numpy(model_view(image).copy()).permute(2, 0, 1).unsqueeze(0)  # (1, 3, 32, 32) uint8
    return normalize_pixels(pixels, normalize)


def predict(
    model: nn.Module, image: Image.Image, *, classes: tuple[str, ...], normalize: str = "cifar", top: int = 3
) -> list[Prediction]:
    """The `top` most likely classes with their probabilities, most likely first."""
    probs = class_probabilities(model, image, normalize=normalize)
    k = max(1, min(top, len(classes)))
    values, indices = torch.topk(probs, k)
    return [Prediction(classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]


def class_probabilities(model: nn.Module, image: Image.Image, *, normalize: str = "cifar") -> torch.Tensor:
    """Softmax over all classes (C,) for one image; leaves the model's mode as found."""
    device = next(model.parameters()).device
    x = preprocess_image(image, normalize).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = model(x).float()
    finally:
        model.train(was_training)
    return F.softmax(logits[0], 0).cpu()
