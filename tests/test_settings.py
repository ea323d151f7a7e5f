"""Each setting is described once: validation, the `train` flags and docs/configuration.md follow its description."""

from __future__ import annotations

import argparse
import math
import typing
from pathlib import Path

import pytest

from cifar_lab import configdoc, models, optim
from cifar_lab.cli import UserError, _add_config_flags, _Parser, build_parser, config_from_args, parse_variant
from cifar_lab.config import SETTINGS, TrainConfig, field_names
from cifar_lab.settings import SECTIONS, Setting, cli_flag, setting, when

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = [name for name, s in SETTINGS.items() if s.kind in (int, float)]
CHOICES = [name for name, s in SETTINGS.items() if s.choices]
SWITCHES = [name for name, s in SETTINGS.items() if s.kind is bool]


def outside(s: Setting) -> list[float]:
    """Values just beyond each end of the declared range."""
    assert s.low is not None and s.high is not None
    if s.kind is int:
        return [int(s.low) if s.low_open else int(s.low) - 1, int(s.high) if s.high_open else int(s.high) + 1]
    return [
        s.low if s.low_open else math.nextafter(s.low, -math.inf),
        s.high if s.high_open else math.nextafter(s.high, math.inf),
    ]


def another_value(s: Setting) -> typing.Any:
    """A valid value of the setting other than its default."""
    if s.kind is bool:
        return not s.default
    if s.choices:
        return next(choice for choice in s.choices if choice != s.default)
    assert s.low is not None and s.high is not None
    candidates = (s.kind(s.high), s.kind(s.low), s.kind((s.low + s.high) / 2))
    return next(v for v in candidates if v != s.default and fits(s, v))


def fits(s: Setting, value: typing.Any) -> bool:
    try:
        s.check("value", value)
    except ValueError:
        return False
    return True


def config_flags() -> argparse.ArgumentParser:
    """Just the flags `train` takes for the config."""
    parser = _Parser(prog="python -m cifar_lab train")
    _add_config_flags(parser)
    return parser


def test_every_field_is_described_once_and_completely():
    hints = typing.get_type_hints(TrainConfig)
    assert tuple(SETTINGS) == field_names()
    defaults = TrainConfig()
    for name, s in SETTINGS.items():
        assert s.kind is hints[name] and getattr(defaults, name) == s.default, name
        assert s.help.strip() and "\n" not in s.help_line(), name
        assert s.section in SECTIONS, name
        assert (s.low is not None and s.high is not None) is (s.kind in (int, float)), name
        assert s.kind is not float or s.step, f"{name}: a float needs the form's step"
        assert s.kind is not str or s.choices, f"{name}: free text is not a setting we have"


def test_a_declaration_without_what_the_derivations_need_is_refused():
    with pytest.raises(ValueError, match="low and high"):
        setting(3, help="a count", section="Model")
    with pytest.raises(ValueError, match="section"):
        setting(True, help="a switch", section="Elsewhere")


def test_the_registries_are_the_choices():
    assert tuple(SETTINGS["arch"].choices) == tuple(models.MODELS)
    assert tuple(SETTINGS["opt"].choices) == tuple(optim.OPTIMIZERS)
    assert tuple(SETTINGS["schedule"].choices) == tuple(optim.SCHEDULES)
    for name in ("arch", "opt", "schedule"):
        assert all(SETTINGS[name].choices.values()), f"{name}: every registered entry has its docstring"
    assert dict(SETTINGS["arch"].choices) == models.DESCRIPTIONS


@pytest.mark.parametrize("name", NUMBERS)
def test_validation_refuses_numbers_outside_the_declared_range(name):
    s = SETTINGS[name]
    for value in outside(s):
        with pytest.raises(ValueError) as err:
            TrainConfig(**{name: value})
        assert f"{name}={value!r}" in str(err.value) and s.range_text() in str(err.value)
    wrong_type = 1.5 if s.kind is int else "1"
    with pytest.raises(ValueError, match=f"{name}="):
        TrainConfig(**{name: wrong_type})
    for end, is_open in ((s.low, s.low_open), (s.high, s.high_open)):
        if not is_open:
            s.check(name, s.kind(end))  # the ends of a closed range are allowed


@pytest.mark.parametrize("name", CHOICES)
def test_validation_refuses_unknown_choices_listing_the_valid_ones(name):
    s = SETTINGS[name]
    for value in ("nope", s.default.upper(), None, ["cpu"]):
        with pytest.raises(ValueError) as err:
            TrainConfig(**{name: value})
        assert f"{name}={value!r}" in str(err.value)
        assert all(choice in str(err.value) for choice in s.choices)


@pytest.mark.parametrize("name", SWITCHES)
def test_validation_refuses_switches_that_are_not_bools(name):
    for value in (1, 0, "on", None):
        with pytest.raises(ValueError, match=f"{name}={value!r}"):
            TrainConfig(**{name: value})


def test_conditions_say_and_test_when_a_setting_matters():
    assert SETTINGS["depth"].applies(TrainConfig(arch="cnn")) and not SETTINGS["depth"].applies(TrainConfig())
    bias = SETTINGS["bias_lr_scale"].applies
    assert bias.text == "arch is fastnet and opt is sgd or muon"
    assert bias(TrainConfig(arch="fastnet", opt="muon")) and not bias(TrainConfig(arch="fastnet", opt="adam"))
    assert SETTINGS["lowres_side"].applies(TrainConfig(arch="cnn", epochs=3, lowres_epochs=1))
    assert not SETTINGS["lowres_side"].applies(TrainConfig())
    assert when("opt", "sgd")(TrainConfig(opt="sgd")) is True


def test_every_field_has_a_typed_flag_with_its_help():
    parser = config_flags()
    for name, s in SETTINGS.items():
        value = another_value(s)
        argv = [f"--no-{cli_flag(name)[2:]}" if value is False else cli_flag(name)] + (
            [] if s.kind is bool else [str(value)]
        )
        parsed = getattr(parser.parse_args(argv), name)
        assert parsed == value and type(parsed) is s.kind, name
        assert getattr(parser.parse_args([]), name) is None, f"{name}: an unset flag keeps the preset's value"
    help_text = "".join(parser.format_help().split())  # argparse rewraps the lines
    for name, s in SETTINGS.items():
        assert cli_flag(name) in help_text and "".join(s.help_line().split()) in help_text, name


@pytest.mark.parametrize("name", CHOICES)
def test_a_flag_outside_the_choices_lists_them(name):
    with pytest.raises(UserError) as err:
        config_flags().parse_args([cli_flag(name), "nope"])
    assert all(choice in str(err.value) for choice in SETTINGS[name].choices)


def test_the_new_fastnet_settings_reach_the_config_from_flags_and_variants():
    args = build_parser().parse_args(
        [
            "train",
            "--bias-lr-scale",
            "32",
            "--muon-lr-scale",
            "0.3",
            "--muon-momentum",
            "0.7",
            "--whiten-bias-fraction",
            "0.5",
        ]
    )
    config = config_from_args(args)
    assert (config.bias_lr_scale, config.muon_lr_scale, config.muon_momentum, config.whiten_bias_fraction) == (
        32.0,
        0.3,
        0.7,
        0.5,
    )
    assert parse_variant("classroom --muon-lr-scale 0.16").overrides == {"muon_lr_scale": 0.16}


def test_an_old_stored_config_gets_the_defaults_of_settings_added_since():
    stored = {
        k: v
        for k, v in TrainConfig(arch="fastnet", opt="muon").to_dict().items()
        if k not in ("bias_lr_scale", "muon_lr_scale", "muon_momentum", "whiten_bias_fraction")
    }
    config = TrainConfig.from_dict(stored)
    assert (config.bias_lr_scale, config.muon_lr_scale, config.muon_momentum) == (64.0, 0.22, 0.6)
    assert config.whiten_bias_fraction == 1 / 3


def test_the_configuration_doc_is_current():
    committed = (ROOT / configdoc.DOC_PATH).read_text(encoding="utf-8")
    assert committed == configdoc.render(), "run: python scripts/configuration_doc.py"
    for name in SETTINGS:
        assert f"| `{name}` | `{cli_flag(name)}`" in committed
