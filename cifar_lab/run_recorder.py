"""The listener that writes one training run's events into the run store as they happen."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from .events import EpochEnd, Event, Failed, Finished, Planned, Step, Stopped
from .oom import oom_kills, peak_rss
from .runs import RunStore, RunStoreError, now

log = logging.getLogger(__name__)


class RunRecorder:
    """A training listener writing one run's events. A database error is logged once and kept in `error`, never
    raised into the loop: a lost metric row must not end a training run."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.error: Exception | None = None

    def __call__(self, event: Event) -> None:
        try:
            self._record(event)
        except (sqlite3.Error, RunStoreError) as err:
            self._failed(err)

    def note_start(self) -> None:
        """The cgroup's OOM-kill count as the run (re)starts; mark_interrupted compares it with the count then."""
        try:
            self._update("oom_kills = ?", [oom_kills()])
        except (sqlite3.Error, RunStoreError) as err:
            self._failed(err)

    def _failed(self, err: Exception) -> None:
        if self.error is None:
            log.warning("run %s: metrics not recorded: %s", self.run_id, err)
        self.error = err

    def _record(self, event: Event) -> None:
        if isinstance(event, Planned):  # the run is what the budget chose: a resume trains on with it
            self._update("config = ?", [json.dumps(event.config.to_dict())])
        elif isinstance(event, Finished):
            metrics = {
                "test_accuracy": event.test_accuracy,
                "train_seconds": event.train_seconds,
                "images_per_s": event.images_per_s,
            }
            if event.validation_accuracy is not None:  # the leaderboard ranks by it from this moment
                metrics["validation_accuracy"] = event.validation_accuracy
            self._update(
                "status = 'completed', message = '', ended = ?, epochs_done = ?, test_accuracy = ?, metrics = ?",
                [now(), event.epochs, event.test_accuracy, json.dumps(metrics)],
            )
        elif isinstance(event, Stopped):
            self._update(
                "status = 'stopped', message = ?, ended = ?, epochs_done = ?",
                [f"stopped by request after {event.epochs_done} epoch(s)", now(), event.epochs_done],
            )
        elif isinstance(event, Failed):
            self._update("status = 'failed', message = ?, ended = ?", [event.message, now()])
        elif isinstance(event, EpochEnd):
            self._update(
                "epochs_done = ?, peak_rss = ?",
                [event.epoch, peak_rss()],
                "INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    self.run_id,
                    event.epoch,
                    event.train_loss,
                    event.train_acc,
                    event.test_loss,
                    event.test_acc,
                    event.seconds,
                ],
            )
        elif isinstance(event, Step):  # the memory high-water mark with each heartbeat: the last one before an OOM kill
            self._update(
                "peak_rss = ?",
                [peak_rss()],
                "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?)",
                [self.run_id, event.step, event.epoch, event.loss, event.lr, event.images_per_s],
            )

    def _update(self, assignments: str, params: list[Any], insert: str = "", row: Sequence[Any] = ()) -> None:
        """Set `assignments` on the run (and `updated`, the heartbeat) and insert `row`, in one transaction."""
        with self.store.transaction() as conn:
            if insert:
                conn.execute(insert, row)
            sets = f"{assignments}, updated = ?" if assignments else "updated = ?"
            conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*params, now(), self.run_id])
