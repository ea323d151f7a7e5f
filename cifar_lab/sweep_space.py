"""What a sweep varies: `--param lr=0.5,1,2` (a grid) or `--param lr=0.1:2` / `lr=0.01:1:log` (a range sampled at
random), each checked against the setting it names before any trial starts. No Ray here: the form and the CLI
check a sweep with it; sweep.py turns it into Ray Tune's search space."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .config import SETTINGS, TrainConfig

NOT_SWEPT = ("minutes", "device", "threads", "validation")  # how a trial runs and is compared, not what it tries
SWEEPABLE = tuple(name for name in SETTINGS if name not in NOT_SWEPT)  # what the Sweep page offers


@dataclass(frozen=True)
class Param:
    name: str  # a TrainConfig field
    values: tuple[Any, ...] = ()  # a grid: every trial takes each value once (times --samples)
    low: float | None = None  # a range: each trial draws one value between low and high
    high: float | None = None
    log: bool = False  # draw uniformly in log space (learning rates: 0.01 and 1 as likely as 0.1)

    @property
    def grid(self) -> bool:
        return bool(self.values)

    def text(self) -> str:
        """As typed after --param."""
        if self.grid:
            return f"{self.name}={','.join(_show(v) for v in self.values)}"
        return f"{self.name}={_show(self.low)}:{_show(self.high)}" + (":log" if self.log else "")


def parse_param(text: str) -> Param:
    """`name=v1,v2,...` or `name=low:high[:log]`; ValueError saying what is wrong and how to write it."""
    example = "write NAME=V1,V2 for a grid or NAME=LOW:HIGH[:log] for a range, e.g. lr=0.5,1,2 or lr=0.1:2:log"
    name, sep, rest = text.partition("=")
    name = name.strip().lstrip("-").replace("-", "_")
    if not sep or not name or not rest.strip():
        raise ValueError(f"--param {text!r}: {example}")
    if name not in SETTINGS:
        raise ValueError(f"--param {text!r}: {name!r} is not a setting; `train --help` lists them")
    if name in NOT_SWEPT:
        raise ValueError(f"--param {text!r}: {name} is how every trial runs, not a setting to compare; set it once")
    setting = SETTINGS[name]
    if ":" in rest:
        return _range(text, name, rest, example)
    values = tuple(_value(text, name, word.strip()) for word in rest.split(",") if word.strip())
    if len(set(values)) != len(values):
        raise ValueError(f"--param {text!r}: a value is given twice")
    for value in values:
        setting.check(name, value)
    return Param(name, values)


def _range(text: str, name: str, rest: str, example: str) -> Param:
    setting = SETTINGS[name]
    words = [w.strip() for w in rest.split(":")]
    log = len(words) == 3 and words[2].lower() == "log"
    if len(words) not in (2, 3) or (len(words) == 3 and not log):
        raise ValueError(f"--param {text!r}: {example}")
    if setting.kind not in (int, float):
        raise ValueError(f"--param {text!r}: {name} is not a number; list its values instead, e.g. {name}=a,b")
    low, high = (_value(text, name, w) for w in words[:2])
    for value in (low, high):
        setting.check(name, value)
    if not low < high:
        raise ValueError(f"--param {text!r}: the range's low end must be below its high end")
    if log and low <= 0:
        raise ValueError(f"--param {text!r}: a log range needs a low end above 0")
    return Param(name, (), float(low), float(high), log)


def _value(text: str, name: str, word: str) -> Any:
    kind = SETTINGS[name].kind
    try:
        if kind is bool:
            if word.lower() not in ("true", "false", "on", "off", "1", "0"):
                raise ValueError
            return word.lower() in ("true", "on", "1")
        return kind(word)
    except ValueError:
        raise ValueError(f"--param {text!r}: {word!r} is not a valid {name} ({kind.__name__})") from None


def check_space(base: TrainConfig, params: list[Param]) -> None:
    """ValueError unless each setting is swept once and every grid point makes a valid config with `base`."""
    names = [p.name for p in params]
    if not params:
        raise ValueError("a sweep needs at least one --param, e.g. --param lr=0.5,1,2")
    if len(set(names)) != len(names):
        raise ValueError(f"a setting is swept twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    for point in grid_points(params):
        base.replace(**point)  # e.g. muon with another architecture is refused now, not in a trial


def grid_points(params: list[Param]) -> list[dict[str, Any]]:
    """Every combination of the grid values (ranges at their low end): what check_space tries."""
    points: list[dict[str, Any]] = [{}]
    for p in params:
        low = p.low or 0.0
        values = p.values or ((int(low) if SETTINGS[p.name].kind is int else low),)
        points = [{**point, p.name: v} for point in points for v in values]
    return points


def trial_count(params: list[Param], samples: int) -> int:
    """Trials a sweep runs: the grid's size times `samples` (a range adds no points of its own)."""
    return math.prod(len(p.values) for p in params if p.grid) * samples


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)
