"""Every training hyperparameter in one frozen, validated object, each described once where it is declared."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

from .fastnet import WHITEN_BIAS_FRACTION
from .models import MODELS
from .optim import OPTIMIZERS as _OPTIMIZERS
from .optim import SCHEDULES as _SCHEDULES
from .presets import PRESETS
from .settings import SECTIONS, Setting, described, setting, settings_of, unless, when, when_on, when_positive
from .settings import cli_flag as cli_flag  # part of the config's API
from .settings import cli_setting as cli_setting

LOWRES_MIN_SIDE = 16  # smallest lowres_side: a quarter of the pixels (at 8, fastnet has nothing left to pool)
MODEL, AUGMENT, OPTIMISE, RUNTIME = SECTIONS  # the form columns the settings below sit in
NOT_TUTORIAL, FASTNET, MUON = unless("arch", "tutorial"), when("arch", "fastnet"), when("opt", "muon")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run, fully described. Invalid values raise ValueError naming the field."""

    # --- model ---
    arch: str = setting(
        "resnet",
        section=MODEL,
        help="network architecture",
        choices=described(MODELS),
        label="Network",
        effect="the model that learns: tutorial is the tutorial's small net (fast, weak), cnn and resnet stack more "
        "layers, fastnet reaches a high score fastest on a CPU",
    )
    width: int = setting(
        64,
        section=MODEL,
        low=4,
        high=512,
        unit="channels",
        applies=NOT_TUTORIAL,
        label="Network width",
        help="channels in the first conv block; later blocks use multiples; more = slower but more accurate",
    )
    depth: int = setting(
        3,
        section=MODEL,
        low=1,
        high=5,
        unit="blocks",
        applies=when("arch", "cnn"),
        help="conv blocks, each halving the image side",
    )
    batchnorm: bool = setting(
        True,
        section=MODEL,
        applies=when("arch", "cnn"),
        help="normalise activations after each conv (resnet and fastnet always do, the "
        "tutorial never); makes training faster and more stable",
    )
    dropout: float = setting(
        0.0,
        section=MODEL,
        low=0,
        high=0.9,
        step=0.05,
        applies=NOT_TUTORIAL,
        help="fraction of features zeroed at random before the classifier while training; fights overfitting",
    )
    # --- augmentation (applied to whole batches on the training device) ---
    flip: bool = setting(
        True,
        section=AUGMENT,
        help="mirror training images left-right at random",
        label="Mirror images",
        effect="on: training images are flipped left-right at random, so a car facing left teaches as much as one "
        "facing right; usually a few points more on the test images",
    )
    alternate_flip: bool = setting(
        False,
        section=AUGMENT,
        applies=when_on("flip"),
        help="mirror each image on every other epoch instead of at random, so it is seen both ways every two epochs",
    )
    crop_pad: int = setting(
        4,
        section=AUGMENT,
        low=0,
        high=8,
        unit="pixels",
        help="shift training images by up to this many pixels (reflect-pad, then crop at random); 0 = off",
        label="Shift images (pixels)",
        effect="training images move by up to this many pixels at random, so the model learns that a shifted cat "
        "is still a cat; 0 turns it off, and large shifts push things out of the picture",
    )
    rotate: float = setting(
        0.0,
        section=AUGMENT,
        low=0,
        high=180,
        step=5.0,
        unit="degrees",
        help="rotate training images at random by up to this many degrees either way; 0 = off",
    )
    cutout: int = setting(
        0,
        section=AUGMENT,
        low=0,
        high=32,
        unit="pixels",
        help="blank a random square of this side in each training image; 0 = off",
    )
    # --- optimisation ---
    opt: str = setting(
        "sgd",
        section=OPTIMISE,
        help="optimizer",
        choices=described(_OPTIMIZERS),
        label="Optimizer",
        effect="how each step changes the weights: sgd is the classic, adam adapts each weight's step, muon "
        "(fastnet only) gets furthest in the fewest epochs",
    )
    lr: float = setting(
        0.1,
        section=OPTIMISE,
        low=0,
        high=100,
        low_open=True,
        step=0.001,
        help="peak learning rate (for the batch-mean loss): the size of each update step",
        label="Learning rate",
        effect="the size of each step: raise it and the model learns faster, until it overshoots and the loss jumps "
        "or blows up; lower it and learning is steadier but slower",
    )
    momentum: float = setting(
        0.9,
        section=OPTIMISE,
        low=0,
        high=0.999,
        step=0.01,
        help="how much of the previous update carries over (SGD and Muon momentum, Adam's beta1)",
    )
    nesterov: bool = setting(
        True,
        section=OPTIMISE,
        applies=when("opt", "sgd", "muon"),
        help="use Nesterov's look-ahead momentum (SGD, Muon)",
    )
    weight_decay: float = setting(
        5e-4,
        section=OPTIMISE,
        low=0,
        high=1,
        step=1e-4,
        help="pull the weights towards zero each step (PyTorch's weight_decay); a regulariser",
    )
    batch_size: int = setting(256, section=OPTIMISE, low=1, high=8192, unit="images", help="images per update step")
    epochs: int = setting(
        10,
        section=OPTIMISE,
        low=1,
        high=1000,
        help="passes over the whole training set",
        label="Epochs",
        effect="how many times the model sees every training image: more usually scores higher and takes longer; "
        "far more than needed and it starts to memorise the training images (overfitting)",
    )
    minutes: float = setting(
        0.0,
        section=OPTIMISE,
        low=0,
        high=10_000,
        step=0.5,
        unit="minutes",
        help="a time budget: a short measurement on this machine picks the epochs (and fastnet's width and shrunk "
        "epochs) so that the run, its final scores included, ends within this time; 0 = the epochs as set",
        label="Time budget (minutes)",
        effect="the lab times this computer first and picks the epochs (and fastnet's width) that fit in this many "
        "minutes; 0 trains exactly the epochs set",
    )
    lowres_epochs: int = setting(
        0,
        section=OPTIMISE,
        low=0,
        high=1000,
        unit="epochs",
        applies=NOT_TUTORIAL,
        label="Epochs on shrunk images",
        help="train the first N epochs on images shrunk to lowres_side pixels: each takes "
        "about half the time, and the full-size epochs after them recover most of the "
        "accuracy; 0 = off",
    )
    lowres_side: int = setting(
        24,
        section=OPTIMISE,
        low=LOWRES_MIN_SIDE,
        high=32,
        unit="pixels",
        applies=when_positive("lowres_epochs"),
        label="Shrunk image side (pixels)",
        help="side of the shrunk training images in the lowres_epochs",
    )
    schedule: str = setting(
        "onecycle", section=OPTIMISE, choices=described(_SCHEDULES), help="how the learning rate changes over training"
    )
    warmup: float = setting(
        0.2,
        section=OPTIMISE,
        low=0,
        high=0.9,
        step=0.05,
        unit="of all steps",
        applies=when("schedule", "onecycle"),
        help="fraction of training spent raising the learning rate to its peak",
    )
    label_smoothing: float = setting(
        0.0,
        section=OPTIMISE,
        low=0,
        high=0.9,
        step=0.05,
        help="train towards slightly soft targets (0.1: 0.91 for the true class); reduces over-confidence",
    )
    # fastnet's parameter groups (FastNet.param_groups). The scales multiply lr into each group's peak lr.
    bias_lr_scale: float = setting(
        64.0,
        section=OPTIMISE,
        low=0,
        high=1000,
        low_open=True,
        step=1.0,
        unit="times lr",
        applies=FASTNET & when("opt", "sgd", "muon"),
        help="BatchNorm and whitening biases learn this many times faster than the "
        "weights, with their weight decay divided by it (the same decay per step)",
    )
    # Measured at w32, 3 epochs, batch 512, lr 0.75 (mirror-TTA test accuracy): filter lr 0.11 85.5 %, 0.16 85.8 %,
    # 0.24 85.4 %, 0.36 84.2 %; 0.22 * 0.75 = 0.165 sits at the top of that flat optimum.
    muon_lr_scale: float = setting(
        0.22,
        section=OPTIMISE,
        low=0,
        high=10,
        low_open=True,
        step=0.01,
        unit="times lr",
        applies=MUON,
        help="the conv filters' orthogonalised steps are lr times this, relative to their "
        "norm; the head and biases keep SGD",
    )
    muon_momentum: float = setting(
        0.6,
        section=OPTIMISE,
        low=0,
        high=0.999,
        step=0.05,
        applies=MUON,
        help="momentum of the conv filters' steps (the head and biases use momentum)",
    )
    whiten_bias_fraction: float = setting(
        WHITEN_BIAS_FRACTION,
        section=OPTIMISE,
        low=0,
        high=1,
        step=0.05,
        unit="of the epochs",
        applies=FASTNET,
        help="the whitening layer's bias trains in this first part of the epochs (at "
        "least one), then freezes: later steps skip a costly gradient",
    )
    # --- evaluation ---
    tta: bool = setting(
        False, section=RUNTIME, help="test-time augmentation: also score the mirrored test image and average"
    )
    tta_shifts: bool = setting(
        False,
        section=RUNTIME,
        applies=when_on("tta"),
        help="for the least confident quarter of the images, also score copies shifted "
        "diagonally by one and two pixels (twice the evaluation time)",
    )
    eval_subset: int = setting(
        0,
        section=RUNTIME,
        low=0,
        high=10_000_000,
        unit="images",
        help="test images (and as many held-out images) scored after each epoch (0 = all); the final scores use all",
    )
    validation: int = setting(
        0,
        section=RUNTIME,
        low=0,
        high=10_000_000,
        unit="images",
        help="hold out the last N training images (the same for every run and seed): never trained on, scored "
        "as validation accuracy after each epoch and at the end; 0 = off",
    )
    # --- data and runtime ---
    normalize: str = setting(
        "cifar",
        section=RUNTIME,
        help="input normalisation",
        choices={"cifar": "per-channel mean/std of CIFAR-10", "half": "the tutorial's 0.5/0.5"},
    )
    seed: int = setting(
        0,
        section=RUNTIME,
        low=0,
        high=2**31 - 1,
        help="random seed; the same seed and config give the same fp32 run",
        label="Seed",
        effect="the random start (first weights, order of the images): the same seed and settings repeat a run; "
        "another seed shows how much of a score is luck",
    )
    device: str = setting(
        "auto",
        section=RUNTIME,
        help="where to train",
        choices={"auto": "CUDA, then MPS, then CPU", "cpu": "", "cuda": "an NVIDIA GPU", "mps": "an Apple GPU"},
    )
    precision: str = setting(
        "auto",
        section=RUNTIME,
        help="number format of training",
        choices={
            "auto": "bf16 where the device computes it fast, else fp32",
            "fp32": "",
            "bf16": "autocast; the weights stay fp32",
        },
    )
    threads: int = setting(0, section=RUNTIME, low=0, high=1024, help="CPU threads to use (0 = every core)")

    def __post_init__(self) -> None:
        for name, description in SETTINGS.items():
            description.check(name, getattr(self, name))
        for rule in RULES:
            rule(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        _known(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild from a stored dict; fields unknown to this version are ignored, missing ones take defaults."""
        known = {k: v for k, v in values.items() if k in SETTINGS}
        return cls(**known)


SETTINGS: Mapping[str, Setting] = MappingProxyType(settings_of(TrainConfig))
FIELD_HELP: dict[str, str] = {name: s.help_line() for name, s in SETTINGS.items()}  # one line each, for --help
# The names each choice setting allows (the registries in models.py and optim.py decide the first three).
ARCHS, OPTIMIZERS, SCHEDULES, DEVICES, PRECISIONS, NORMALIZATIONS = (
    tuple(SETTINGS[name].choices) for name in ("arch", "opt", "schedule", "device", "precision", "normalize")
)


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(TrainConfig))


def describe_fields() -> dict[str, str]:
    """One-line help per field, with its choices or range: for the CLI and the dashboard form."""
    return dict(FIELD_HELP)


def _known(changes: Mapping[str, Any]) -> None:
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown config field(s) {sorted(unknown)}; valid fields: {', '.join(field_names())}")


# --- rules between fields (each field's own range and choices are checked from its setting) -------------------


def _muon_needs_fastnet(c: TrainConfig) -> None:
    if c.opt == "muon" and c.arch != "fastnet":
        raise ValueError(
            f"opt='muon' works with arch='fastnet' only (it needs the net to mark its conv filters); "
            f"use opt='sgd' with arch={c.arch!r}, or arch='fastnet'"
        )


def _lowres_fits(c: TrainConfig) -> None:
    if not c.lowres_epochs:
        return
    if c.lowres_epochs >= c.epochs:
        raise ValueError(
            f"lowres_epochs={c.lowres_epochs} must be below epochs={c.epochs}: the last epoch trains at "
            f"full size, which the test images have"
        )
    if c.arch == "tutorial":
        raise ValueError(
            "lowres_epochs works with arch cnn, resnet or fastnet only: the tutorial net's classifier "
            "wants exactly 32x32 images; set lowres_epochs=0"
        )
    if c.arch == "cnn" and c.lowres_side < 2**c.depth:
        raise ValueError(
            f"lowres_side={c.lowres_side} is too small for arch='cnn' with depth={c.depth} (each block "
            f"halves the side); use lowres_side >= {2**c.depth} or a smaller depth"
        )


def _nesterov_needs_momentum(c: TrainConfig) -> None:
    if c.nesterov and c.opt == "sgd" and c.momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0; set momentum (e.g. 0.9) or nesterov=False")


RULES: tuple[Callable[[TrainConfig], None], ...] = (_muon_needs_fastnet, _lowres_fits, _nesterov_needs_momentum)


# --- presets (presets.py) ---------------------------------------------------------------------------------------


# Settings that fix how long a run is: naming one without `minutes` asks for that run exactly, not a time budget.
RUN_LENGTH = ("epochs", "width", "lowres_epochs", "lowres_side")


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The named preset, with any fields overridden. A preset given by time (classroom, best) trains its recipe
    exactly, with no budget, once any of RUN_LENGTH is set and minutes is not."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    _known(overrides)
    if budget_dropped(name, overrides):
        overrides = {**overrides, "minutes": 0.0}
    return TrainConfig(**{**PRESETS[name], **overrides})


def budget_dropped(name: str, overrides: Mapping[str, Any]) -> bool:
    """Whether these overrides turn the preset's time budget off (see preset)."""
    return bool(PRESETS[name].get("minutes")) and "minutes" not in overrides and any(n in overrides for n in RUN_LENGTH)
