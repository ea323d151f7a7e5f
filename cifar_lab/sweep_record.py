"""A sweep's trials as the run store keeps them: what the CLI's --json reports and the Sweep page shows, for a sweep
running now or one finished long ago (by the CLI too, when it shares the runs folder). No Ray here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .runs import RunRecord, RunStore, now
from .sweep_space import parse_param

LAST_EPOCH = "last_epoch"  # the metrics of a trial that did not complete: its last epoch's scores (sweep.py)


@dataclass(frozen=True)
class Trial:
    """One trial as a sweep reports it (the `--json` contract's `trials` items)."""

    run_id: str
    params: dict[str, Any]  # the swept settings' values
    config: dict[str, Any]  # the whole config it trained, for "use this config"
    status: str
    val_accuracy: float | None  # on the whole hold-out when completed, else on its last epoch's share of it
    test_accuracy: float | None  # likewise, on the test set: reported, never compared
    epochs: int
    node: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def trial_of(record: RunRecord, params: dict[str, Any], last: tuple[float | None, float | None] | None) -> Trial:
    """`last`: (validation, test) accuracy of its last epoch, for a trial that did not complete; else what its
    record kept of them."""
    if record.status == "completed":
        val, test = record.metrics.get("validation_accuracy"), record.test_accuracy
    else:
        kept = record.metrics.get(LAST_EPOCH) or {}
        val, test = last or (kept.get("validation_accuracy"), kept.get("test_accuracy"))
    return Trial(record.id, params, record.config, record.status, val, test, record.epochs_done, record.node)


def best_of(trials: list[Trial]) -> Trial | None:
    """The highest validation accuracy, completed trials first (a trial ended early saw fewer epochs)."""
    scored = [t for t in trials if t.val_accuracy is not None]
    return max(scored, key=lambda t: (t.status == "completed", t.val_accuracy), default=None)


def sweep_ids(store: RunStore) -> list[str]:
    """Every sweep the store has trials of, newest first."""
    rows = store.query(
        "SELECT sweep, max(started) AS last FROM runs WHERE sweep != '' GROUP BY sweep ORDER BY last DESC"
    )
    return [r["sweep"] for r in rows]


def record_sweep(store: RunStore, sweep_id: str, *, preset: str, params: list[str], scheduler: str) -> None:
    """Keep what a sweep varies (each --param as typed), before its first trial starts."""
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO sweeps (id, preset, params, scheduler, started) VALUES (?, ?, ?, ?, ?)",
            [sweep_id, preset, json.dumps(params), scheduler, now()],
        )


def swept_settings(store: RunStore, sweep_id: str) -> list[str]:
    """The settings a sweep varied, in the order given; [] when the store does not say."""
    rows = store.query("SELECT params FROM sweeps WHERE id = ?", [sweep_id])
    if not rows:
        return []
    try:
        return [parse_param(text).name for text in json.loads(rows[0]["params"])]
    except (ValueError, TypeError):  # a damaged row: the page shows the trials without the chart's settings
        return []


def stored_trials(store: RunStore, sweep_id: str) -> list[Trial]:
    """A sweep's trials in the order they started, with the values of the settings it varied."""
    ids = [r["id"] for r in store.query("SELECT id FROM runs WHERE sweep = ? ORDER BY started, rowid", [sweep_id])]
    names = swept_settings(store, sweep_id)
    records = [store.get_run(i) for i in ids]
    return [trial_of(r, {k: r.config.get(k) for k in names}, None) for r in records]
