"""The class leaderboard: finished runs ranked by accuracy with what each changed, and accuracy per varied setting."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import plotly.graph_objects as go

from .. import class_settings
from ..class_settings import ClassSettings
from ..config import SETTINGS, TrainConfig, field_names, preset
from ..labels import visible
from ..presets import PRESETS
from ..runs import RunRecord, RunStore
from .setting_plots import setting_scatter, short_name, value_text

# Settings that never change what a run scores, left out of the changes column and the scatters: device and threads
# change only the speed, eval_subset only the per-epoch curve (the final score always uses every test image); a time
# budget is recorded as the epochs and width it chose (minutes 0), which say what trained.
NEVER_MATTERS = frozenset({"device", "threads", "eval_subset", "minutes"})
# Left out of the changes column only: the teacher's hold-out is the same for every run of the class, so on each row
# it would say nothing about the participant's choices (it still gets a scatter where runs differ in it).
NOT_CHOSEN = frozenset({"validation"})
# A seed moves a score by chance alone: a scatter against it would show a pattern that is not there.
CHANCE = frozenset({"seed"})
MAX_FIGURES = 6  # scatters beside the board: more would push the board itself off a laptop's screen


@dataclass(frozen=True)
class Entry:
    """One row of the leaderboard."""

    rank: int  # 1-based
    run_id: str
    owner: str
    name: str
    preset: str  # "" when the run started from the default settings
    changes: str  # the settings changed from the preset, e.g. "lr 2 · epochs 12"; "" when none
    minutes: float | None  # from start to final score (training and every evaluation); None if not recorded
    accuracy: float | None  # 0..1: what the board ranks by (validation accuracy while test accuracies are hidden)
    test_accuracy: float | None  # 0..1; None while the class's validation mode hides it
    validation_accuracy: float | None  # 0..1 on the held-out images; None for a run that held none out
    hidden: bool  # the teacher took it off the board (listed only in the teacher's view)


def hides_test(settings: ClassSettings) -> bool:
    """True while the class ranks by validation accuracy and test accuracies stay hidden."""
    return settings.validation and not settings.revealed


def ranked_by(settings: ClassSettings) -> str:
    """What the accuracy column holds, e.g. for its header: "validation accuracy" or "test accuracy"."""
    return "validation accuracy" if hides_test(settings) else "test accuracy"


def entries(records: Iterable[RunRecord], settings: ClassSettings, *, include_hidden: bool = False) -> list[Entry]:
    """Completed, sound runs, best first: by validation accuracy while test accuracies are hidden (runs without one
    last), else by test accuracy; ties go to fewer minutes, then the earlier finish."""
    by_validation = hides_test(settings)
    board = sorted(_on_board(records, include_hidden), key=lambda r: _order(r, by_validation))
    return [_entry(rank, r, by_validation) for rank, r in enumerate(board, start=1)]


def changes(record: RunRecord) -> str:
    """The settings a run changed from its preset (from the defaults when it named none), e.g. "lr 2 · epochs 12"."""
    return config_changes(record.config, record.preset)


def config_changes(config: dict[str, Any], preset_name: str) -> str:
    """The settings `config` (TrainConfig.to_dict()) changed from the preset `preset_name` ("": the defaults)."""
    if preset_name and preset_name not in PRESETS:
        return f"preset {preset_name!r} is unknown to this version of the lab"
    base = (preset(preset_name) if preset_name else TrainConfig()).to_dict()
    quiet = NEVER_MATTERS | NOT_CHOSEN | CHANCE  # the dashboard draws a new seed per run: no one's choice
    changed = [name for name in field_names() if name not in quiet and name in config and config[name] != base[name]]
    return " · ".join(f"{short_name(name)} {value_text(config[name])}" for name in changed)


def run_label(owner: str, preset_name: str, config: TrainConfig, *, max_chars: int = 100) -> str:
    """A run's default name, e.g. "Ada · classroom · lr 2": who, from what, and what they changed."""
    parts = [owner, preset_name or "custom", config_changes(config.to_dict(), preset_name)]
    label = " · ".join(p for p in parts if p)
    return label if len(label) <= max_chars else label[: max_chars - 1] + "…"


def varied_settings(
    records: Iterable[RunRecord], *, include_hidden: bool = False, limit: int = MAX_FIGURES
) -> list[str]:
    """Config fields whose values differ between the finished runs, among the runs each one matters for: the field
    most runs moved away from its commonest value first, then the one with more distinct values; at most `limit`."""
    runs = list(_on_board(records, include_hidden))
    scored = []
    for order, name in enumerate(field_names()):
        if name in NEVER_MATTERS | CHANCE:
            continue
        values = [_key(_value(r, name)) for r in runs if _applies(r, name)]
        counts = Counter(values)
        if len(counts) > 1:
            moved = len(values) - counts.most_common(1)[0][1]
            scored.append((-moved, -len(counts), order, name))
    return [name for *_, name in sorted(scored)[:limit]]


def setting_figures(
    records: Iterable[RunRecord], settings: ClassSettings, fields: Sequence[str], *, include_hidden: bool = False
) -> dict[str, go.Figure]:
    """Field -> a small scatter of the ranked accuracy (%) against that setting, one point per run it matters for."""
    by_validation = hides_test(settings)
    runs = [r for r in _on_board(records, include_hidden) if _ranked_accuracy(r, by_validation) is not None]
    y_title = f"{ranked_by(settings)} (%)"
    figures = {}
    for name in fields:
        shown = [r for r in runs if _applies(r, name)]
        accuracies = [100 * (_ranked_accuracy(r, by_validation) or 0.0) for r in shown]
        who = [(visible(r.owner) or "?", visible(r.name)) for r in shown]
        figures[name] = setting_scatter(name, [_value(r, name) for r in shown], accuracies, who, y_title)
    return figures


@dataclass(frozen=True)
class Board:
    """Everything the leaderboard shows at one moment."""

    entries: list[Entry]
    ranked_by: str  # the accuracy column's name
    test_hidden: bool  # test accuracies are hidden (validation mode, not yet revealed)
    figures: dict[str, go.Figure]  # field -> its scatter, most varied first


def load_board(store: RunStore, *, include_hidden: bool = False) -> Board:
    """The board as the store holds it now: call again to update it."""
    records = store.list_runs(status="completed")
    settings = class_settings.load(store)
    fields = varied_settings(records, include_hidden=include_hidden)
    return Board(
        entries(records, settings, include_hidden=include_hidden),
        ranked_by(settings),
        hides_test(settings),
        setting_figures(records, settings, fields, include_hidden=include_hidden),
    )


# --- ranking ----------------------------------------------------------------------------------------------------


def _on_board(records: Iterable[RunRecord], include_hidden: bool) -> Iterable[RunRecord]:
    return (r for r in records if r.status == "completed" and not r.damaged and (include_hidden or not r.hidden))


def _order(record: RunRecord, by_validation: bool) -> tuple:
    accuracy, minutes = _ranked_accuracy(record, by_validation), _minutes(record)
    return (
        accuracy is None,
        -(accuracy or 0.0),
        minutes is None,
        minutes or 0.0,
        record.ended is None,
        record.ended or "",
        record.id,
    )


def _entry(rank: int, record: RunRecord, by_validation: bool) -> Entry:
    return Entry(
        rank,
        record.id,
        visible(record.owner),
        visible(record.name),
        record.preset,
        changes(record),
        _minutes(record),
        _ranked_accuracy(record, by_validation),
        None if by_validation else _test_accuracy(record),
        _number(record.metrics.get("validation_accuracy")),
        record.hidden,
    )


def _ranked_accuracy(record: RunRecord, by_validation: bool) -> float | None:
    return _number(record.metrics.get("validation_accuracy")) if by_validation else _test_accuracy(record)


def _test_accuracy(record: RunRecord) -> float | None:
    return _number(record.test_accuracy if record.test_accuracy is not None else record.metrics.get("test_accuracy"))


def _minutes(record: RunRecord) -> float | None:
    """total_seconds where recorded (runs since it was added), else train_seconds: both end at the final score."""
    seconds = _number(record.metrics.get("total_seconds"))
    seconds = seconds if seconds is not None else _number(record.metrics.get("train_seconds"))
    return None if seconds is None else seconds / 60


def _number(value: Any) -> float | None:
    """A finite number as a float; None for anything else (a metric missing, or written by another version)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


# --- settings of a stored config ---------------------------------------------------------------------------------


def _value(record: RunRecord, name: str) -> Any:
    """The run's value of a field; one recorded before the field existed trained with its default."""
    return record.config.get(name, SETTINGS[name].default)


def _applies(record: RunRecord, name: str) -> bool:
    """Whether the setting mattered to the run (depth does not to a fastnet): judged from the stored values."""
    condition = SETTINGS[name].applies
    if condition is None:
        return True
    try:
        return condition(SimpleNamespace(**{f: _value(record, f) for f in SETTINGS}))
    except (TypeError, ValueError):  # a stored value of an unexpected type: count the run in
        return True


def _key(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)
