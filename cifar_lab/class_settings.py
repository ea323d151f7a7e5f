"""What the teacher decides for the whole class, kept in the run store so that every session and a restart see it."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

from .runs import RunStore

log = logging.getLogger(__name__)
TABLE = "class_settings"  # made with the store's other tables (runs.SCHEMA)


@dataclass(frozen=True)
class ClassSettings:
    paused: bool = False  # the queue starts nothing new; the running run goes on
    runs_per_participant: int = 1  # runs one participant may have queued or running at once
    presets: tuple[str, ...] = ()  # the presets participants may start from; () allows every one
    archs: tuple[str, ...] = ()  # the architectures participants may train; () allows every one
    max_epochs: int = 0  # the most epochs of a participant's run; 0: no cap
    max_minutes: float = 0.0  # the most estimated minutes of training of a participant's run; 0: no cap
    class_model: str = ""  # the checkpoint file everyone classifies with; "": the shipped model
    gallery: bool = False  # the latest pictures the class classified are shown to all (kept in memory only)
    validation: bool = False  # the leaderboard ranks by held-out validation accuracy until `revealed`
    revealed: bool = True  # test accuracies are shown (turning validation on hides them until revealed)


FIELDS = {f.name: f for f in dataclasses.fields(ClassSettings)}


def load(store: RunStore) -> ClassSettings:
    """The class's settings; a value that cannot be read takes its default (and is logged), never an error."""
    values: dict[str, Any] = {}
    for row in store.query(f"SELECT key, value FROM {TABLE}"):
        key = row["key"]
        if key not in FIELDS:
            continue  # written by a newer version of the lab
        try:
            values[key] = _typed(key, json.loads(row["value"]))
        except (ValueError, TypeError) as err:
            log.warning("class setting %s is unreadable (%s); using its default", key, err)
    return ClassSettings(**values)


def update(store: RunStore, **changes: Any) -> ClassSettings:
    """Set some settings (checked, as one transaction) and return them all."""
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown class setting(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    typed = {key: _typed(key, value) for key, value in changes.items()}
    with store.transaction() as conn:
        for key, value in typed.items():
            conn.execute(
                f"INSERT INTO {TABLE} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, json.dumps(value)],
            )
    return load(store)


def _typed(key: str, value: Any) -> Any:
    """`value` as the field's type, or ValueError saying what is wrong."""
    default = FIELDS[key].default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, not {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key} must be a list of names, not {value!r}")
        return tuple(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{key} must be text, not {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{key} must be a number of at least 0, not {value!r}")
    if key == "runs_per_participant" and value < 1:
        raise ValueError("runs_per_participant must be at least 1")
    return int(value) if isinstance(default, int) else float(value)
