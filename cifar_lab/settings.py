"""A training setting described once (help, unit, range or choices, form section and step, when it applies)."""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# The Train form's columns and docs/configuration.md's tables, in reading order.
SECTIONS = ("Model", "Augmentation", "Optimisation", "Evaluation and runtime")
_KEY = "setting"  # where a dataclass field's metadata holds its Setting


@dataclass(frozen=True)
class Condition:
    """When a setting matters: a test of a config (a TrainConfig, or the form's values by name) and its words."""

    text: str  # e.g. "arch is cnn"
    test: Callable[[Any], bool]

    def __call__(self, config: Any) -> bool:
        return bool(self.test(config))

    def __and__(self, other: Condition) -> Condition:
        return Condition(f"{self.text} and {other.text}", lambda c: self(c) and other(c))


def when(name: str, *values: Any) -> Condition:
    """The setting matters while field `name` holds one of `values`."""
    return Condition(f"{name} is {' or '.join(str(v) for v in values)}", lambda c: getattr(c, name) in values)


def unless(name: str, value: Any) -> Condition:
    """The setting matters unless field `name` holds `value`."""
    return Condition(f"{name} is not {value}", lambda c: getattr(c, name) != value)


def when_on(name: str) -> Condition:
    """The setting matters while the switch `name` is on."""
    return Condition(f"{name} is on", lambda c: bool(getattr(c, name)))


def when_positive(name: str) -> Condition:
    """The setting matters while the number `name` is above zero."""
    return Condition(f"{name} > 0", lambda c: getattr(c, name) > 0)


@dataclass(frozen=True)
class Setting:
    """What one TrainConfig field is; made by `setting`, read by validation, the CLI, the form and the docs."""

    default: Any
    kind: type  # bool, int, float or str: the type of the default
    help: str  # one line, lower case, no full stop: what it does and why one would change it
    section: str  # one of SECTIONS
    unit: str = ""  # e.g. "pixels"; "" for a plain count or a ratio that says what it is
    low: float | None = None  # numbers: the allowed range
    high: float | None = None
    low_open: bool = False  # the range excludes `low` itself
    high_open: bool = False
    choices: Mapping[str, str] = dataclasses.field(default_factory=dict)  # name -> what it means ("" if clear)
    step: float | None = None  # the form's step for a float; whole numbers step by 1
    applies: Condition | None = None  # None: always
    label: str = ""  # the form's label in plain words, e.g. "Learning rate"; "" shows the field's name
    # For the few settings a student changes (the Train form shows them first, the rest under "Advanced"): what
    # happens when it is raised or lowered, in words a class understands. "" for the others.
    effect: str = ""

    @property
    def basic(self) -> bool:
        return bool(self.effect)

    def form_label(self, name: str) -> str:
        return self.label or name.replace("_", " ")

    def range_text(self) -> str:
        """e.g. "[4, 512]" or "(0, 100]"; "" for a setting that is not a number."""
        if self.low is None or self.high is None:
            return ""
        opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{opening}{_number(self.low)}, {_number(self.high)}{closing}"

    def limits(self) -> str:
        """The range with its unit, e.g. "[0, 8] pixels"; "" for a setting that is not a number."""
        return " ".join(part for part in (self.range_text(), self.unit) if part)

    def help_line(self) -> str:
        """The help with its choices or range and unit, and when it applies: what --help and the form show."""
        if self.choices:
            named = [f"{name} ({meaning})" if meaning else name for name, meaning in self.choices.items()]
            text = f"{self.help}: {', '.join(named)}"
        else:
            text = f"{self.help}; allowed: {self.limits()}" if self.limits() else self.help
        return f"{text}; used only when {self.applies.text}" if self.applies else text

    def check(self, name: str, value: Any) -> None:
        """Raise ValueError naming the field, the value and what is allowed, unless `value` fits."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{name}={value!r} is not valid; it must be true or false")
        elif self.choices:
            if not isinstance(value, str) or value not in self.choices:
                raise ValueError(f"{name}={value!r} is not valid; choose one of: {', '.join(self.choices)}")
        elif self.kind in (int, float):
            self._check_number(name, value)

    def _check_number(self, name: str, value: Any) -> None:
        integer = self.kind is int
        allowed = self.limits()
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
            kind = "a whole number" if integer else "a number"
            raise ValueError(f"{name}={value!r} is not valid; it must be {kind} in {allowed}")
        assert self.low is not None and self.high is not None  # setting() insists on both for numbers
        if (
            value < self.low
            or value > self.high
            or (self.low_open and value == self.low)
            or (self.high_open and value == self.high)
        ):
            raise ValueError(f"{name}={value!r} is out of range; allowed: {allowed}")


def _number(value: float) -> str:
    """A bound as written: whole numbers in full (2147483647, not 2.14748e+09), others short (0.999, 1e-09)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def setting(
    default: Any,
    *,
    help: str,
    section: str,
    unit: str = "",
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    choices: Mapping[str, str] | Iterable[str] = (),
    step: float | None = None,
    applies: Condition | None = None,
    label: str = "",
    effect: str = "",
) -> Any:
    """A dataclass field with its default and its description (see Setting). Numbers need `low` and `high`."""
    kind = type(default)
    if section not in SECTIONS:
        raise ValueError(f"section {section!r} is not one of {SECTIONS}")
    if kind in (int, float) and (low is None or high is None):
        raise ValueError(f"a number setting needs low and high (default {default!r}: {help!r})")
    described = dict(choices) if isinstance(choices, Mapping) else dict.fromkeys(choices, "")
    description = Setting(
        default, kind, help, section, unit, low, high, low_open, high_open, described, step, applies, label, effect
    )
    return dataclasses.field(default=default, metadata={_KEY: description})


def settings_of(cls: type) -> dict[str, Setting]:
    """Field name -> Setting, in declaration order, for a dataclass whose fields were made by `setting`."""
    return {f.name: f.metadata[_KEY] for f in dataclasses.fields(cls)}


def described(registry: Mapping[str, Callable[..., Any]]) -> dict[str, str]:
    """name -> the first line of its entry's docstring: a registry's choices with what each means."""
    return {name: (inspect.getdoc(entry) or "").split("\n")[0] for name, entry in registry.items()}


def cli_flag(field: str) -> str:
    """The command-line flag that sets a config field: batch_size -> --batch-size."""
    return "--" + field.replace("_", "-")


def cli_setting(field: str, value: Any) -> str:
    """The flag, with its value, that sets a config field to `value`: `--flip`, `--no-flip`, `--lr 0.75`."""
    flag = cli_flag(field)
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    return f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"
