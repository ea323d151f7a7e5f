"""The class's queue of runs, kept in the run store: fair (round robin between participants), durable across restarts.

A queued run is a runs row with status 'queued' and a position; the scheduler claims the smallest position. A new
run is placed fairly when it joins: after every other participant's run of the same round, so that a participant
allowed three runs does not hold the others back by three.
"""

from __future__ import annotations

import sqlite3

from .config import TrainConfig
from .processes import this_process
from .roles import same_person
from .runs import RESUMABLE, RunRecord, RunStore, RunStoreError, now

ACTIVE = ("queued", "running")


class QueueFull(RunStoreError):
    """The participant already has as many runs queued or running as the class allows."""


def enqueue(
    store: RunStore,
    config: TrainConfig,
    *,
    owner: str,
    name: str = "",
    data_source: str | None = None,
    preset: str = "",
    limit: int | None = 1,
) -> str:
    """Queue a new run for `owner`; QueueFull when they already have `limit` runs queued or running (None: no
    limit). The check and the insert are one transaction, so two presses of Start cannot both pass."""

    def place(conn: sqlite3.Connection) -> float:
        _check_limit(conn, owner, limit)
        return _fair_position(conn, owner)

    return store.create_run(config, name, data_source, owner=owner, preset=preset, place=place)


def requeue(store: RunStore, run_id: str, *, limit: int | None = 1) -> None:
    """A stopped, interrupted or failed run back in the queue, to continue from its last saved epoch."""
    with store.transaction() as conn:
        row = conn.execute("SELECT status, owner, epochs_done FROM runs WHERE id = ?", [run_id]).fetchone()
        if row is None:
            raise RunStoreError(f"no run {run_id!r} in the run store")
        if row["status"] not in RESUMABLE:
            raise RunStoreError(f"run {run_id} is {row['status']}; only stopped, interrupted or failed runs can resume")
        _check_limit(conn, row["owner"], limit)
        conn.execute(
            "UPDATE runs SET status = 'queued', position = ?, message = ?, updated = ? WHERE id = ?",
            [_fair_position(conn, row["owner"]), f"waiting to resume after epoch {row['epochs_done']}", now(), run_id],
        )


def waiting(store: RunStore) -> list[RunRecord]:
    """The queued runs in the order they will start."""
    ids = [r["id"] for r in store.query("SELECT id FROM runs WHERE status = 'queued' ORDER BY position, rowid")]
    return [store.get_run(i) for i in ids]


def claim_next(store: RunStore) -> RunRecord | None:
    """Take the first queued run off the queue for this process to train, or None when the queue is empty. A new
    run becomes 'running' (its file is claimed next, by runner.start_queued); one that resumes becomes 'stopped'
    again, for runner.resume_run to take over."""
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT id, epochs_done FROM runs WHERE status = 'queued' ORDER BY position, rowid LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        stamp = now()
        if row["epochs_done"] > 0:
            conn.execute(
                "UPDATE runs SET status = 'stopped', position = NULL, updated = ? WHERE id = ?", [stamp, row["id"]]
            )
        else:
            conn.execute(
                "UPDATE runs SET status = 'running', position = NULL, started = ?, updated = ?, message = '', "
                "pid = ?, proc_start = ?, host = ? WHERE id = ?",
                [stamp, stamp, *this_process(), row["id"]],
            )
    return store.get_run(row["id"])


def move_up(store: RunStore, run_id: str) -> bool:
    """Swap a queued run with the one before it; False when it is first already."""
    with store.transaction() as conn:
        rows = conn.execute("SELECT id, position FROM runs WHERE status = 'queued' ORDER BY position, rowid").fetchall()
        ids = [r["id"] for r in rows]
        if run_id not in ids:
            raise RunStoreError(f"run {run_id} is not waiting in the queue")
        index = ids.index(run_id)
        if index == 0:
            return False
        before, this = rows[index - 1], rows[index]
        for target, position in ((this["id"], before["position"]), (before["id"], this["position"])):
            conn.execute("UPDATE runs SET position = ? WHERE id = ?", [position, target])
        return True


def cancel(store: RunStore, run_id: str) -> None:
    """Take a run out of the queue: a new one is forgotten, one waiting to resume goes back to 'stopped'."""
    with store.transaction() as conn:
        row = conn.execute("SELECT status, epochs_done FROM runs WHERE id = ?", [run_id]).fetchone()
        if row is None or row["status"] != "queued":
            raise RunStoreError(f"run {run_id} is not waiting in the queue")
        if row["epochs_done"] > 0:
            conn.execute(
                "UPDATE runs SET status = 'stopped', position = NULL, message = 'taken out of the queue', "
                "updated = ? WHERE id = ?",
                [now(), run_id],
            )
        else:
            conn.execute("DELETE FROM runs WHERE id = ?", [run_id])


def active_runs(store: RunStore, owner: str) -> list[str]:
    """Ids of `owner`'s runs that are queued or running."""
    rows = store.query("SELECT id, owner FROM runs WHERE status IN ('queued', 'running')")
    return [r["id"] for r in rows if same_person(r["owner"], owner)]


def _check_limit(conn: sqlite3.Connection, owner: str, limit: int | None) -> None:
    if limit is None:
        return
    rows = conn.execute("SELECT id, owner, status FROM runs WHERE status IN ('queued', 'running')").fetchall()
    mine = [r for r in rows if same_person(r["owner"], owner)]
    if len(mine) >= limit:
        which = ", ".join(f"{r['id']} ({r['status']})" for r in mine)
        runs = "one run" if limit == 1 else f"{limit} runs"
        raise QueueFull(
            f"You already have {runs} waiting or training ({which}); the class allows {runs} at a time. Wait for it "
            "to finish, or stop it on the Runs page, then start again."
        )


def _fair_position(conn: sqlite3.Connection, owner: str) -> float:
    """Round robin: the new run goes before the first queued run of a later round than its own (a participant's
    k-th active run is in round k), else last."""
    running = conn.execute("SELECT owner FROM runs WHERE status = 'running'").fetchall()
    queued = conn.execute(
        "SELECT owner, position FROM runs WHERE status = 'queued' ORDER BY position, rowid"
    ).fetchall()
    seen: dict[str, int] = {}
    for row in running:
        key = _key(row["owner"])
        seen[key] = seen.get(key, 0) + 1
    mine = seen.get(_key(owner), 0) + sum(1 for r in queued if same_person(r["owner"], owner))
    previous: float | None = None
    for row in queued:
        key = _key(row["owner"])
        round_of_row = seen.get(key, 0)
        seen[key] = round_of_row + 1
        position = float(row["position"] if row["position"] is not None else 0.0)
        if round_of_row > mine:
            return position - 1.0 if previous is None else (previous + position) / 2
        previous = position
    return 1.0 if previous is None else previous + 1.0


def _key(owner: str) -> str:
    return owner.strip().casefold()
