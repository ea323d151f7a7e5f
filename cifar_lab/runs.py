"""The run history: every run's config, status, per-epoch and per-step metrics and outcome, in one SQLite file."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import paths
from .config import TrainConfig
from .labels import clean_label
from .oom import out_of_memory_message
from .processes import process_alive, this_process
from .run_check import Quarantined, decode_run_row, decode_text, quarantine_damaged

if TYPE_CHECKING:
    from .run_recorder import RunRecorder

ENV_DB = "CIFAR_LAB_RUNS_DB"
DB_NAME = "cifar_lab.db"
STATUSES = ("queued", "running", "completed", "stopped", "failed", "interrupted")
RESUMABLE = frozenset({"stopped", "interrupted", "failed"})
BUSY_TIMEOUT_S = 30.0  # a writer waits this long for another's lock; each transaction holds it for milliseconds
STALE_AFTER_S = 900.0  # a run of another host (pid unverifiable) silent this long is taken as interrupted
MAX_NAME = 100  # characters of a run's display name (and at most labels.MAX_BYTES bytes)
MAX_OWNER = 40  # characters of a participant's name

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL, status TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '', checkpoint TEXT, data_source TEXT, device TEXT NOT NULL DEFAULT '',
        started TEXT NOT NULL, ended TEXT, updated TEXT NOT NULL, epochs_done INTEGER NOT NULL DEFAULT 0,
        test_accuracy REAL, metrics TEXT NOT NULL DEFAULT '{}', pid INTEGER, proc_start INTEGER, host TEXT)""",
    """CREATE TABLE IF NOT EXISTS epochs (
        run_id TEXT NOT NULL, epoch INTEGER NOT NULL, train_loss REAL, train_acc REAL, test_loss REAL,
        test_acc REAL, seconds REAL, PRIMARY KEY (run_id, epoch))""",
    """CREATE TABLE IF NOT EXISTS steps (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER, loss REAL, lr REAL, images_per_s REAL,
        PRIMARY KEY (run_id, step))""",
    "CREATE TABLE IF NOT EXISTS class_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",  # class_settings.py
    # sweep_record.py: what each sweep varied, as typed after --param (a JSON list), so a later page shows it
    "CREATE TABLE IF NOT EXISTS sweeps (id TEXT PRIMARY KEY, preset TEXT NOT NULL, params TEXT NOT NULL, "
    "scheduler TEXT NOT NULL, started TEXT NOT NULL)",
)
ADDED_COLUMNS = {  # columns newer than the first stores: added to an existing file when it is opened
    "oom_kills": "INTEGER",  # the cgroup's OOM-kill count when the run (re)started; NULL where not shown
    "peak_rss": "INTEGER",  # bytes: the training process's memory high-water mark at its last report
    "out_of_memory": "INTEGER NOT NULL DEFAULT 0",  # 1: the kernel's OOM killer ended it (see oom.py)
    "owner": "TEXT NOT NULL DEFAULT ''",  # who started it: a participant's name, or the user who ran the CLI
    "preset": "TEXT NOT NULL DEFAULT ''",  # the preset its settings started from; '' when none was named
    "position": "REAL",  # its place in the queue while queued (smallest first); see run_queue.py
    "hidden": "INTEGER NOT NULL DEFAULT 0",  # 1: the teacher took it off the leaderboard
    "node": "TEXT NOT NULL DEFAULT ''",  # where it trained: this host, or a Ray node (executors.py)
    "sweep": "TEXT NOT NULL DEFAULT ''",  # the id of the sweep it is a trial of; '' when none (sweep.py)
}


class RunStoreError(ValueError):
    """The run store cannot do what was asked; the message says why and what to do."""


class RunIdTaken(RunStoreError):
    """A run id chosen by the caller is already recorded; draw another."""


def new_run_id() -> str:
    """e.g. "250612-3fa9": the day, then 16 random bits (unique within a store, checked on insert)."""
    return f"{time.strftime('%y%m%d')}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class RunRecord:
    id: str
    name: str
    config: dict[str, Any]  # TrainConfig.to_dict()
    status: str  # one of STATUSES
    message: str  # why it failed, stopped or was interrupted
    checkpoint: str | None  # last epoch checkpoint while training; the final model once completed
    data_source: str | None  # what load_data() was given, so a resume loads the same data
    device: str  # e.g. "cpu (bf16)"; empty until the run ends
    started: str  # ISO 8601, UTC
    ended: str | None
    updated: str  # time of the last recorded event
    epochs_done: int
    test_accuracy: float | None  # 0..1 on the whole test set, when completed
    metrics: dict[str, Any]  # final metrics (evaluation summary, throughput)
    pid: int | None
    host: str | None
    out_of_memory: bool = False  # the kernel's OOM killer ended it: resuming it as is would end the same way
    owner: str = ""  # who started it: a participant's name, the CLI user's login; "" in stores older than owners
    preset: str = ""  # the preset its settings started from; "" when none was named
    position: float | None = None  # its place in the queue while queued, smallest first
    hidden: bool = False  # the teacher took it off the leaderboard
    node: str = ""  # where it trained: this host's name, or a Ray node's "host/node id"; "" before it starts
    sweep: str = ""  # the sweep it is a trial of, "" when none
    damaged: str = ""  # what is wrong with the row as stored, e.g. "config is not valid JSON: ..."; "" when sound
    unreadable: frozenset[str] = frozenset()  # fields of a damaged row holding a stand-in, not the stored value

    @property
    def train_config(self) -> TrainConfig:
        if "config" in self.unreadable:  # never a default config in place of the lost one
            raise RunStoreError(f"run {self.id} is damaged: {self.damaged}")
        return TrainConfig.from_dict(self.config)

    def to_dict(self) -> dict[str, Any]:
        """All fields; a damaged row's have its id, `damaged` and the fields that could be read."""
        values = asdict(self)
        unreadable, damaged = values.pop("unreadable"), values.pop("damaged")
        if not damaged:
            return values
        return {"id": self.id, "damaged": damaged, **{k: v for k, v in values.items() if k not in unreadable}}


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float


@dataclass(frozen=True)
class StepRecord:
    step: int
    epoch: int
    loss: float
    lr: float
    images_per_s: float


_RUN_COLUMNS = ", ".join(f for f in RunRecord.__dataclass_fields__ if f not in ("damaged", "unreadable"))


def default_db_path(runs_dir: str | os.PathLike | None = None) -> Path:
    """Env CIFAR_LAB_RUNS_DB, else <runs_dir>/cifar_lab.db (runs_dir defaults to paths.runs_dir())."""
    return Path(os.environ.get(ENV_DB) or Path(runs_dir or paths.runs_dir()) / DB_NAME)


def safe_child(runs_dir: str | os.PathLike, name: str) -> Path:
    """runs_dir / name for a plain file name (from a form or URL); anything that could lead elsewhere raises."""
    text = str(name)
    if (
        not text
        or text.startswith(".")
        or len(text) > 200
        or any(c in text for c in "/\\:")
        or any(ord(c) < 32 for c in text)
        or Path(text).is_absolute()
    ):
        raise ValueError(
            f"{name!r} is not a valid file name: use letters, digits, '-', '_' and '.', not starting "
            "with '.', without '/', '\\' or ':', at most 200 characters"
        )
    base = Path(runs_dir).resolve()
    if (base / text).resolve().parent != base:  # e.g. a symbolic link pointing out of the folder
        raise ValueError(f"{name!r} leads outside the runs folder {base}; pick another name")
    return Path(runs_dir) / text


class RunStore:
    """The run history in SQLite (WAL): one short connection per call, so any thread or process may use it."""

    def __init__(self, path: str | os.PathLike | None = None, *, runs_dir: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.runs_dir = Path(runs_dir) if runs_dir is not None else self.path.parent  # files delete() may remove
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _wrapped(self.path), closing(self._connect()) as conn:
                _enable_wal(conn)
            with self.transaction() as conn:
                for statement in SCHEMA:
                    conn.execute(statement)
                _add_missing_columns(conn)
        except OSError as err:
            raise RunStoreError(
                f"cannot open the run store at {self.path}: {err}. Point ${ENV_DB} (or "
                "--runs-db) at a file in a writable folder"
            ) from err

    # --- writing ---
    def create_run(
        self,
        config: TrainConfig,
        name: str = "",
        data_source: str | None = None,
        checkpoint_path: str | os.PathLike | None = None,
        *,
        run_id: str | None = None,
        owner: str = "",
        preset: str = "",
        place: Callable[[sqlite3.Connection], float] | None = None,
    ) -> str:
        """Record a new run as 'running' by this process; returns its id, e.g. "250612-3fa9". A given `run_id`
        that is taken raises RunIdTaken; without one, ids are drawn until a free one is found. With `place` the run
        is queued instead: called inside the insert's transaction, it returns the run's queue position or raises."""
        started = now()
        values: dict[str, Any] = {
            "name": clean_name(name or f"{config.arch}-{time.strftime('%Y%m%d-%H%M%S')}"),
            "config": json.dumps(config.to_dict()),
            "status": "running" if place is None else "queued",
            "checkpoint": str(checkpoint_path) if checkpoint_path else None,
            "data_source": data_source,
            "started": started,
            "updated": started,
            "owner": clean_owner(owner) if owner else "",
            "preset": preset,
        }
        if place is None:
            values.update(zip(("pid", "proc_start", "host"), this_process()))
        for _ in range(1 if run_id else 20):
            candidate = run_id or new_run_id()
            try:
                with self.transaction() as conn:
                    row = {"id": candidate, **values}
                    if place is not None:
                        row["position"] = place(conn)
                    conn.execute(
                        f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
                    )
                return candidate
            except sqlite3.IntegrityError:
                continue  # the id is taken; draw another
        if run_id:
            raise RunIdTaken(f"run id {run_id} is taken")
        raise RunStoreError("no free run id after 20 tries; is the run store shared by far too many runs?")

    def listener(self, run_id: str) -> RunRecorder:
        """The training listener that records `run_id`'s steps, epochs and outcome. Made as the run (re)starts, it
        notes the cgroup's OOM-kill count, so that a kill for memory is told apart at the next start."""
        from .run_recorder import RunRecorder  # it writes through this store: imported here, not at the top

        recorder = RunRecorder(self, run_id)
        recorder.note_start()
        return recorder

    def finish(
        self,
        run_id: str,
        status: str | None = None,
        *,
        message: str | None = None,
        metrics: dict[str, Any] | None = None,
        device: str | None = None,
        only_if_running: bool = False,
        out_of_memory: bool = False,
        checkpoint: str | os.PathLike | None = None,
    ) -> bool:
        """Set the outcome fields given (None leaves one as is); True when the run was updated. `out_of_memory`
        marks a run that resuming as it is would end the same way; `checkpoint` is the file a queued run claimed."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status={status!r} is not valid; choose one of: {', '.join(STATUSES)}")
        changes: dict[str, Any] = {"updated": now()}
        if status is not None:
            changes.update(status=status, ended=None if status == "running" else changes["updated"])
        if message is not None:
            changes["message"] = message
        if device is not None:
            changes["device"] = device
        if metrics is not None:
            changes.update(metrics=json.dumps(metrics), test_accuracy=metrics.get("test_accuracy"))
        if out_of_memory:
            changes["out_of_memory"] = 1
        if checkpoint is not None:
            changes["checkpoint"] = str(checkpoint)
        sql = f"UPDATE runs SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?"
        sql += " AND status = 'running'" if only_if_running else ""
        with self.transaction() as conn:
            return conn.execute(sql, [*changes.values(), run_id]).rowcount == 1

    def annotate(self, run_id: str, *, node: str | None = None, sweep: str | None = None) -> None:
        """Record where a run trains, or the sweep it belongs to."""
        changes = {k: v for k, v in (("node", node), ("sweep", sweep)) if v is not None}
        with self.transaction() as conn:
            sql = f"UPDATE runs SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?"
            if conn.execute(sql, [*changes.values(), run_id]).rowcount != 1:
                raise _unknown(run_id)

    def begin_resume(self, run_id: str, *, epoch: int, step: int) -> None:
        """Claim a stopped/interrupted/failed run for this process, dropping metrics recorded after `step`."""
        self.mark_interrupted()
        with self.transaction() as conn:
            row = conn.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchone()
            if row is None:
                raise _unknown(run_id)
            if row["status"] not in RESUMABLE:
                raise RunStoreError(
                    f"run {run_id} is {row['status']}; only stopped, interrupted or failed runs can be resumed"
                )
            conn.execute(
                "UPDATE runs SET status = 'running', message = ?, ended = NULL, updated = ?, "
                "epochs_done = ?, pid = ?, proc_start = ?, host = ? WHERE id = ?",
                [f"resumed after epoch {epoch}", now(), epoch, *this_process(), run_id],
            )
            conn.execute("DELETE FROM epochs WHERE run_id = ? AND epoch > ?", [run_id, epoch])
            conn.execute("DELETE FROM steps WHERE run_id = ? AND step > ?", [run_id, step])

    def mark_interrupted(self, *, stale_after_s: float = STALE_AFTER_S) -> list[str]:
        """Mark 'running' runs whose process is gone as 'interrupted'; returns their ids. Call at start-up."""
        rows = self.query(
            "SELECT id, pid, proc_start, host, updated, oom_kills, peak_rss FROM runs WHERE status = 'running'"
        )
        gone = [r for r in rows if _process_gone(r, stale_after_s)]
        for r in gone:
            oom = out_of_memory_message(r["oom_kills"], r["peak_rss"]) if r["host"] == socket.gethostname() else ""
            message = oom or (
                f"the process training it (pid {r['pid']} on {r['host']}) ended without finishing; "
                f"resume it with `python -m cifar_lab train --resume {r['id']}`"
            )
            with self.transaction() as conn:  # `updated` unchanged: the run has not reported since we looked
                conn.execute(
                    "UPDATE runs SET status = ?, message = ?, ended = ?, out_of_memory = ? WHERE id = ? "
                    "AND status = 'running' AND updated = ?",
                    ["failed" if oom else "interrupted", message, now(), int(bool(oom)), r["id"], r["updated"]],
                )
        return [r["id"] for r in gone]

    def quarantine_damaged(self) -> Quarantined:
        """Move damaged rows out of `runs` (with their epochs and steps) into the quarantine tables; see run_check."""
        with self.transaction() as conn:
            return quarantine_damaged(conn, STATUSES, now(), STALE_AFTER_S)

    def rename(self, run_id: str, name: str) -> None:
        with self.transaction() as conn:
            if conn.execute("UPDATE runs SET name = ? WHERE id = ?", [clean_name(name), run_id]).rowcount == 0:
                raise _unknown(run_id)

    def set_hidden(self, run_ids: Iterable[str], hidden: bool = True) -> int:
        """Take runs off the leaderboard (or put them back); their records stay. Returns how many changed."""
        ids = list(run_ids)
        with self.transaction() as conn:
            sql = f"UPDATE runs SET hidden = ? WHERE id IN ({', '.join('?' * len(ids))})"
            return conn.execute(sql, [int(hidden), *ids]).rowcount if ids else 0

    def delete(self, run_id: str, *, delete_checkpoint: bool = False) -> bool:
        """Remove the run's rows; with delete_checkpoint also its file, only if inside the runs folder and no
        other run points at it. Returns True when a file was removed."""
        self.mark_interrupted()
        with self.transaction() as conn:
            row = conn.execute("SELECT status, checkpoint FROM runs WHERE id = ?", [run_id]).fetchone()
            if row is None:
                raise _unknown(run_id)
            if row["status"] == "running":
                raise RunStoreError(f"run {run_id} is still training; stop it first, then delete it")
            for table, key in (("steps", "run_id"), ("epochs", "run_id"), ("runs", "id")):
                conn.execute(f"DELETE FROM {table} WHERE {key} = ?", [run_id])
            checkpoint = row["checkpoint"]
            shared = checkpoint and conn.execute("SELECT 1 FROM runs WHERE checkpoint = ?", [checkpoint]).fetchone()
        if not (delete_checkpoint and checkpoint) or shared:
            return False
        path = Path(checkpoint).resolve()
        if not path.is_relative_to(self.runs_dir.resolve()) or not path.is_file():
            return False
        path.unlink()
        return True

    # --- reading ---
    def get_run(self, run_id: str) -> RunRecord:
        rows = self.query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", [run_id])
        if not rows:
            raise _unknown(run_id)
        return _record(rows[0])

    def version(self) -> str:
        """Changes whenever a run or the class's settings change: a key for views shared by every session."""
        runs = self.query(
            "SELECT group_concat(id || name || status || updated || hidden || ifnull(position, ''), ',') FROM runs"
        )
        settings = self.query("SELECT group_concat(key || '=' || value, ';') FROM class_settings")
        return hashlib.sha1(f"{runs[0][0]}|{settings[0][0]}".encode()).hexdigest()

    def run_of_checkpoint(self, path: str | os.PathLike) -> RunRecord | None:
        """The newest run whose checkpoint is `path`, if any."""
        rows = self.query(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE checkpoint = ? ORDER BY started DESC LIMIT 1", [str(path)]
        )
        return _record(rows[0]) if rows else None

    def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        search: str = "",
        arch: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Newest first; `search` matches part of the name or id, case-insensitively."""
        where, params = [], []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params += statuses
        if search:
            where.append("(name LIKE ? ESCAPE '!' OR id LIKE ? ESCAPE '!')")
            pattern = "%" + search.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
            params += [pattern, pattern]
        if arch is not None:
            where.append("CASE WHEN json_valid(config) THEN json_extract(config, '$.arch') END = ?")
            params.append(arch)
        sql = (
            f"SELECT {_RUN_COLUMNS} FROM runs{' WHERE ' + ' AND '.join(where) if where else ''} "
            f"ORDER BY started DESC, rowid DESC{' LIMIT ?' if limit is not None else ''}"
        )
        return [_record(r) for r in self.query(sql, params + ([limit] if limit is not None else []))]

    def epochs(self, run_id: str) -> list[EpochRecord]:
        rows = self.query(
            "SELECT epoch, train_loss, train_acc, test_loss, test_acc, seconds FROM epochs "
            "WHERE run_id = ? ORDER BY epoch",
            [run_id],
        )
        return [EpochRecord(*r) for r in rows if _all_numbers(r)]  # a damaged metric row is left off the curves

    def steps(self, run_id: str) -> list[StepRecord]:
        rows = self.query(
            "SELECT step, epoch, loss, lr, images_per_s FROM steps WHERE run_id = ? ORDER BY step", [run_id]
        )
        return [StepRecord(*r) for r in rows if _all_numbers(r)]

    def export_csv(self, run_ids: Iterable[str]) -> str:
        """Per-epoch metrics of the runs, one row per (run, epoch), with a header."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["run_id", "name", *EpochRecord.__dataclass_fields__])
        for run_id in run_ids:
            name = self.get_run(run_id).name
            writer.writerows([run_id, name, *asdict(e).values()] for e in self.epochs(run_id))
        return out.getvalue()

    def export_json(self, run_ids: Iterable[str]) -> str:
        """Each run's record, epochs and steps as one JSON list."""
        return json.dumps(
            [
                {
                    "run": self.get_run(i).to_dict(),
                    "epochs": [asdict(e) for e in self.epochs(i)],
                    "steps": [asdict(s) for s in self.steps(i)],
                }
                for i in run_ids
            ],
            indent=1,
        )

    # --- connections ---
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.text_factory = decode_text  # one badly encoded value marks its row damaged instead of failing the query
        conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: safe against app crashes, no fsync per commit
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction that takes the write lock at once, so concurrent writers queue instead of failing."""
        with _wrapped(self.path), closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with _wrapped(self.path), closing(self._connect()) as conn:
            return conn.execute(sql, list(params)).fetchall()


def clean_owner(name: str) -> str:
    """A participant's name as runs record it: visible text of 1 to MAX_OWNER characters."""
    return clean_label(name, "name", max_chars=MAX_OWNER)


def clean_name(name: str) -> str:
    """A display name: visible text of 1 to MAX_NAME characters (see labels.clean_label)."""
    return clean_label(name, "run name", max_chars=MAX_NAME)


def now() -> str:
    """The time as the store writes it: ISO 8601, UTC, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _unknown(run_id: str) -> RunStoreError:
    return RunStoreError(f"no run {run_id!r} in the run store; list runs with `python -m cifar_lab runs`")


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """ADDED_COLUMNS a store made by an older version lacks; inside the write lock, so two openers add each once."""
    have = {row["name"] for row in conn.execute("PRAGMA table_info(runs)")}
    for column, declaration in ADDED_COLUMNS.items():
        if column not in have:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {declaration}")


def _process_gone(row: sqlite3.Row, stale_after_s: float) -> bool:
    try:
        return not process_alive(row["pid"], row["proc_start"], row["host"], row["updated"], stale_after_s)
    except (TypeError, ValueError):  # a damaged row (see run_check): left as it is for `runs --check`
        return False


def _all_numbers(row: sqlite3.Row) -> bool:
    return all(isinstance(v, (int, float)) for v in row)


def _enable_wal(conn: sqlite3.Connection) -> None:
    """WAL, so readers never block the writer (kept in the file). Two processes opening a new file at once can
    collide here, and SQLite reports that as "locked" at once instead of waiting, so wait here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def _wrapped(path: Path) -> Iterator[None]:
    """sqlite3's errors as RunStoreError with the database named; id collisions pass through for a retry."""
    try:
        yield
    except sqlite3.IntegrityError:
        raise
    except sqlite3.Error as err:
        raise RunStoreError(f"run store {path}: {err}. {_fix(path, err)}") from err


def _fix(path: Path, err: sqlite3.Error) -> str:
    """What to do about a database error, by its kind."""
    text = str(err).lower()
    if "locked" in text or "busy" in text:
        return (
            f"Another process has held it for over {BUSY_TIMEOUT_S:.0f} s: try again in a moment, or end the "
            "process that holds it"
        )
    if "not a database" in text or "malformed" in text:
        return (
            f"The file is damaged: move it away and a new, empty history is made at the next start (keep it to "
            f"recover runs with `sqlite3 {path.name} .recover`), or point ${ENV_DB} at another file"
        )
    if any(word in text for word in ("readonly", "unable to open", "disk i/o", "full", "permission")):
        return (
            f"Check that {path.parent} is writable and its disk has free space, or point ${ENV_DB} at a file "
            "in a writable folder"
        )
    return f"If the file is damaged, move it away and a new one is made; point ${ENV_DB} elsewhere to keep it"


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(**decode_run_row(dict(row), STATUSES))
