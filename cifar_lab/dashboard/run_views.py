"""What the Runs page shows of the run store: table rows, config differences, metric curves, safe file paths."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..config import field_names
from ..labels import visible
from ..runs import RunRecord, RunStore, RunStoreError
from .jobs import QueuedRun

MISSING = "—"  # a config field one run has and another has not (written by another version of the lab)


def label(record: RunRecord) -> str:
    """e.g. "fastnet-20250101-120000 (250101-3fa9)": names may repeat, ids do not."""
    return f"{visible(record.name) or '?'} ({record.id})" + (" · damaged" if record.damaged else "")


def status_of(record: RunRecord) -> str:
    """The status the page shows and filters by: "damaged" for a row that could not be read whole."""
    return "damaged" if record.damaged else record.status


def damaged_note(record: RunRecord) -> str:
    """What the page says of a damaged run, with the fix."""
    return (
        f"Run {record.id} is damaged: {record.damaged}. It cannot be compared or resumed; "
        "`python -m cifar_lab runs --check --repair` moves it to a quarantine table (nothing is deleted), "
        "or delete it here."
    )


def store_problem(store: RunStore | None) -> str:
    """Why the run history cannot be read now (not opened, damaged, locked), with the fix; "" when it can."""
    if store is None:
        return (
            "The run history could not be opened (see the warning in the server's log), so runs are not "
            "recorded. Point CIFAR_LAB_RUNS_DB at a file in a writable folder and restart the dashboard."
        )
    try:
        store.list_runs(limit=1)
    except RunStoreError as err:
        return f"The run history cannot be read: {err}"
    return ""


def local_time(iso: str | None) -> str:
    """An ISO 8601 UTC time as this machine's local time, "YYYY-MM-DD HH:MM:SS" (sorts as text)."""
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


UNSCORED = {"queued": "waiting", "running": "training"}  # the test accuracy column of runs that have no score yet


def accuracy_text(record: RunRecord) -> str:
    """The test accuracy cell: " 86.2 %" (padded to one width, so that the text sorts as the numbers would), or in
    words why there is none. A table shows a missing number as "None", which reads as a fault."""
    if record.test_accuracy is not None and not record.damaged:
        return f"{100 * record.test_accuracy:5.1f} %"
    return UNSCORED.get(status_of(record), "not scored")


def run_rows(records: Iterable[RunRecord]) -> list[dict[str, Any]]:
    """One row per run for the table: what and how well first, so that a phone's narrow table shows them; the id
    last. Numbers stay numbers so the columns sort as numbers (the accuracy is padded text, see accuracy_text)."""
    return [
        {
            "name": visible(r.name),
            "status": status_of(r),
            "test accuracy": accuracy_text(r),  # on the whole test set, once completed
            "epochs": r.epochs_done,
            "of": r.config.get("epochs"),  # epochs planned
            "owner": visible(r.owner),
            "arch": str(r.config.get("arch", "?")),
            "started": local_time(r.started),
            "device": r.device,
            "message": r.damaged or r.message,
            "id": r.id,
        }
        for r in records
    ]


def queue_rows(waiting: Iterable[QueuedRun], *, paused: bool = False) -> list[dict[str, Any]]:
    """The queue as the Train and Class pages list it: who, when it should start (first, so that a phone's narrow
    table shows it), and what."""
    return [
        {
            "#": place,
            "owner": visible(q.record.owner),
            "starts": "when the teacher resumes the queue" if paused else starts_text(q.starts_in_s),
            "takes": f"about {q.seconds / 60:,.1f} min" if q.seconds is not None else "not measured yet",
            "preset": q.record.preset,
            "epochs": q.record.config.get("epochs"),
            "name": visible(q.record.name),
        }
        for place, q in enumerate(waiting, 1)
    ]


def starts_text(seconds: float | None) -> str:
    """e.g. "in about 4 min"; "next" within half a minute; "not known yet" without an estimate."""
    if seconds is None:
        return "not known yet"
    if seconds < 30:
        return "next"
    return f"in about {max(1, round(seconds / 60))} min"


def config_diff(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Field -> one value per run (in the order given), for the fields whose values are not all equal.

    Takes raw config dicts, so runs whose config this version cannot rebuild still compare.
    """
    known = field_names()
    extra = sorted({k for c in configs.values() for k in c} - set(known))
    diff = {}
    for name in (*known, *extra):
        values = [c.get(name, MISSING) for c in configs.values()]
        if any(v != values[0] for v in values[1:]):
            diff[name] = values
    return diff


def diff_rows(diff: Mapping[str, Sequence[Any]], labels: Sequence[str]) -> list[dict[str, str]]:
    """The diff as table rows: one per field, one column per run; values as text, since a column mixes types."""
    return [{"field": name, **{lab: str(v) for lab, v in zip(labels, values)}} for name, values in diff.items()]


@dataclass(frozen=True)
class RunCurves:
    """One run's recorded metrics as arrays, ready to plot."""

    label: str
    steps: np.ndarray  # (S,) training step of each recorded loss, 1-based
    loss: np.ndarray  # (S,) training loss of that step's batch
    epochs: np.ndarray  # (E,) 1-based epoch numbers
    train_acc: np.ndarray  # (E,) 0..1
    test_acc: np.ndarray  # (E,) 0..1, on eval_subset test images while training


def curves(store: RunStore, records: Iterable[RunRecord]) -> list[RunCurves]:
    """The step losses and epoch accuracies of each run, in the order given."""
    out = []
    for r in records:
        steps, epochs = store.steps(r.id), store.epochs(r.id)
        out.append(
            RunCurves(
                label(r),
                np.fromiter((s.step for s in steps), dtype=float, count=len(steps)),
                np.fromiter((s.loss for s in steps), dtype=float, count=len(steps)),
                np.fromiter((e.epoch for e in epochs), dtype=float, count=len(epochs)),
                np.fromiter((e.train_acc for e in epochs), dtype=float, count=len(epochs)),
                np.fromiter((e.test_acc for e in epochs), dtype=float, count=len(epochs)),
            )
        )
    return out


def checkpoint_file(record: RunRecord, runs_dir: str | Path) -> Path | None:
    """The run's checkpoint when it is a file inside `runs_dir`: the only files the page offers or deletes.

    A CLI run saved with --out elsewhere keeps its file where it is; the page does not reach outside the folder.
    """
    if not record.checkpoint:
        return None
    path = Path(record.checkpoint).resolve()
    if not path.is_relative_to(Path(runs_dir).resolve()) or not path.is_file():
        return None
    return path


def no_checkpoint_reason(record: RunRecord, runs_dir: str | Path) -> str:
    """Why checkpoint_file() gave None, in words for the page: a run still waiting or training is not missing
    anything."""
    if record.status == "queued":
        return "this run has not started yet; its first checkpoint is saved when its first epoch ends."
    if record.status == "running" and record.epochs_done == 0:
        return "this run is in its first epoch; its first checkpoint is saved when that epoch ends."
    if not record.checkpoint:
        return "none was recorded for this run."
    path = Path(record.checkpoint)
    if not path.resolve().is_relative_to(Path(runs_dir).resolve()):
        return f"{path} is outside the runs folder; copy it from the server's disk."
    if record.epochs_done == 0:
        return f"this run ended ({record.status}) before its first epoch did, so nothing was saved."
    return f"its file, {path.name}, has been deleted from the runs folder."


def export_name(records: Sequence[RunRecord], suffix: str) -> str:
    """A download file name: the run's id for one run, else "runs-<n>"; ids are safe file names."""
    stem = records[0].id if len(records) == 1 else f"runs-{len(records)}"
    return f"cifar_lab-{stem}.{suffix}"
