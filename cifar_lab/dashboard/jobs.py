"""The dashboard's scheduler: runs wait in the store's queue and train one per slot; who may act on which run."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import class_settings, run_queue
from ..class_settings import ClassSettings
from ..config import TrainConfig
from ..data import CifarData, load_data, resolve_source
from ..executors import Executor, ThreadExecutor, make_executor
from ..holdout import for_class
from ..roles import Viewer, check_may_manage, check_teacher
from ..run_time import CIFAR_TRAIN_IMAGES, Throughput, start_times
from ..runner import RunPlan, check_run, default_name, new_run, resume_run, start_queued
from ..runs import RESUMABLE, RunRecord, RunStore, RunStoreError, default_db_path
from .training_job import LoadFn, TrainingJob

log = logging.getLogger(__name__)
__all__ = ["JobBusyError", "JobManager", "QueuedRun", "TrainingJob", "open_store"]


class JobBusyError(RuntimeError):
    """A run was asked to start at once while one is running."""

    def __init__(self, job: TrainingJob) -> None:
        super().__init__(
            f"training job {job.name!r} is already running (one job per server); "
            "wait for it to finish or stop it, then start again"
        )
        self.job = job


@dataclass(frozen=True)
class QueuedRun:
    record: RunRecord
    starts_in_s: float | None  # estimated from this machine's measured throughput; None when unknown
    seconds: float | None  # its own estimated length


def default_slots() -> int:
    """Runs trained at once: one per GPU, else one (a CPU run already uses every core)."""
    return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1


class JobManager:
    """The process-wide owner of training: a queue in the run store, one job per slot, and the class's settings."""

    def __init__(
        self,
        runs_dir: Path | str,
        store: RunStore | None = None,
        *,
        slots: int | None = None,
        load_fn: LoadFn = load_data,
        executor: Executor | None = None,
    ) -> None:
        """executor: where runs train; by default what $CIFAR_LAB_EXECUTOR names (this process unless it says ray).
        A cluster asked for and unusable (Ray not installed, say) leaves runs here and executor_problem says why."""
        self.runs_dir = Path(runs_dir)
        self.store = store if store is not None else open_store(self.runs_dir)
        self.executor_problem = ""
        if executor is None:
            try:
                executor = make_executor()
            except ValueError as err:
                self.executor_problem = f"Runs train on this computer, not on a Ray cluster: {err}"
                log.warning("%s", self.executor_problem)
                executor = ThreadExecutor()
        self.executor = executor
        self._fixed_slots = slots
        self._load_fn = load_fn
        self._lock = threading.RLock()  # an ending job starts the next from its own thread, under this lock
        self._jobs: dict[str, TrainingJob] = {}  # every job this process started, by run id (or name), oldest first
        self._data: dict[str | None, CifarData] = {}  # the last data loaded, by source: thirty runs load it once
        self._data_lock = threading.Lock()
        self._throughput: tuple[tuple, Throughput] | None = None  # (the completed runs' fingerprint, their speeds)
        self._closing = False  # once set, nothing more starts: the server is going away
        self.pump()  # runs queued before a restart start now

    @property
    def slots(self) -> int:
        """Runs trained at once: as set, else one per GPU here (one on a CPU), or what the cluster has room for."""
        if self._fixed_slots:
            return self._fixed_slots
        if self.executor.name == "ray":
            from ..cluster import cluster_slots

            return cluster_slots(getattr(self.executor, "address", "local"))
        return default_slots()

    # --- what is training ---
    @property
    def current(self) -> TrainingJob | None:
        """The latest job, running or finished; None before the first."""
        with self._lock:
            return next(reversed(self._jobs.values()), None)

    @property
    def active(self) -> list[TrainingJob]:
        with self._lock:
            return [job for job in self._jobs.values() if not job.done]

    @property
    def running(self) -> TrainingJob | None:
        """The oldest job still training, if any."""
        active = self.active
        return active[0] if active else None

    def job(self, run_id: str) -> TrainingJob | None:
        with self._lock:
            return self._jobs.get(run_id)

    # --- the queue ---
    def settings(self) -> ClassSettings:
        return class_settings.load(self.store) if self.store is not None else ClassSettings()

    def submit(
        self,
        config: TrainConfig,
        *,
        owner: str,
        data: CifarData | None = None,
        source: str | None = None,
        name: str | None = None,
        preset: str = "",
        limit: int | None = 1,
    ) -> str:
        """Check the run can train and be saved here, queue it for `owner` (QueueFull past `limit` runs queued or
        running; None: no limit) and start it if a slot is free. Returns its run id."""
        store = self._need_store("queue a run")
        resolved = resolve_source(source) if source else None
        if class_settings.load(store).validation:  # every run of the class is scored on the same held-out images
            config = for_class(config, len(data.train_x) if data is not None else self._train_images(resolved))
        check_run(config, self.runs_dir, data)
        if data is not None:
            self._remember(resolved, data)
        run_id = run_queue.enqueue(
            store,
            config,
            owner=owner,
            name=name or default_name(config),
            data_source=resolved,
            preset=preset,
            limit=limit,
        )
        log.info("run %s queued for %s", run_id, owner or "nobody")
        self.pump()
        return run_id

    def pump(self) -> list[TrainingJob]:
        """Start queued runs while slots are free and the queue is not paused; returns the jobs started."""
        if self.store is None:
            return []
        started: list[TrainingJob] = []
        with self._lock:
            if self._closing or self.settings().paused:
                return started
            while len(self.active) < self.slots:
                record = run_queue.claim_next(self.store)
                if record is None:
                    break
                plan = self._plan(record)
                if plan is not None:
                    started.append(self._launch(plan, record.owner))
        return started

    def shutdown(self, timeout: float = 20.0) -> None:
        """The server is stopping: interrupt what trains (kept as interrupted, resumable; its last finished epoch is
        saved) and start nothing more. Waits, so that no worker is still inside torch when the interpreter ends
        (which aborted the process mid-step)."""
        with self._lock:
            self._closing = True
            jobs = self.active
        for job in jobs:
            job.interrupt()
        deadline = time.monotonic() + timeout
        for job in jobs:
            if not job.join(max(0.0, deadline - time.monotonic())):
                log.warning("run %s did not stop within %.0f s of the server closing", job.plan.run_id, timeout)

    def waiting(self) -> list[QueuedRun]:
        """The queue in start order, with estimated start times."""
        if self.store is None:
            return []
        records = run_queue.waiting(self.store)
        if not records:  # every watcher's redraw asks: one query when nothing waits
            return []
        throughput = self.measured()
        durations = [self._seconds(r, throughput) for r in records]
        busy = [job.snapshot().eta_s or 0.0 for job in self.active]
        starts = start_times(busy, durations, self.slots)
        return [QueuedRun(r, s, d) for r, s, d in zip(records, starts, durations)]

    def estimate_seconds(self, config: TrainConfig, source: str | None = None) -> float | None:
        """Estimated seconds for `config` on this machine, from its finished runs; None before any comparable one."""
        if self.store is None:
            return None
        return self.measured().run_seconds(config, self._train_images(resolve_source(source) if source else None))

    def measured(self) -> Throughput:
        """What this machine's completed runs measured; read again only when the completed runs have changed."""
        store = self._need_store("estimate run times")
        fingerprint = tuple(store.query("SELECT count(*), max(ended) FROM runs WHERE status = 'completed'")[0])
        cached = self._throughput
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        throughput = Throughput.from_runs(store.list_runs(status="completed", limit=200))
        self._throughput = (fingerprint, throughput)
        return throughput

    # --- acting on runs: `by` None is the server itself (tests, benchmarks); a Viewer is checked ---
    def stop(self, run_id: str | None = None, *, by: Viewer | None = None, timeout: float = 5.0) -> bool:
        """Stop a run (every running one when `run_id` is None) and wait; a queued run leaves the queue. True when
        it is not training afterwards."""
        if run_id is None:
            return all([self._stop_job(job, timeout) for job in self.active])
        record = self._record(run_id)
        check_may_manage(by, record.owner, "stop", run_id)
        if record.status == "queued":
            run_queue.cancel(self._need_store("stop a run"), run_id)
            return True
        job = self.job(run_id)
        return self._stop_job(job, timeout) if job is not None else record.status != "running"

    def requeue(self, run_id: str, *, by: Viewer | None = None) -> None:
        """Put a stopped, interrupted or failed run back in the queue to continue from its last saved epoch."""
        record = self._record(run_id)
        check_may_manage(by, record.owner, "resume", run_id)
        limit = None if by is None or by.teacher else self.settings().runs_per_participant
        store = self._need_store("resume a run")
        resume_run(store, run_id)  # a run that cannot continue is refused now, not when its turn comes
        run_queue.requeue(store, run_id, limit=limit)
        self.pump()

    def rename(self, run_id: str, name: str, *, by: Viewer | None = None) -> None:
        check_may_manage(by, self._record(run_id).owner, "rename", run_id)
        self._need_store("rename a run").rename(run_id, name)

    def delete(self, run_id: str, *, by: Viewer | None = None, delete_checkpoint: bool = False) -> bool:
        """Remove a run from the history (a queued one from the queue); True when its checkpoint file went too."""
        record = self._record(run_id)
        check_may_manage(by, record.owner, "delete", run_id)
        store = self._need_store("delete a run")
        if record.status == "queued":
            run_queue.cancel(store, run_id)
            if record.epochs_done == 0:
                return False
        return store.delete(run_id, delete_checkpoint=delete_checkpoint)

    def move_up(self, run_id: str, *, by: Viewer | None = None) -> bool:
        check_teacher(by, "change the order of the queue")
        return run_queue.move_up(self._need_store("reorder the queue"), run_id)

    def hide(self, run_ids: list[str], *, by: Viewer | None = None, hidden: bool = True) -> int:
        """Take runs off the leaderboard, or put them back (the teacher's); their records stay."""
        check_teacher(by, "change the leaderboard")
        return self._need_store("change the leaderboard").set_hidden(run_ids, hidden)

    def set_class(self, *, by: Viewer | None = None, **changes: object) -> ClassSettings:
        """Change the class's settings (the teacher's); the queue starts again when it is unpaused."""
        check_teacher(by, "change the class's settings")
        settings = class_settings.update(self._need_store("keep the class's settings"), **changes)
        self.pump()
        return settings

    def resumable(self, limit: int = 20) -> list[RunRecord]:
        """Stopped, interrupted or failed runs that may continue as they are, newest first (none without a store):
        damaged rows and runs that ran out of memory are left out. RunStoreError when the store cannot be read."""
        runs = self.store.list_runs(status=RESUMABLE, limit=limit) if self.store is not None else []
        return [r for r in runs if not (r.damaged or r.out_of_memory)]

    # --- starting at once, outside the queue (tests, benchmarks, a lab used by one person) ---
    def start(
        self,
        config: TrainConfig,
        *,
        data: CifarData | None = None,
        source: str | None = None,
        name: str | None = None,
        owner: str = "",
    ) -> TrainingJob:
        """Start a job now; JobBusyError (holding the running job) if one is running, and SaveError or ValueError
        before training when the run could not be saved or trained here."""
        with self._lock:
            self._check_idle()
            resolved = resolve_source(source) if source else None
            plan = new_run(
                config,
                folder=self.runs_dir,
                store=self.store,
                name=name or default_name(config),
                data_source=resolved,
                data=data,
                owner=owner,
            )
            if data is not None:
                self._remember(resolved, data)
            return self._launch(plan, owner)

    def resume(self, run_id: str) -> TrainingJob:
        """Continue a run now from its last finished epoch, with its own config and data (loaded by the job)."""
        store = self._need_store("resume a run")
        with self._lock:
            self._check_idle()
            plan = resume_run(store, run_id)  # a problem is said at once, not by a job failing a moment later
            return self._launch(plan, store.get_run(run_id).owner)

    # --- inside ---
    def _plan(self, record: RunRecord) -> RunPlan | None:
        """The plan of a run just claimed from the queue; None (its record says why) when it cannot start."""
        assert self.store is not None
        try:
            if record.status == "stopped":  # it waited to resume
                return resume_run(self.store, record.id)
            return start_queued(self.store, record, self.runs_dir)
        except (RunStoreError, ValueError) as err:
            log.warning("queued run %s cannot start: %s", record.id, err)
            if record.status == "stopped":
                self.store.finish(record.id, message=f"could not resume: {err}")
            return None

    def _launch(self, plan: RunPlan, owner: str) -> TrainingJob:
        taken = {job.slot for job in self.active}  # the lowest free one: a GPU still training keeps its slot
        slot = next(i for i in range(self.slots) if i not in taken)
        gpu_per_slot = self.executor.name == "thread" and self.slots > 1 and torch.cuda.is_available()
        job = TrainingJob(
            plan,
            data=self._data.get(plan.data_source),
            store=self.store,
            load_fn=self._load,
            owner=owner,
            on_end=self._job_ended,
            cuda_index=slot if gpu_per_slot else None,
            slot=slot,
            executor=self.executor,
        )
        self._jobs[plan.run_id or plan.name] = job
        log.info("job %s started", plan.run_id or plan.name)
        return job.start()

    def _job_ended(self, job: TrainingJob) -> None:
        self.pump()

    def _stop_job(self, job: TrainingJob, timeout: float) -> bool:
        job.stop()
        log.info("job %s asked to stop", job.plan.run_id or job.name)
        return job.join(timeout)

    def _load(self, source: str | None) -> CifarData:
        with self._data_lock:
            if source not in self._data:
                data = self._load_fn(source)
                self._data = {source: data}  # one data set in memory: a class trains on one
            return self._data[source]

    def _remember(self, source: str | None, data: CifarData) -> None:
        with self._data_lock:
            self._data = {source: data}

    def _train_images(self, source: str | None) -> int:
        data = self._data.get(source)
        return len(data.train_x) if data is not None else CIFAR_TRAIN_IMAGES

    def _seconds(self, record: RunRecord, throughput: Throughput) -> float | None:
        try:
            config = record.train_config
        except ValueError:
            return None
        seconds = throughput.run_seconds(config, self._train_images(record.data_source))
        if seconds is not None and record.epochs_done:  # it resumes: only the epochs left
            seconds *= max(0.0, 1 - record.epochs_done / config.epochs)
        return seconds

    def _record(self, run_id: str) -> RunRecord:
        return self._need_store("act on a run").get_run(run_id)

    def _need_store(self, action: str) -> RunStore:
        if self.store is None:
            raise RunStoreError(f"no run store is open, so the lab cannot {action}; see the warning at start-up")
        return self.store

    def _check_idle(self) -> None:
        running = self.running
        if running is not None:
            raise JobBusyError(running)


def open_store(runs_dir: Path) -> RunStore | None:
    """The run store beside the checkpoints, with runs of dead processes marked interrupted; None if unusable."""
    try:
        store = RunStore(default_db_path(runs_dir), runs_dir=runs_dir)
        store.mark_interrupted()
        return store
    except RunStoreError as err:
        log.warning("%s; dashboard runs will not be recorded", err)
        return None
