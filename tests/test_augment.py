"""augment: each option does exactly its transform, on whole batches, reproducibly from a generator."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cifar_lab.augment import augment, shrink

OFF = dict(flip=False, crop_pad=0, rotate=0.0, cutout=0)


def _batch(dtype: torch.dtype = torch.uint8, n: int = 32) -> torch.Tensor:
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(123), dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_all_options_keep_shape_and_dtype(dtype: torch.dtype) -> None:
    x = _batch(dtype)
    out = augment(x, flip=True, crop_pad=4, rotate=15.0, cutout=8, generator=_gen())
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert not torch.equal(out, x)


def test_all_off_is_identity() -> None:
    x = _batch()
    assert torch.equal(augment(x, **OFF, generator=_gen()), x)


def test_flip_mirrors_some_images_and_keeps_the_others() -> None:
    x = _batch(n=64)
    out = augment(x, **{**OFF, "flip": True}, generator=_gen())
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    mirrored = [torch.equal(o, i.flip(2)) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert any(same) and any(mirrored)


def test_crop_pad_is_a_shifted_reflect_padded_crop() -> None:
    pad, x = 3, _batch(n=24)
    out = augment(x, **{**OFF, "crop_pad": pad}, generator=_gen())
    padded = F.pad(x.float(), (pad, pad, pad, pad), mode="reflect").to(torch.uint8)  # (B, 3, 38, 38)
    offsets = []
    for o, p in zip(out, padded):
        found = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(o, p[:, dy : dy + 32, dx : dx + 32])
        ]
        assert found, "output is not any crop of the reflect-padded image"
        offsets.append(found[0])
    assert len(set(offsets)) > 3  # offsets differ between images


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_cutout_zeroes_one_square_of_the_given_side(dtype: torch.dtype) -> None:
    side, x = 7, torch.ones(16, 3, 32, 32, dtype=dtype) * (255 if dtype == torch.uint8 else 1)
    out = augment(x, **{**OFF, "cutout": side}, generator=_gen())
    for img in out:
        zero = img == 0  # (3, 32, 32)
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])
        rows, cols = zero[0].nonzero(as_tuple=True)
        assert zero[0].sum() == side * side
        assert rows.max() - rows.min() == side - 1 and cols.max() - cols.min() == side - 1


def test_rotate_keeps_shape_and_moves_pixels() -> None:
    x = _batch()
    out = augment(x, **{**OFF, "rotate": 180.0}, generator=_gen())
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert all(not torch.equal(o, i) for o, i in zip(out, x))


def test_tiny_rotation_is_centred() -> None:
    """A rotation of almost nothing leaves the image as it was: the grid is centred, not shifted."""
    x = _batch()
    out = augment(x, **{**OFF, "rotate": 1e-4}, generator=_gen())
    assert (out.int() - x.int()).abs().max() <= 1


def test_same_generator_seed_gives_the_same_batch() -> None:
    x, options = _batch(), dict(flip=True, crop_pad=4, rotate=20.0, cutout=6)
    torch.manual_seed(1)
    a = augment(x, **options, generator=_gen(5))
    torch.manual_seed(2)  # the global RNG must not matter
    b = augment(x, **options, generator=_gen(5))
    c = augment(x, **options, generator=_gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stays_on_the_gpu_and_matches_cpu() -> None:
    x, options = _batch(), dict(flip=True, crop_pad=4, rotate=0.0, cutout=6)
    on_gpu = augment(x.cuda(), **options, generator=_gen(3))
    assert on_gpu.device.type == "cuda"
    assert torch.equal(on_gpu.cpu(), augment(x, **options, generator=_gen(3)))


def test_shrink_resizes_and_smooths_instead_of_sampling() -> None:
    x = _batch(torch.float32, n=4)
    small = shrink(x, 24)
    assert small.shape == (4, 3, 24, 24) and small.dtype == torch.float32
    assert torch.allclose(small.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=2e-3)
    # A one-pixel checkerboard has no detail a 24x24 image can hold: it must come out near flat grey, where
    # sampling pixels (plain bilinear) would keep stripes from 0.28 to 0.72.
    i = torch.arange(32)
    board = ((i[:, None] + i[None, :]) % 2).float().expand(1, 3, 32, 32)
    assert shrink(board, 24).sub(0.5).abs().max() < 0.1


def test_shrink_keeps_uint8_images_uint8() -> None:
    x = _batch(torch.uint8, n=2)
    small = shrink(x, 20)
    assert small.dtype == torch.uint8 and small.shape == (2, 3, 20, 20)
    assert torch.allclose(small.float(), shrink(x.float(), 20).round(), atol=1)


def test_shrink_to_the_same_side_is_identity() -> None:
    x = _batch(torch.float32, n=2)
    assert shrink(x, 32) is x
