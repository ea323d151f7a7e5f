"""One run training on a worker thread: it records events; readers take immutable snapshots."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

import torch

from ..data import CifarData, DataError, load_data
from ..events import EarlyScore, EpochEnd, Event, Failed, Finished, Planned, Step, Stopped
from ..executors import Executor
from ..run_files import SaveError
from ..runner import RunPlan, TrainingRun, abandon
from ..runs import EpochRecord, RunStore, RunStoreError
from ..time_left import TimeLeft
from ..train import TrainResult
from .job_view import DONE, JobSnapshot, LossSeries

log = logging.getLogger(__name__)
LoadFn = Callable[[str | None], CifarData]


class TrainingJob:
    """One training run on a worker thread; the worker never touches the UI, it only records events."""

    def __init__(
        self,
        plan: RunPlan,
        *,
        data: CifarData | None = None,
        store: RunStore | None = None,
        load_fn: LoadFn = load_data,
        owner: str = "",
        on_end: Callable[[TrainingJob], None] | None = None,
        cuda_index: int | None = None,
        slot: int = 0,
        executor: Executor | None = None,
    ) -> None:
        """on_end: called on the worker thread once the job has ended (the scheduler starts the next run there).
        cuda_index: the GPU of this job's slot, where the machine has several."""
        self.plan, self.config, self.name, self.owner = plan, plan.config, plan.name, owner
        self._on_end, self._cuda_index, self._executor = on_end, cuda_index, executor
        self.slot = slot  # which of the scheduler's slots (GPUs) it trains in
        self.checkpoint_path = plan.checkpoint
        self._data, self._store, self._load_fn = data, store, load_fn
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._interrupted = False  # stopped because the server is closing, not by anyone's choice
        self._thread = threading.Thread(target=self._run, name=f"train-{plan.run_id or plan.name}", daemon=True)
        self._status, self._message, self._run_id = "queued", "waiting to start", plan.run_id
        self._losses = LossSeries()
        self._epochs: list[EpochEnd] = []
        self._early: list[EarlyScore] = []  # the first epoch's early test scores
        self._weights: tuple[int, dict[str, torch.Tensor]] | None = None  # the last epoch's CPU copy, for the insides
        self._last_step: Step | None = None
        self._final: Finished | Stopped | Failed | None = None
        self._time_left: TimeLeft | None = None  # once the data is known
        self._budget = ""  # what a time budget chose
        self._saved_epoch = plan.saved_epoch  # what the checkpoint file holds: a resumed run's last epoch at first
        self._started_at = time.time()
        self._finished_at: float | None = None
        self._version = 0  # counts every change a snapshot shows
        self.result: TrainResult | None = None
        if plan.resume is not None and store is not None:
            self._load_history(store)

    # --- control, from any thread ---
    def start(self) -> TrainingJob:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the loop to stop; it checks before every step, so it ends within one step."""
        self._stop.set()

    def interrupt(self) -> None:
        """Stop because the server is closing: the run is recorded as interrupted, to resume after the restart."""
        self._interrupted = True
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

    @property
    def version(self) -> int:
        """Changes whenever the job's snapshot would: views built from a snapshot are reused until then."""
        with self._lock:
            return self._version

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            source = self._data.source if self._data is not None else (self.plan.data_source or "default")
            saved = self.checkpoint_path if self._saved_epoch else None
            return JobSnapshot(
                self.name,
                self._status,
                self.config,
                source,
                self._losses.snapshot(),
                tuple(self._epochs),
                self._last_step,
                self._final,
                self._message,
                saved,
                self._started_at,
                self._finished_at,
                self._run_id,
                self._saved_epoch,
                self._version,
                self._time_left.seconds() if self._time_left is not None and self._status == "running" else None,
                self._budget,
                tuple(self._early),
            )

    def latest_weights(self) -> tuple[int, dict[str, torch.Tensor]] | None:
        """(epoch, weights) after the last finished epoch of this job; None before the first. Read, never changed."""
        with self._lock:
            return self._weights

    def sample(self, index: int) -> tuple[torch.Tensor, int, tuple[str, ...]] | None:
        """Test image `index` (the first when there are fewer), its label and the class names; None before the
        data has loaded."""
        with self._lock:
            data = self._data
        if data is None or len(data.test_y) == 0:
            return None
        index = index if index < len(data.test_y) else 0
        return data.test_x[index], int(data.test_y[index]), data.classes

    # --- the worker ---
    def _run(self) -> None:
        try:
            if self._cuda_index is not None:  # the current CUDA device is per thread: this worker's slot
                torch.cuda.set_device(self._cuda_index)
            self._set(status="running", message="loading data")
            if self._data is None:
                data = self._load_fn(self.plan.data_source)
                with self._lock:
                    self._data = data
                    self._version += 1
            self._set(message="timing this machine for the time budget" if self.config.minutes else "training")
            with self._lock:
                self._time_left = TimeLeft.for_data(self.config, len(self._data.test_y))
            run = TrainingRun(
                self.plan, self._data, store=self._store, listeners=(self._record,), executor=self._executor
            )
            self.result = run.run(stop=self._stop)
            self._set(status=self.result.status, message=self.result.message or self.result.status)
            if self._interrupted and self.result.status == "stopped":
                self._record_interrupted()
        except (DataError, ValueError, SaveError) as err:  # the page shows these as they are: they name the fix
            self._fail(str(err))
        except Exception as err:  # the worker must always end in a final status the page can show
            log.exception("run %s failed", self._run_id)
            self._fail(f"{type(err).__name__}: {err}")
        finally:
            with self._lock:
                self._finished_at = time.time()
                self._version += 1
                if self._status not in DONE:
                    self._status = "failed"
            self._ended()

    def _record_interrupted(self) -> None:
        if self._store is None or self._run_id is None:
            return
        message = f"interrupted: the server stopped after epoch {self._saved_epoch}; resume it when the lab is back"
        try:
            self._store.finish(self._run_id, "interrupted", message=message)
        except RunStoreError as err:  # the next start marks it interrupted anyway, from its dead pid
            log.warning("run %s: could not record its interruption: %s", self._run_id, err)

    def _ended(self) -> None:
        if self._on_end is None:
            return
        try:
            self._on_end(self)
        except Exception:  # the next run not starting must not hide how this one ended
            log.exception("after run %s ended, starting the next one failed", self._run_id)

    def _fail(self, message: str) -> None:
        log.warning("job %s failed: %s", self._run_id or self.name, message)
        self._set(status="failed", message=message)
        if self.result is None and self._saved_epoch == 0:  # it never trained: no record of a half-run to keep
            abandon(self.plan, self._store, message)

    def _record(self, event: Event) -> None:
        """The train loop's listener: keeps a compact copy of each event (an epoch's weights stay in its file).
        It runs after the run's own checkpoint listener, so an EpochEnd here is an epoch saved to the file."""
        weights = None
        if isinstance(event, EpochEnd):
            weights = (event.epoch, event.state_dict) if event.state_dict else None
            event = dataclasses.replace(event, state_dict={}, resume_state={})
        with self._lock:
            if weights is not None:
                self._weights = weights
            self._version += 1
            if self._time_left is not None:
                self._time_left(event)
            if isinstance(event, Planned):  # a time budget chose the epochs: the charts follow it
                self.config = event.config
                self._message = self._budget = event.page_summary or event.summary
                return
            if isinstance(event, Step):
                per_epoch = event.total_steps / self.config.epochs
                self._losses.add(event.step, event.step / per_epoch, event.loss)
                self._last_step = event
            elif isinstance(event, EarlyScore):
                self._early.append(event)
            elif isinstance(event, EpochEnd):
                self._epochs.append(event)
                self._saved_epoch = event.epoch
            else:
                self._final = event

    def _load_history(self, store: RunStore) -> None:
        """A resumed run's charts start with the epochs and steps it trained before, up to its saved epoch."""
        assert self.plan.run_id is not None and self.plan.resume is not None
        last_step = int(self.plan.resume["step"])
        try:
            epochs = [e for e in store.epochs(self.plan.run_id) if e.epoch <= self._saved_epoch]
            steps = [s for s in store.steps(self.plan.run_id) if s.step <= last_step]
        except RunStoreError as err:
            log.warning("run %s: earlier metrics not shown: %s", self.plan.run_id, err)
            return
        self._epochs = [_epoch_event(e, self.config.epochs) for e in epochs]
        per_epoch = last_step / max(1, self._saved_epoch)
        for s in steps:
            self._losses.add(s.step, s.step / per_epoch, s.loss)

    def _set(self, *, status: str | None = None, message: str | None = None) -> None:
        with self._lock:
            self._version += 1
            if status is not None:
                self._status = status
            if message is not None:
                self._message = message


def _epoch_event(record: EpochRecord, epochs: int) -> EpochEnd:
    return EpochEnd(
        record.epoch,
        epochs,
        record.train_loss,
        record.train_acc,
        record.test_loss,
        record.test_acc,
        record.seconds,
        0.0,
    )
