"""Damaged run rows: flagged on reading, never fatal; `runs --check` lists them, `--repair` moves them to quarantine."""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .processes import process_alive

if TYPE_CHECKING:
    from .runs import RunStore

QUARANTINE = "quarantine"  # the runs rows moved out, as text, with the reason and the time
QUARANTINE_OF = {"epochs": "quarantine_epochs", "steps": "quarantine_steps"}  # their metric rows


class BadText(str):
    """Text SQLite held that was not valid UTF-8, decoded with U+FFFD in place of the bad bytes."""


def decode_text(raw: bytes) -> str:
    """The connections' text_factory: one badly encoded value marks its row damaged instead of failing the query."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return BadText(raw.decode("utf-8", errors="replace"))


def _text(value: Any, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if isinstance(value, BadText):
        raise ValueError("is not valid UTF-8 text")
    if not isinstance(value, str):
        raise ValueError("is missing" if value is None else f"is not text ({type(value).__name__})")
    return value


def _json_object(value: Any) -> dict[str, Any]:
    text = _text(value, optional=True)
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"is not valid JSON: {err.msg} at character {err.pos}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"is not a JSON object (it is a {type(parsed).__name__})")
    return parsed


def _whole(value: Any, optional: bool = False) -> int | None:
    if (value is None and optional) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError(f"{value!r} is not a whole number")


def _fraction(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"{value!r} is outside 0..1")
    return float(value)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _field_readers(statuses: Collection[str]) -> dict[str, tuple[Callable[[Any], Any], Any]]:
    """Column -> (reader raising ValueError with what is wrong, stand-in when it cannot be read)."""

    def status(value: Any) -> str:
        if _text(value) not in statuses:
            raise ValueError(f"{value!r} is unknown (known: {', '.join(statuses)})")
        return value

    def optional_text(value: Any) -> str | None:
        return _text(value, optional=True)

    return {
        "id": (_text, ""),
        "name": (_text, ""),
        "config": (_json_object, {}),
        "status": (status, "?"),
        "message": (_text, ""),
        "checkpoint": (optional_text, None),
        "data_source": (optional_text, None),
        "device": (_text, ""),
        "started": (_text, ""),
        "ended": (optional_text, None),
        "updated": (_text, ""),
        "epochs_done": (_whole, 0),
        "test_accuracy": (_fraction, None),
        "metrics": (_json_object, {}),
        "pid": (lambda v: _whole(v, optional=True), None),
        "host": (optional_text, None),
        "out_of_memory": (lambda v: bool(_whole(v)), False),
        "owner": (_text, ""),
        "preset": (_text, ""),
        "node": (_text, ""),
        "sweep": (_text, ""),
        "position": (_number, None),
        "hidden": (lambda v: bool(_whole(v)), False),
    }


def decode_run_row(values: dict[str, Any], statuses: Collection[str]) -> dict[str, Any]:
    """RunRecord's fields from a runs row; `damaged` says what is wrong ("" when nothing), `unreadable` names the
    fields holding a stand-in. Columns this module does not know pass through as read."""
    readers, fields, problems = _field_readers(statuses), dict(values), []
    for column, (read, stand_in) in readers.items():
        if column not in fields:
            continue
        try:
            fields[column] = read(fields[column])
        except ValueError as err:
            problems.append((column, f"{column} {err}"))
            fields[column] = stand_in
    return {**fields, "damaged": "; ".join(p for _, p in problems), "unreadable": frozenset(c for c, _ in problems)}


@dataclass(frozen=True)
class Damage:
    id: str
    problem: str  # e.g. "config is not valid JSON: Expecting property name enclosed in double quotes at character 1"


@dataclass(frozen=True)
class Quarantined:
    moved: list[Damage]
    epochs: int  # epoch rows moved with them
    steps: int
    kept: list[Damage]  # damaged rows of runs still training, left in place


def find_damaged(store: RunStore) -> list[Damage]:
    """Every damaged runs row, newest first."""
    return [Damage(r.id, r.damaged) for r in store.list_runs() if r.damaged]


def report(store: RunStore, *, repair: bool = False) -> int:
    """`runs --check [--repair]`: one line per damaged row (id: problem); with `repair`, move them to quarantine.
    Returns the exit status: 0 when the history is sound (again), 1 when damaged rows remain."""
    if not repair:
        damaged = find_damaged(store)
        for damage in damaged:
            print(f"{damage.id}: {damage.problem}")
        if not damaged:
            print(f"no damaged runs in {store.path}")
            return 0
        print(
            f"{len(damaged)} damaged run(s) in {store.path}; `python -m cifar_lab runs --check --repair` moves "
            "them to a quarantine table (nothing is deleted)",
            file=sys.stderr,
        )
        return 1
    result = store.quarantine_damaged()
    for damage in result.moved:
        print(f"{damage.id}: {damage.problem}")
    for damage in result.kept:
        print(f"{damage.id}: {damage.problem}; still training, so left in place: repair again once it ends")
    if result.moved:
        print(
            f"moved {len(result.moved)} damaged run(s), with {result.epochs} epoch and {result.steps} step rows, to "
            f"the tables {QUARANTINE}, {', '.join(QUARANTINE_OF.values())} of {store.path}; nothing was deleted "
            f"(see them with: sqlite3 {store.path} 'SELECT * FROM {QUARANTINE}')"
        )
    elif not result.kept:
        print(f"no damaged runs in {store.path}")
    return 1 if result.kept else 0


def quarantine_damaged(
    conn: sqlite3.Connection, statuses: Collection[str], now: str, stale_after_s: float
) -> Quarantined:
    """In the caller's write transaction: move damaged runs rows (and their epochs and steps) to the quarantine
    tables, all columns as text; rows of runs still training stay, since their process still writes to them."""
    columns = _columns(conn, "runs")
    _ensure_table(conn, QUARANTINE, [*columns, "reason", "quarantined"])
    moved, kept, counts = [], [], {"epochs": 0, "steps": 0}
    for row in conn.execute(f"SELECT rowid AS rowid_, {_quoted(columns)} FROM runs").fetchall():
        values = dict(row)
        rowid = values.pop("rowid_")
        fields = decode_run_row(values, statuses)
        if not fields["damaged"]:
            continue
        damage = Damage(fields["id"] or f"(row {rowid}, no id)", fields["damaged"])
        if _still_training(values, stale_after_s):
            kept.append(damage)
            continue
        conn.execute(
            f"INSERT INTO {QUARANTINE} ({_quoted(columns)}, reason, quarantined) SELECT {_quoted(columns)}, "
            "?, ? FROM runs WHERE rowid = ?",
            [damage.problem, now, rowid],
        )
        conn.execute("DELETE FROM runs WHERE rowid = ?", [rowid])
        for table, count in counts.items():
            counts[table] = count + _move_metrics(conn, table, values.get("id"), now)
        moved.append(damage)
    return Quarantined(moved, counts["epochs"], counts["steps"], kept)


def _still_training(values: dict[str, Any], stale_after_s: float) -> bool:
    """A 'running' row whose process is seen alive; one whose pid or heartbeat cannot be read never will be."""
    if values.get("status") != "running":
        return False
    try:
        # No heartbeat reads as an unparsable one: ValueError, the same answer as None's TypeError.
        return process_alive(
            values.get("pid"), values.get("proc_start"), values.get("host"), values.get("updated", ""), stale_after_s
        )
    except (TypeError, ValueError):
        return False


def _move_metrics(conn: sqlite3.Connection, table: str, run_id: Any, now: str) -> int:
    columns = _columns(conn, table)
    _ensure_table(conn, QUARANTINE_OF[table], [*columns, "quarantined"])
    conn.execute(
        f"INSERT INTO {QUARANTINE_OF[table]} ({_quoted(columns)}, quarantined) SELECT {_quoted(columns)}, ? "
        f"FROM {table} WHERE run_id = ?",
        [now, run_id],
    )
    return conn.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id]).rowcount


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _ensure_table(conn: sqlite3.Connection, table: str, columns: list[str]) -> None:
    """`table` with every column in `columns`, as TEXT without constraints, so any damaged value fits."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{_quote(c)} TEXT' for c in columns)})")
    for column in set(columns) - set(_columns(conn, table)):  # the runs table gained columns since
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {_quote(column)} TEXT")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quoted(names: list[str]) -> str:
    return ", ".join(map(_quote, names))
