"""Background training: a job owns its worker thread and events; readers take immutable snapshots."""
from __future__ import annotations

import dataclasses
import re
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import TrainConfig
from ..data import CifarData, load_data, resolve_source
from ..events import EpochEnd, Event, Failed, Finished, Step, Stopped
from .job_view import DONE, JobSnapshot, LossSeries
from ..resume import load_resume, resume_problem
from ..runs import RESUMABLE, RunRecord, RunStore, RunStoreError, default_db_path, safe_child
from ..session import TrainSession, write_failure_message
from ..train import TrainResult

LoadFn = Callable[[str | None], CifarData]


@dataclass(frozen=True)
class JobPlan:
    """What a job trains and where it records it."""

    config: TrainConfig
    name: str
    checkpoint: Path  # rewritten after every finished epoch, and with the final model
    source: str | None = None  # what load_data takes: recorded so that a resume reloads the same data
    resume_run: str | None = None  # a stopped/interrupted/failed run to continue from its last epoch


class TrainingJob:
    """One training run on a worker thread; the worker never touches the UI, it only records events."""

    def __init__(self, plan: JobPlan, *, data: CifarData | None = None, store: RunStore | None = None,
                 load_fn: LoadFn = load_data) -> None:
        self.plan, self.config, self.name = plan, plan.config, plan.name
        self.checkpoint_path = plan.checkpoint
        self._data, self._store, self._load_fn = data, store, load_fn
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"train-{plan.name}", daemon=True)
        self._status, self._message, self._run_id = "queued", "waiting to start", plan.resume_run
        self._losses = LossSeries()
        self._epochs: list[EpochEnd] = []
        self._last_step: Step | None = None
        self._final: Finished | Stopped | Failed | None = None
        self._saved: Path | None = None
        self._started_at, self._finished_at = time.time(), None
        self.result: TrainResult | None = None

    # --- control, from any thread ---
    def start(self) -> "TrainingJob":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the loop to stop; it checks before every step, so it ends within one step."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True when it has ended."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def status(self) -> str:
        """queued, running, then one of DONE: completed, stopped or failed."""
        with self._lock:
            return self._status

    @property
    def done(self) -> bool:
        return self.status in DONE

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            source = self._data.source if self._data is not None else (self.plan.source or "default")
            return JobSnapshot(self.name, self._status, self.config, source, self._losses.snapshot(),
                               tuple(self._epochs), self._last_step, self._final, self._message, self._saved,
                               self._started_at, self._finished_at, self._run_id)

    # --- the worker ---
    def _run(self) -> None:
        training = False
        try:
            self._set(status="running", message="loading data")
            if self._data is None:
                data = self._load_fn(self.plan.source)
                with self._lock:
                    self._data = data
            resume = self._open_record()
            self._set(message="training")
            session = TrainSession(self.config, self._data, self.checkpoint_path, store=self._store,
                                   run_id=self._run_id)
            training = True  # the run is this job's now; the loop reads no files, so an OSError is a failed save
            self.result = session.run(stop=self._stop, on_event=self._record, resume=resume)
            if self.result.status == "completed":
                self._mark_saved()
            self._set(status=self.result.status, message=self.result.message or self.result.status)
        except Exception as err:  # the worker must always end in a final status the page can show
            if training and isinstance(err, OSError):
                self._fail_on_write(err)
            else:
                self._set(status="failed", message=str(err) if isinstance(err, ValueError) else
                          f"{type(err).__name__}: {err}")
        finally:
            with self._lock:
                self._finished_at = time.time()
                if self._status not in DONE:
                    self._status = "failed"

    def _open_record(self) -> dict | None:
        """Create this run in the store (so the page can show its id at once), or load the state to resume."""
        if self._store is None:
            return None
        if self.plan.resume_run is not None:
            return load_resume(self._store.get_run(self.plan.resume_run))
        source = resolve_source(self.plan.source) if self.plan.source else None
        run_id = self._store.create_run(self.config, self.name, source, self.checkpoint_path)
        with self._lock:
            self._run_id = run_id
        return None

    def _record(self, event: Event) -> None:
        """The train loop's listener: keeps a compact copy of each event (an epoch's weights stay in its file)."""
        if isinstance(event, EpochEnd):
            self._mark_saved()  # the session's own listener has just written this epoch's checkpoint
            event = dataclasses.replace(event, state_dict={}, resume_state={})
        with self._lock:
            if isinstance(event, Step):
                per_epoch = event.total_steps / self.config.epochs
                self._losses.add(event.step, event.step / per_epoch, event.loss)
                self._last_step = event
            elif isinstance(event, EpochEnd):
                self._epochs.append(event)
            else:
                self._final = event

    def _fail_on_write(self, err: OSError) -> None:
        """A full disk or a read-only folder: fail with the fix, in the job and in the run store (whose row the
        session marked failed with the bare exception). The atomic save left the last checkpoint as it was."""
        message = write_failure_message(err, self.checkpoint_path, int(self.checkpoint_path.is_file()))
        self._set(status="failed", message=message)
        if self._store is not None and self._run_id is not None:
            try:
                self._store.finish(self._run_id, "failed", message=message)
            except RunStoreError:
                pass  # the database may sit on the same full disk; the page still shows the message

    def _mark_saved(self) -> None:
        with self._lock:
            self._saved = self.checkpoint_path if self.checkpoint_path.is_file() else None

    def _set(self, *, status: str | None = None, message: str | None = None) -> None:
        with self._lock:
            if status is not None:
                self._status = status
            if message is not None:
                self._message = message


class JobBusyError(RuntimeError):
    """A second job was asked for while one is running."""

    def __init__(self, job: TrainingJob) -> None:
        super().__init__(f"training job {job.name!r} is already running (one job per server); "
                         "wait for it to finish or stop it, then start again")
        self.job = job


class JobManager:
    """The process-wide owner of the training job: at most one runs at a time; every run goes to the store."""

    def __init__(self, runs_dir: Path | str, store: RunStore | None = None) -> None:
        self.runs_dir = Path(runs_dir)
        self.store = store if store is not None else open_store(self.runs_dir)
        self._lock = threading.Lock()
        self._job: TrainingJob | None = None

    @property
    def current(self) -> TrainingJob | None:
        """The latest job, running or finished; None before the first."""
        with self._lock:
            return self._job

    @property
    def running(self) -> TrainingJob | None:
        job = self.current
        return job if job is not None and not job.done else None

    def start(self, config: TrainConfig, *, data: CifarData | None = None, source: str | None = None,
              name: str | None = None) -> TrainingJob:
        """Start a job on its own thread; raises JobBusyError (holding the running job) if one is running."""
        with self._lock:
            self._check_idle()
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            unique = self._unique_name(name or default_name(config))
            plan = JobPlan(config, unique, self.runs_dir / f"{unique}.pth", source)
            self._job = TrainingJob(plan, data=data, store=self.store)
            return self._job.start()

    def resumable(self, limit: int = 20) -> list[RunRecord]:
        """Stopped, interrupted or failed runs, newest first (none without a store)."""
        return self.store.list_runs(status=RESUMABLE, limit=limit) if self.store is not None else []

    def resume(self, run_id: str) -> TrainingJob:
        """Continue a run from its last finished epoch, with its own config and data (loaded by the job)."""
        if self.store is None:
            raise RunStoreError("no run store is open, so there is nothing to resume; see the warning at start-up")
        with self._lock:
            self._check_idle()
            record = self.store.get_run(run_id)
            problem = resume_problem(record)  # said at once, rather than by a job that fails a moment later
            if problem:
                raise RunStoreError(problem)
            try:
                config = record.train_config
            except ValueError as err:  # e.g. recorded by a newer version of the lab, with an architecture unknown here
                raise RunStoreError(f"run {run_id} cannot be resumed by this version of the lab: {err}") from err
            plan = JobPlan(config, record.name, Path(record.checkpoint), record.data_source, run_id)
            self._job = TrainingJob(plan, store=self.store)
            return self._job.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the running job, if any, and wait for it; True when nothing is running afterwards."""
        job = self.running
        if job is None:
            return True
        job.stop()
        return job.join(timeout)

    def _check_idle(self) -> None:
        if self._job is not None and not self._job.done:
            raise JobBusyError(self._job)

    def _unique_name(self, name: str) -> str:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "run"
        candidate, n = name, 2
        while (self.runs_dir / f"{candidate}.pth").exists():
            candidate, n = f"{name}-{n}", n + 1
        safe_child(self.runs_dir, f"{candidate}.pth")  # refuses names that could lead out of the folder
        return candidate


def open_store(runs_dir: Path) -> RunStore | None:
    """The run store beside the checkpoints, with runs of dead processes marked interrupted; None if unusable."""
    try:
        store = RunStore(default_db_path(runs_dir), runs_dir=runs_dir)
        store.mark_interrupted()
        return store
    except RunStoreError as err:
        warnings.warn(f"{err}; dashboard runs will not be recorded", RuntimeWarning, stacklevel=2)
        return None


def default_name(config: TrainConfig) -> str:
    """e.g. "fastnet-20250101-120000": architecture and local start time."""
    return f"{config.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
