"""Every training hyperparameter in one frozen, validated object, plus the named presets."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

LOWRES_MIN_SIDE = 16  # smallest lowres_side: a quarter of the pixels (at 8, fastnet has nothing left to pool)

ARCHS = ("tutorial", "cnn", "resnet", "fastnet")
OPTIMIZERS = ("sgd", "adam", "adamw", "muon")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
NORMALIZATIONS = ("cifar", "half")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run, fully described. Invalid values raise ValueError naming the field."""

    # --- model ---
    arch: str = "resnet"
    width: int = 64  # channels of the first conv block; later blocks are multiples of it
    depth: int = 3  # conv blocks ("cnn" only); each halves the image side, so at most 5
    batchnorm: bool = True  # "cnn" only; the other archs always use it (tutorial never)
    dropout: float = 0.0  # before the classifier; 0..0.9
    # --- augmentation (applied to whole batches on the training device) ---
    flip: bool = True  # random horizontal flip
    alternate_flip: bool = False  # with flip: mirror each image on every other epoch instead of at random
    crop_pad: int = 4  # random crop after reflect-padding this many pixels; 0 = off
    rotate: float = 0.0  # random rotation in [-rotate, +rotate] degrees; 0 = off
    cutout: int = 0  # side of a zeroed random square, pixels; 0 = off
    # --- optimisation ---
    opt: str = "sgd"
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # SGD momentum; Adam's beta1
    nesterov: bool = True
    weight_decay: float = 5e-4
    batch_size: int = 256
    epochs: int = 10
    lowres_epochs: int = 0  # the first N epochs train on images shrunk to lowres_side (faster); 0 = off
    lowres_side: int = 24  # pixels, with lowres_epochs
    schedule: str = "onecycle"
    warmup: float = 0.2  # fraction of all steps spent rising to the peak lr (onecycle)
    label_smoothing: float = 0.0
    # --- evaluation ---
    tta: bool = False  # average the prediction with that of the mirrored image
    tta_shifts: bool = False  # with tta: the least confident quarter also gets diagonal shifts of 1 and 2 pixels
    eval_subset: int = 0  # test images scored after each epoch; 0 = all. The final score always uses all.
    # --- data and runtime ---
    normalize: str = "cifar"  # "cifar": per-channel mean/std of CIFAR-10; "half": the tutorial's 0.5/0.5
    seed: int = 0
    device: str = "auto"  # auto = CUDA, then MPS, then CPU
    precision: str = "auto"  # auto = bf16 where the device computes it fast, else fp32
    threads: int = 0  # CPU threads; 0 = every core

    def __post_init__(self) -> None:
        _validate(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - set(field_names())
        if unknown:
            raise ValueError(f"unknown config field(s) {sorted(unknown)}; valid fields: {', '.join(field_names())}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Rebuild from a stored dict; fields unknown to this version are ignored, missing ones take defaults."""
        known = {k: v for k, v in values.items() if k in field_names()}
        return cls(**known)


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(TrainConfig))


def cli_flag(field: str) -> str:
    """The command-line flag that sets a config field: batch_size -> --batch-size."""
    return "--" + field.replace("_", "-")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not valid; choose one of: {', '.join(allowed)}")


def _number(name: str, value: Any, low: float, high: float, *, integer: bool = False, low_open: bool = False) -> None:
    kind = "a whole number" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        raise ValueError(f"{name}={value!r} is not valid; it must be {kind} in {_range(low, high, low_open)}")
    if value < low or value > high or (low_open and value == low):
        raise ValueError(f"{name}={value!r} is out of range; allowed: {_range(low, high, low_open)}")


def _range(low: float, high: float, low_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}]"


def _validate(c: TrainConfig) -> None:
    _choice("arch", c.arch, ARCHS)
    _choice("opt", c.opt, OPTIMIZERS)
    _choice("schedule", c.schedule, SCHEDULES)
    _choice("device", c.device, DEVICES)
    _choice("precision", c.precision, PRECISIONS)
    _choice("normalize", c.normalize, NORMALIZATIONS)
    for name in ("batchnorm", "flip", "alternate_flip", "nesterov", "tta", "tta_shifts"):
        if not isinstance(getattr(c, name), bool):
            raise ValueError(f"{name}={getattr(c, name)!r} is not valid; it must be true or false")
    _number("width", c.width, 4, 512, integer=True)
    _number("depth", c.depth, 1, 5, integer=True)
    _number("dropout", c.dropout, 0, 0.9)
    _number("crop_pad", c.crop_pad, 0, 8, integer=True)
    _number("rotate", c.rotate, 0, 180)
    _number("cutout", c.cutout, 0, 32, integer=True)
    _number("lr", c.lr, 0, 100, low_open=True)
    _number("momentum", c.momentum, 0, 0.999)
    _number("weight_decay", c.weight_decay, 0, 1)
    _number("batch_size", c.batch_size, 1, 8192, integer=True)
    _number("epochs", c.epochs, 1, 1000, integer=True)
    _number("lowres_epochs", c.lowres_epochs, 0, 1000, integer=True)
    _number("lowres_side", c.lowres_side, LOWRES_MIN_SIDE, 32, integer=True)
    _number("warmup", c.warmup, 0, 0.9)
    _number("label_smoothing", c.label_smoothing, 0, 0.9)
    _number("eval_subset", c.eval_subset, 0, 10_000_000, integer=True)
    _number("seed", c.seed, 0, 2**31 - 1, integer=True)
    _number("threads", c.threads, 0, 1024, integer=True)
    if c.opt == "muon" and c.arch != "fastnet":
        raise ValueError(f"opt='muon' works with arch='fastnet' only (it needs the net to mark its conv filters); "
                         f"use opt='sgd' with arch={c.arch!r}, or arch='fastnet'")
    if c.lowres_epochs:
        _validate_lowres(c)
    if c.nesterov and c.opt == "sgd" and c.momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0; set momentum (e.g. 0.9) or nesterov=False")


def _validate_lowres(c: TrainConfig) -> None:
    if c.lowres_epochs >= c.epochs:
        raise ValueError(f"lowres_epochs={c.lowres_epochs} must be below epochs={c.epochs}: the last epoch trains at "
                         f"full size, which the test images have")
    if c.arch == "tutorial":
        raise ValueError("lowres_epochs works with arch cnn, resnet or fastnet only: the tutorial net's classifier "
                         "wants exactly 32x32 images; set lowres_epochs=0")
    if c.arch == "cnn" and c.lowres_side < 2**c.depth:
        raise ValueError(f"lowres_side={c.lowres_side} is too small for arch='cnn' with depth={c.depth} (each block "
                         f"halves the side); use lowres_side >= {2**c.depth} or a smaller depth")


# Presets are the config fields they change from the defaults above.
PRESETS: dict[str, dict[str, Any]] = {
    # The PyTorch CIFAR-10 tutorial exactly: its net, batch 4, SGD lr 0.001 momentum 0.9, 2 epochs, no augmentation.
    "tutorial": dict(
        arch="tutorial", dropout=0.0, flip=False, crop_pad=0, opt="sgd", lr=0.001, momentum=0.9,
        nesterov=False, weight_decay=0.0, batch_size=4, epochs=2, schedule="constant", normalize="half",
        precision="fp32",
    ),
    # The tutorial's improvement list applied: deeper CNN with BatchNorm and dropout, flip/crop/rotation, Adam.
    "improved": dict(
        arch="cnn", width=32, depth=3, batchnorm=True, dropout=0.3, flip=True, crop_pad=4, rotate=10.0,
        opt="adam", lr=2e-3, momentum=0.9, weight_decay=0.0, batch_size=128, epochs=10, schedule="onecycle",
        warmup=0.2,
    ),
    # The best accuracy a 2-core laptop CPU reaches in about two minutes (see docs/benchmarks.md): fastnet at
    # width 32 (1,300-1,500 images/s in bf16 here) for 3 epochs. Muon's filter steps and a schedule that starts at
    # its peak (warmup 0) and falls linearly to zero measured 1-2 points above SGD with a warm-up triangle.
    # lr 0.75 at batch 512 is airbench94's 1.5 per 1024 images; weight_decay 1.33e-3 its 0.0153 in PyTorch units.
    "classroom": dict(
        arch="fastnet", width=32, flip=True, alternate_flip=True, crop_pad=2, opt="muon", lr=0.75, momentum=0.85,
        nesterov=True, weight_decay=1.33e-3, batch_size=512, epochs=3, schedule="onecycle", warmup=0.0,
        label_smoothing=0.2, tta=True, eval_subset=1000,
    ),
    # Highest accuracy within 12 minutes on a 2-core CPU with native bf16: the same recipe at width 64 for 10 epochs,
    # with shifted copies added to the test-time augmentation. On the Zen 5 machine of docs/benchmarks.md, it took
    # 580-608 s and scored 0.37 points more than width 48 for 11 epochs (4 seeds paired), which took 396-435 s there
    # (670-731 s on the older Zen 4 machine, where width 64 would need 890-1,080 s). Over 9+ epochs a smaller filter
    # step pays: lr 0.55 gives Muon 0.12, which beat 0.165, 0.09 and 0.22 by 0.2-0.6 points at width 48 (2 seeds
    # each, GPU sweep).
    "best": dict(
        arch="fastnet", width=64, flip=True, alternate_flip=True, crop_pad=2, opt="muon", lr=0.55, momentum=0.85,
        nesterov=True, weight_decay=1.33e-3, batch_size=512, epochs=10, schedule="onecycle", warmup=0.0,
        label_smoothing=0.2, tta=True, tta_shifts=True, eval_subset=1000,
    ),
}


# On a CPU without native bf16, `classroom` trains in fp32 and takes about four minutes on two cores; these changes
# to it fit about two. Measured in fp32 on a 2-core AVX2 CPU (docs/benchmarks.md): width 24 for 3 epochs, the first
# 2 on 24x24 images, 83.53 % over seeds 0-4 in 104-109 s; width 24 for 2 epochs at full size 82.95 % in 102-152 s;
# width 20 for 3 epochs 83.42 % in 131 s (seed 0); `classroom` itself 85.86 % in 228 s (seed 0).
CLASSROOM_TWO_MINUTES_FP32: dict[str, Any] = dict(width=24, epochs=3, lowres_epochs=2)


def describe_classroom_two_minutes() -> str:
    """e.g. "width 24, 3 epochs, the first 2 on 24x24 images", for buttons and notes."""
    c = preset("classroom", **CLASSROOM_TWO_MINUTES_FP32)
    shrunk = f", the first {c.lowres_epochs} on {c.lowres_side}x{c.lowres_side} images" if c.lowres_epochs else ""
    return f"width {c.width}, {c.epochs} epochs{shrunk}"


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The named preset, with any fields overridden."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    unknown = set(overrides) - set(field_names())
    if unknown:
        raise ValueError(f"unknown config field(s) {sorted(unknown)}; valid fields: {', '.join(field_names())}")
    return TrainConfig(**{**PRESETS[name], **overrides})


def describe_fields() -> dict[str, str]:
    """One-line help per field, for the CLI and the dashboard form."""
    return dict(FIELD_HELP)


FIELD_HELP: dict[str, str] = {
    "arch": "network architecture: tutorial (the seed net), cnn (VGG-style), resnet (ResNet-9-like), fastnet (fastest to accuracy)",
    "width": "channels in the first conv block; later blocks use multiples; more = slower but more accurate",
    "depth": "number of conv blocks in the cnn architecture (each halves the image side)",
    "batchnorm": "normalise activations after each conv (cnn); makes training faster and more stable",
    "dropout": "fraction of features zeroed at random before the classifier while training; fights overfitting",
    "flip": "mirror training images left-right at random",
    "alternate_flip": "with flip: mirror each image on every other epoch, so it is seen both ways every two epochs",
    "crop_pad": "shift training images by up to this many pixels (pad, then crop at random); 0 = off",
    "rotate": "rotate training images at random by up to this many degrees; 0 = off",
    "cutout": "blank a random square of this side in each training image; 0 = off",
    "opt": "optimizer: sgd (with momentum), adam, adamw, or muon (orthogonalised steps for conv filters; fastnet)",
    "lr": "peak learning rate: the size of each update step",
    "momentum": "how much of the previous update carries over (SGD momentum, Adam beta1)",
    "nesterov": "use Nesterov's look-ahead momentum (SGD)",
    "weight_decay": "pull the weights towards zero each step; a regulariser",
    "batch_size": "images per update step",
    "epochs": "passes over the whole training set",
    "lowres_epochs": ("train the first N epochs on images shrunk to lowres_side pixels: each of them takes about "
                      "half the time, and the full-size epochs after them recover most of the accuracy; 0 = off"),
    "lowres_side": "side of the shrunk training images in the lowres_epochs, pixels (16-32)",
    "schedule": "how the learning rate changes: constant, step (x0.1 at 50% and 75%), cosine, onecycle (rise then fall)",
    "warmup": "fraction of training spent raising the learning rate to its peak (onecycle)",
    "label_smoothing": "train towards slightly soft targets (e.g. 0.9 for the true class); reduces over-confidence",
    "tta": "test-time augmentation: also score the mirrored test image and average",
    "tta_shifts": ("with tta: for the least confident quarter of the images, also score copies shifted diagonally by "
                   "one and two pixels (twice the evaluation time)"),
    "eval_subset": "test images scored after each epoch (0 = all); the final score always uses all",
    "normalize": "input normalisation: cifar (per-channel mean/std) or half (the tutorial's 0.5/0.5)",
    "seed": "random seed; the same seed and config give the same fp32 run",
    "device": "where to train: auto (GPU if present), cpu, cuda, mps",
    "precision": "number format: auto (bf16 where fast), fp32, bf16",
    "threads": "CPU threads to use (0 = every core)",
}
