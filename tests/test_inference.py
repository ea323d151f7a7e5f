"""Any picture in, (1, 3, 32, 32) out; unreadable files refused; top-k predictions."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_lab.config import TrainConfig
from cifar_lab.inference import (
    MAX_PIXELS,
    ImageError,
    Prediction,
    class_probabilities,
    model_view,
    open_image,
    predict,
    preprocess_image,
)
from cifar_lab.models import build_model
from cifar_lab.preprocess import CLASSES, normalize

MODES = ["RGB", "RGBA", "LA", "L", "P", "PA", "1", "I", "I;16", "F", "CMYK", "YCbCr", "RGBX", "La"]


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def solid(colour, size=(40, 30)) -> Image.Image:
    return Image.new("RGB", size, colour)


def centre_pixel(image: Image.Image) -> tuple[int, ...]:
    return tuple(int(v) for v in model_view(image)[16, 16])


# --- preprocess_image ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_one_normalised_rgb_image(mode):
    image = Image.new(mode, (40, 30))
    x = preprocess_image(image)
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32 and torch.isfinite(x).all()


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (31, 33), (100, 20), (20, 100), (3000, 2000), (32, 32)])
def test_any_size_gives_32x32(size):
    image = Image.new("RGB", size, (10, 200, 30))
    assert preprocess_image(image).shape == (1, 3, 32, 32)
    view = model_view(image)
    assert view.shape == (32, 32, 3) and view.dtype == np.uint8
    assert np.abs(view.astype(int) - (10, 200, 30)).max() <= 1  # a solid colour stays that colour


def test_a_32x32_image_gets_exactly_the_test_set_transform():
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    as_tensor = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)  # (1, 3, 32, 32) uint8, like CifarData
    for how in ("cifar", "half"):
        assert torch.equal(preprocess_image(Image.fromarray(pixels), how), normalize(as_tensor, how))


def test_normalisations_differ_and_half_maps_white_to_one():
    white = solid((255, 255, 255))
    assert torch.allclose(preprocess_image(white, "half"), torch.ones(1, 3, 32, 32))
    assert not torch.allclose(preprocess_image(white, "cifar"), preprocess_image(white, "half"))
    with pytest.raises(ValueError, match="normalize"):
        preprocess_image(white, "imagenet")


def test_non_square_images_are_centre_cropped():
    pixels = np.zeros((32, 96, 3), dtype=np.uint8)
    pixels[:, :32] = (255, 0, 0)
    pixels[:, 32:64] = (0, 255, 0)
    pixels[:, 64:] = (0, 0, 255)
    view = model_view(Image.fromarray(pixels))
    assert (view[:, 4:28] == (0, 255, 0)).all()  # only the middle third, the green square, is seen


def test_transparency_goes_on_white():
    clear = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    assert centre_pixel(clear) == (255, 255, 255)
    opaque = Image.new("RGBA", (10, 10), (255, 0, 0, 255))
    assert centre_pixel(opaque) == (255, 0, 0)
    half = Image.new("LA", (10, 10), (0, 128))
    assert all(abs(v - 127) <= 1 for v in centre_pixel(half))


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("L", (10, 10), 100), (100, 100, 100)),
        (Image.new("CMYK", (10, 10), (0, 0, 0, 0)), (255, 255, 255)),
        (Image.new("CMYK", (10, 10), (0, 255, 255, 0)), (255, 0, 0)),
        (Image.new("1", (10, 10), 1), (255, 255, 255)),
    ],
)
def test_mode_conversions_keep_the_colour(image, expected):
    assert centre_pixel(image) == expected


def test_palette_image_uses_its_palette():
    image = Image.new("P", (10, 10), 3)
    palette = [0] * 768
    palette[9:12] = [10, 220, 40]  # entry 3
    image.putpalette(palette)
    assert centre_pixel(image) == (10, 220, 40)


def test_sixteen_bit_grey_is_scaled_to_eight_bits():
    grey16 = np.full((20, 20), 65535 // 2, dtype=np.uint16)
    image = open_image(encode(Image.fromarray(grey16)))  # a real 16-bit PNG, decoded as Pillow does
    assert image.mode.startswith("I")
    assert all(abs(v - 127) <= 1 for v in centre_pixel(image))
    white16 = open_image(encode(Image.fromarray(np.full((20, 20), 65535, dtype=np.uint16))))
    assert centre_pixel(white16) == (255, 255, 255)


# --- open_image ---------------------------------------------------------------------------------------------------


def test_open_image_from_bytes_path_and_image(tmp_path):
    data = encode(solid((1, 2, 3)))
    path = tmp_path / "x.png"
    path.write_bytes(data)
    for source in (data, path, str(path)):
        assert open_image(source).size == (40, 30)
    image = solid((1, 2, 3))
    assert open_image(image) is image


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(Image.open(io.BytesIO(buffer.getvalue())), "n_frames", 1) == 3
    red, green, blue = centre_pixel(open_image(buffer.getvalue()))
    assert red > 200 and green < 50 and blue < 50


def test_exif_orientation_is_applied():
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 tall: left half red, right half blue
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; show it rotated 90 degrees clockwise
    data = encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif.tobytes())
    image = open_image(data).convert("RGB")
    assert image.size == (20, 40)
    top, bottom = image.getpixel((10, 3)), image.getpixel((10, 36))
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"%PDF-1.4\n" + b"0" * 100, bytes(range(256)) * 4])
def test_non_image_bytes_raise_image_error(data):
    with pytest.raises(ImageError):
        open_image(data)


def test_missing_file_raises_image_error(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "nope.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_raises_image_error(fmt):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    with pytest.raises(ImageError, match="damaged|truncated|not an image"):
        open_image(data[: len(data) // 2])


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height 8-bit grey pixels but holds almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [7_000, 20_000, 100_000])
def test_decompression_bomb_is_refused_before_decoding(side):
    assert side * side > MAX_PIXELS
    with pytest.raises(ImageError):
        open_image(_png_header(side, side))


# --- predict ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_model(TrainConfig(arch="cnn", width=8, depth=2)).eval()


@pytest.mark.parametrize("top", [1, 2, 3, 10])
def test_predict_returns_top_k_sorted(net, top):
    image = solid((200, 30, 30))
    preds = predict(net, image, classes=CLASSES, top=top)
    assert len(preds) == top and all(isinstance(p, Prediction) for p in preds)
    probs = [p.probability for p in preds]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probs) and sum(probs) <= 1.0 + 1e-6
    assert len({p.label for p in preds}) == top and {p.label for p in preds} <= set(CLASSES)
    if top == len(CLASSES):
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_predict_agrees_with_the_model(net):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8))
    with torch.no_grad():
        logits = net(preprocess_image(image))[0]
    best = predict(net, image, classes=CLASSES, top=1)[0]
    assert best.label == CLASSES[int(logits.argmax())]
    assert best.probability == pytest.approx(float(torch.softmax(logits, 0).max()), rel=1e-5)


def test_predict_clamps_top_to_the_class_count(net):
    assert len(predict(net, solid((0, 0, 0)), classes=CLASSES, top=50)) == len(CLASSES)


def test_predict_leaves_the_model_mode_as_found():
    torch.manual_seed(0)
    model = build_model(TrainConfig(arch="cnn", width=8, depth=2, dropout=0.5))
    model.train()
    first = class_probabilities(model, solid((9, 9, 9)))
    second = class_probabilities(model, solid((9, 9, 9)))
    assert model.training
    assert torch.equal(first, second)  # evaluated in eval mode: dropout off, deterministic
