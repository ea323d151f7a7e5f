"""TrainConfig validation, replace/from_dict/to_dict, presets and field help."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from cifar_lab import config as cfg
from cifar_lab.config import (
    ARCHS,
    DEVICES,
    FIELD_HELP,
    NORMALIZATIONS,
    OPTIMIZERS,
    PRECISIONS,
    PRESETS,
    SCHEDULES,
    TrainConfig,
    field_names,
    preset,
)

NAN, INF = float("nan"), float("inf")

# (field, bad value) pairs: zero/negative/NaN/inf/huge, wrong type, out of range.
BAD_NUMBERS = [
    ("width", 0),
    ("width", -8),
    ("width", 3),
    ("width", 513),
    ("width", 10**9),
    ("width", 8.0),
    ("width", "8"),
    ("width", True),
    ("width", None),
    ("width", NAN),
    ("depth", 0),
    ("depth", 6),
    ("depth", 2.5),
    ("depth", -1),
    ("dropout", -0.1),
    ("dropout", 0.95),
    ("dropout", NAN),
    ("dropout", INF),
    ("dropout", "0.1"),
    ("dropout", True),
    ("crop_pad", -1),
    ("crop_pad", 9),
    ("crop_pad", 2.0),
    ("rotate", -1.0),
    ("rotate", 181.0),
    ("rotate", NAN),
    ("rotate", INF),
    ("cutout", -1),
    ("cutout", 33),
    ("cutout", 4.5),
    ("lr", 0),
    ("lr", 0.0),
    ("lr", -1.0),
    ("lr", NAN),
    ("lr", INF),
    ("lr", -INF),
    ("lr", 1e9),
    ("lr", "0.1"),
    ("lr", True),
    ("lr", None),
    ("momentum", -0.1),
    ("momentum", 1.0),
    ("momentum", NAN),
    ("weight_decay", -1e-4),
    ("weight_decay", 2.0),
    ("weight_decay", INF),
    ("batch_size", 0),
    ("batch_size", -64),
    ("batch_size", 8193),
    ("batch_size", 64.0),
    ("batch_size", 10**12),
    ("epochs", 0),
    ("epochs", -1),
    ("epochs", 1001),
    ("epochs", NAN),
    ("epochs", INF),
    ("epochs", "3"),
    ("warmup", -0.1),
    ("warmup", 0.95),
    ("warmup", NAN),
    ("label_smoothing", -0.1),
    ("label_smoothing", 1.0),
    ("label_smoothing", NAN),
    ("eval_subset", -1),
    ("eval_subset", 1.5),
    ("seed", -1),
    ("seed", 2**31),
    ("seed", 1.0),
    ("threads", -1),
    ("threads", 1025),
    ("threads", 2.0),
    ("lowres_epochs", -1),
    ("lowres_epochs", 1.0),
    ("lowres_side", 15),
    ("lowres_side", 33),
    ("lowres_side", 24.0),
]

BAD_CHOICES = [
    ("arch", ARCHS, ["nope", "CNN", "", None, 1, "resnet18"]),
    ("opt", OPTIMIZERS, ["rmsprop", "SGD", None]),
    ("schedule", SCHEDULES, ["linear", "one-cycle", None]),
    ("device", DEVICES, ["tpu", "gpu", "cuda:0", None]),
    ("precision", PRECISIONS, ["fp16", "half", "float32", None]),
    ("normalize", NORMALIZATIONS, ["imagenet", "none", None]),
]

BOOL_FIELDS = ["batchnorm", "flip", "nesterov", "tta"]


@pytest.mark.parametrize(("name", "value"), BAD_NUMBERS, ids=[f"{n}={v!r}" for n, v in BAD_NUMBERS])
def test_invalid_number_raises_value_error_naming_field_and_value(name, value):
    with pytest.raises(ValueError) as err:
        TrainConfig(**{name: value})
    message = str(err.value)
    assert name in message
    assert repr(value) in message or str(value) in message
    assert "[" in message or "(" in message  # the allowed range is stated


@pytest.mark.parametrize(("name", "allowed", "values"), BAD_CHOICES, ids=[c[0] for c in BAD_CHOICES])
def test_unknown_name_raises_listing_valid_choices(name, allowed, values):
    for value in values:
        with pytest.raises(ValueError) as err:
            TrainConfig(**{name: value})
        message = str(err.value)
        assert name in message and repr(value) in message
        for choice in allowed:
            assert choice in message


@pytest.mark.parametrize("name", BOOL_FIELDS)
@pytest.mark.parametrize("value", [1, 0, "yes", "false", None])
def test_bool_fields_reject_non_bools(name, value):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**{name: value})


def test_boundary_values_are_accepted():
    low = TrainConfig(
        width=4,
        depth=1,
        dropout=0.0,
        crop_pad=0,
        rotate=0.0,
        cutout=0,
        lr=1e-9,
        momentum=0.0,
        nesterov=False,
        weight_decay=0.0,
        batch_size=1,
        epochs=1,
        warmup=0.0,
        label_smoothing=0.0,
        eval_subset=0,
        seed=0,
        threads=0,
    )
    high = TrainConfig(
        width=512,
        depth=5,
        dropout=0.9,
        crop_pad=8,
        rotate=180.0,
        cutout=32,
        lr=100.0,
        momentum=0.999,
        weight_decay=1.0,
        batch_size=8192,
        epochs=1000,
        warmup=0.9,
        label_smoothing=0.9,
        seed=2**31 - 1,
        threads=1024,
    )
    assert low.width == 4 and high.width == 512
    assert TrainConfig(lr=1).lr == 1  # an int is a fine float


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        (dict(epochs=3, lowres_epochs=3), ["lowres_epochs=3", "epochs=3", "full size"]),
        (dict(epochs=3, lowres_epochs=5), ["lowres_epochs=5", "below"]),
        (dict(arch="tutorial", epochs=3, lowres_epochs=1), ["tutorial", "32x32", "lowres_epochs=0"]),
        (dict(arch="cnn", depth=5, epochs=3, lowres_epochs=1), ["lowres_side=24", "depth=5", ">= 32"]),
    ],
)
def test_lowres_epochs_refuses_what_cannot_train(changes, names):
    with pytest.raises(ValueError) as err:
        TrainConfig(**changes)
    assert all(name in str(err.value) for name in names)


@pytest.mark.parametrize("arch", ["cnn", "resnet", "fastnet"])
def test_lowres_epochs_before_the_last_epoch_are_accepted(arch):
    assert TrainConfig(arch=arch, epochs=3, lowres_epochs=2, lowres_side=16).lowres_epochs == 2
    assert TrainConfig(arch="tutorial", lowres_side=16).lowres_side == 16  # unused while lowres_epochs is 0


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="nesterov") as err:
        TrainConfig(opt="sgd", nesterov=True, momentum=0.0)
    assert "momentum" in str(err.value)
    assert TrainConfig(opt="sgd", nesterov=False, momentum=0.0).momentum == 0.0
    assert TrainConfig(opt="adam", nesterov=True, momentum=0.0).opt == "adam"  # Adam ignores nesterov


def test_config_is_frozen_and_keyword_only():
    c = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        TrainConfig("cnn")  # type: ignore[misc]


def test_replace_validates_and_leaves_original():
    c = TrainConfig(arch="cnn", lr=0.1)
    d = c.replace(lr=0.5, width=16)
    assert (d.lr, d.width, d.arch) == (0.5, 16, "cnn")
    assert (c.lr, c.width) == (0.1, 64)
    with pytest.raises(ValueError, match="lr"):
        c.replace(lr=-1.0)
    with pytest.raises(ValueError, match="arch"):
        c.replace(arch="nope")


def test_replace_unknown_field_names_it_and_lists_fields():
    with pytest.raises(ValueError) as err:
        TrainConfig().replace(learning_rate=0.1)
    message = str(err.value)
    assert "learning_rate" in message
    assert "lr" in message and "batch_size" in message


def test_round_trip_to_dict_from_dict_and_json():
    for name in PRESETS:
        c = preset(name)
        d = c.to_dict()
        assert set(d) == set(field_names())
        assert TrainConfig.from_dict(d) == c
        assert TrainConfig.from_dict(json.loads(json.dumps(d))) == c


def test_from_dict_ignores_unknown_fields_and_defaults_missing_ones():
    c = TrainConfig.from_dict({"arch": "cnn", "width": 16, "field_from_the_future": 3})
    assert (c.arch, c.width) == ("cnn", 16)
    assert c.lr == TrainConfig().lr and c.epochs == TrainConfig().epochs


def test_from_dict_still_validates():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig.from_dict({"batch_size": 0})
    with pytest.raises(ValueError, match="opt"):
        TrainConfig.from_dict({"opt": "lion"})


def test_all_presets_construct_with_the_expected_names():
    assert {"tutorial", "improved", "classroom", "best"} <= set(PRESETS)
    for name in PRESETS:
        assert isinstance(preset(name), TrainConfig)
        for key in PRESETS[name]:
            assert key in field_names(), f"preset {name} sets unknown field {key}"


def test_tutorial_preset_is_the_pytorch_tutorial():
    t = preset("tutorial")
    assert (t.arch, t.batch_size, t.opt, t.lr, t.momentum, t.epochs) == ("tutorial", 4, "sgd", 0.001, 0.9, 2)
    assert (t.flip, t.crop_pad, t.rotate, t.cutout) == (False, 0, 0.0, 0)  # no augmentation
    assert t.normalize == "half" and t.weight_decay == 0.0 and t.schedule == "constant" and not t.nesterov


def test_improved_preset_applies_the_tutorial_improvements():
    i = preset("improved")
    assert i.arch == "cnn" and i.batchnorm and i.dropout > 0 and i.opt == "adam"
    assert i.flip and i.crop_pad > 0 and i.rotate > 0


def test_preset_overrides_and_validates():
    assert preset("tutorial", epochs=1).epochs == 1
    with pytest.raises(ValueError, match="epochs"):
        preset("tutorial", epochs=0)


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError) as err:
        preset("nope")
    message = str(err.value)
    assert "nope" in message
    for name in PRESETS:
        assert name in message


def test_preset_with_unknown_override_raises_value_error_naming_it():
    # Same contract as replace(): a ValueError that names the field, not a bare TypeError.
    with pytest.raises(ValueError, match="learning_rate"):
        preset("tutorial", learning_rate=0.1)


def test_every_field_has_one_line_help():
    assert set(FIELD_HELP) == set(field_names())
    assert cfg.describe_fields() == FIELD_HELP
    for name, text in FIELD_HELP.items():
        assert text.strip() and "\n" not in text, name


def test_defaults_are_valid_and_finite():
    c = TrainConfig()
    for name, value in c.to_dict().items():
        if isinstance(value, float):
            assert math.isfinite(value), name
