"""A run's life in one place: check it can be saved, claim its file, record it, train it with a checkpoint after
every epoch, resume it, and fail it with the fix. The CLI and the dashboard's jobs call this and add only their I/O."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .budget import BudgetTooSmall
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .data import CifarData
from .devices import resolve_device
from .events import EpochEnd, Event, Failed, Listener, Planned, fan_out
from .executors import Executor, RunFailed, ThreadExecutor
from .holdout import check_holdout
from .limits import check_memory, machine_notes, memory_failure_message
from .models import build_model, count_params
from .resume import load_resume, resume_problem
from .run_files import SaveError, check_folder, claim_checkpoint, release_unused, save_problem, sweep_stale_temporaries
from .runs import RunIdTaken, RunRecord, RunStore, RunStoreError, clean_name, new_run_id
from .train import TrainResult

log = logging.getLogger(__name__)
CLAIM_TRIES = 20  # run ids drawn before giving up: a clash needs the same id in the same folder on the same day


@dataclass(frozen=True)
class RunPlan:
    """What a run trains and where it keeps it, decided before training starts."""

    config: TrainConfig
    name: str  # the display name: a label only (renaming a run never touches its file)
    checkpoint: Path  # <name>-<run id>.pth, claimed for this run alone; rewritten after every finished epoch
    data_source: str | None  # what load_data takes: recorded so that a resume reloads the same data
    run_id: str | None = None  # None when no run store records it
    resume: dict[str, Any] | None = None  # the state of its last saved epoch, when continuing a run
    memory_checked: bool = False  # new_run checked the memory against the data it trains on: not again at the start

    @property
    def saved_epoch(self) -> int:
        """The epoch whose checkpoint is in the file when training (re)starts."""
        return int(self.resume["epoch"]) if self.resume else 0


def default_name(config: TrainConfig) -> str:
    """e.g. "fastnet-20250101-120000": architecture and local start time; a label, so clashes do no harm."""
    return f"{config.arch}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_run(config: TrainConfig, folder: str | Path, data: CifarData | None = None) -> list[str]:
    """Refuse, before any step is taken, a run this machine cannot train or save: a device that is not here, a
    folder that cannot hold its checkpoints, and (once the data is known) a validation hold-out that leaves too few
    training images or more memory than is free. Returns what the machine will change, e.g. threads lowered to its
    cores, for the caller to tell the user."""
    resolve_device(config.device)
    check_folder(Path(folder), needed_bytes=checkpoint_bytes(config))
    if data is not None:
        check_holdout(config.validation, len(data.train_x))
        check_memory(config, len(data.train_x), n_test_images=len(data.test_x))
    return machine_notes(config)


def checkpoint_bytes(config: TrainConfig) -> int:
    """Room a run's checkpoints need: weights plus optimizer state (two buffers at most, Adam's), twice over while
    a new file is written beside the last one, plus the metadata."""
    params = count_params(build_model(config))
    return 2 * params * 4 * 3 + 1_000_000


def new_run(
    config: TrainConfig,
    *,
    folder: str | Path,
    store: RunStore | None = None,
    name: str | None = None,
    data_source: str | None = None,
    data: CifarData | None = None,
    owner: str = "",
    preset: str = "",
) -> RunPlan:
    """Check (the memory too when `data` is given), then claim a unique checkpoint file and (with a store) record
    the run as running, started by `owner` from `preset`."""
    label = clean_name(name or default_name(config))
    folder = Path(folder)
    check_run(config, folder, data)
    for path in sweep_stale_temporaries(folder):
        log.info("removed %s, left by a save that never finished", path.name)
    for _ in range(CLAIM_TRIES):
        run_id = new_run_id() if store is not None else None
        try:
            path = claim_checkpoint(folder, label, run_id)
        except FileExistsError:
            continue  # another process or machine drew the same id for the same name
        except OSError as err:
            raise SaveError(err.errno, save_problem(err, folder)) from err
        checked = data is not None
        if store is None:
            return RunPlan(config, label, path, data_source, memory_checked=checked)
        try:
            store.create_run(config, label, data_source, path, run_id=run_id, owner=owner, preset=preset)
        except RunIdTaken:
            release_unused(path)
            continue
        except BaseException:
            release_unused(path)
            raise
        log.info("run %s (%s) recorded; its checkpoint is %s", run_id, label, path)
        return RunPlan(config, label, path, data_source, run_id, memory_checked=checked)
    raise RunStoreError(f"no free run id after {CLAIM_TRIES} tries in {folder}; is it shared by far too many runs?")


def start_queued(store: RunStore, record: RunRecord, folder: str | Path) -> RunPlan:
    """A new run the queue has just claimed (run_queue.claim_next): checked again, since the machine may have
    changed while it waited, and its checkpoint file claimed under its id. A problem fails the run, with the fix."""
    folder = Path(folder)
    try:
        config = record.train_config
        check_run(config, folder)
        path = claim_checkpoint(folder, record.name, record.id)
    except SaveError as err:  # the folder cannot hold it (now)
        message = str(err)
    except OSError as err:
        message = save_problem(err, folder)
    except ValueError as err:  # a device gone, a folder full, a config this version cannot read
        message = str(err)
    else:
        store.finish(record.id, checkpoint=path)
        log.info("run %s (%s) left the queue; its checkpoint is %s", record.id, record.name, path)
        return RunPlan(config, record.name, path, record.data_source, record.id)
    store.finish(record.id, "failed", message=message)
    raise RunStoreError(f"run {record.id} could not start: {message}")


def resume_run(store: RunStore, run_id: str) -> RunPlan:
    """A stopped, interrupted or failed run, with the validated state of its last saved epoch."""
    record = store.get_run(run_id)
    problem = resume_problem(record)
    if problem:
        raise RunStoreError(problem)
    try:
        config = record.train_config
    except ValueError as err:  # e.g. recorded by a newer version of the lab, with an architecture unknown here
        raise RunStoreError(f"run {run_id} cannot be resumed by this version of the lab: {err}") from err
    resolve_device(config.device)
    state = load_resume(record)
    return RunPlan(config, record.name, Path(str(record.checkpoint)), record.data_source, record.id, state)


def abandon(plan: RunPlan, store: RunStore | None, message: str) -> None:
    """A run that could not start (its data did not load, say): recorded as failed, its unused file released."""
    release_unused(plan.checkpoint)
    if store is not None and plan.run_id is not None:
        try:
            store.finish(plan.run_id, "failed", message=message, only_if_running=True)
        except RunStoreError as err:
            log.warning("run %s: could not record its failure: %s", plan.run_id, err)


class TrainingRun:
    """Trains a plan on `data`, where `executor` puts it (this process by default): a checkpoint after every
    finished epoch, the record kept current, and a failed save turned into a failed run whose message names the
    cause and the fix (the last good checkpoint stays)."""

    def __init__(
        self,
        plan: RunPlan,
        data: CifarData,
        *,
        store: RunStore | None = None,
        listeners: tuple[Listener, ...] = (),
        executor: Executor | None = None,
    ) -> None:
        self.plan, self.data, self.store, self.listeners = plan, data, store, listeners
        self.executor = executor or ThreadExecutor()
        self.saved_epoch = plan.saved_epoch
        self.node = ""  # where it trains, once the executor knows

    @property
    def run_id(self) -> str | None:
        return self.plan.run_id

    @property
    def checkpoint_path(self) -> Path:
        return self.plan.checkpoint

    def run(self, *, on_event: Listener | None = None, stop: threading.Event | None = None) -> TrainResult:
        """Train to the end, a stop or a failure. Raises ValueError, before the record is touched, when the run
        cannot fit in the memory that is free now (unless new_run has just checked that)."""
        if not self.plan.memory_checked:
            check_memory(self.plan.config, len(self.data.train_x), n_test_images=len(self.data.test_x))
        recorder = self._begin()
        listeners = (self._follow_plan, self._save_epoch, *recorder, *self.listeners, *([on_event] if on_event else []))
        started = time.perf_counter()
        try:
            result = self.executor.train(
                self.plan.config,
                self.data,
                stop=stop or threading.Event(),
                on_event=fan_out(*listeners),
                resume=self.plan.resume,
                on_node=self._record_node,
            )
            metrics = self._final_metrics(result, time.perf_counter() - started)
            if metrics is not None:
                self._save(result.model, result.epochs_done, metrics)
        except (SaveError, BudgetTooSmall, RunFailed) as err:
            return self._failed(str(err), time.perf_counter() - started, on_event)
        except BaseException as err:
            memory = memory_failure_message(err, self.plan.config)
            if memory is not None:
                return self._failed(memory, time.perf_counter() - started, on_event, out_of_memory=True)
            self._record_abort(err)
            raise
        finally:
            if self.saved_epoch == 0:
                release_unused(self.plan.checkpoint)
        self._record_end(result, metrics)
        return result

    def _follow_plan(self, event: Event) -> None:
        """A time budget chose what trains (executors.train_here): the run is recorded with that choice, so a
        resume does not choose again."""
        if isinstance(event, Planned):
            self.plan = dataclasses.replace(self.plan, config=event.config)
            log.info("run %s: %s", self.run_id, event.summary)

    def _record_node(self, node: str) -> None:
        self.node = node
        if self.store is not None and self.run_id is not None:
            try:
                self.store.annotate(self.run_id, node=node)
            except RunStoreError as err:
                log.warning("run %s: its node was not recorded: %s", self.run_id, err)

    # --- saving ---
    def _save_epoch(self, event: Event) -> None:
        if isinstance(event, EpochEnd):
            metrics = {"test_accuracy_subset": event.test_acc, "train_accuracy": event.train_acc}
            if event.val_acc is not None:
                metrics["validation_accuracy_subset"] = event.val_acc
            self._save(event.state_dict, event.epoch, metrics, event.resume_state)

    def _save(self, model: Any, epoch: int, metrics: dict[str, Any], resume: dict[str, Any] | None = None) -> None:
        path = self.plan.checkpoint
        try:
            save_checkpoint(
                path, model, self.plan.config, classes=self.data.classes, epoch=epoch, metrics=metrics, resume=resume
            )
        except OSError as err:
            kept = (
                f"the checkpoint of epoch {self.saved_epoch} ({path.name}) is intact"
                if self.saved_epoch
                else "no epoch had been saved yet"
            )
            resume_hint = f", then resume it (run {self.run_id})" if self.saved_epoch and self.run_id else ""
            raise SaveError(
                err.errno, f"could not save epoch {epoch}: {save_problem(err, path.parent)}{resume_hint}; {kept}"
            ) from err
        self.saved_epoch = epoch

    def _final_metrics(self, result: TrainResult, total_seconds: float) -> dict[str, Any] | None:
        if result.status != "completed" or result.evaluation is None:
            return None
        metrics = {
            **result.evaluation.summary(),
            "train_seconds": result.train_seconds,
            "images_per_s": result.images_per_s,
            "total_seconds": total_seconds,  # training and every evaluation: what a queue's estimates go by
            "train_images": len(self.data.train_x) - self.plan.config.validation,  # the hold-out is not trained on
            "device": result.device,
            "data": self.data.source,
        }
        metrics.pop("confusion_matrix")
        if result.validation is not None:
            metrics.update(
                validation_accuracy=result.validation.accuracy,
                validation_loss=result.validation.loss,
                validation_images=len(result.validation.labels),
            )
        return metrics

    # --- the record ---
    def _begin(self) -> tuple[Listener, ...]:
        if self.store is None or self.run_id is None:
            return ()
        if self.plan.resume is not None:
            self.store.begin_resume(self.run_id, epoch=self.plan.saved_epoch, step=int(self.plan.resume["step"]))
            log.info("run %s resumed after epoch %d", self.run_id, self.plan.saved_epoch)
        return (self.store.listener(self.run_id),)

    def _record_end(self, result: TrainResult, metrics: dict[str, Any] | None) -> None:
        """Add the device and the full final metrics; the outcome itself came with the loop's last event."""
        log.info("run %s %s after %d epoch(s)", self.run_id, result.status, result.epochs_done)
        if self.store is None or self.run_id is None:
            return
        try:
            self.store.finish(self.run_id, device=result.device, metrics=metrics)
        except RunStoreError as err:  # the model is saved; a missing summary row must not turn that into an error
            log.warning("run %s: final metrics not recorded: %s", self.run_id, err)

    def _failed(
        self, message: str, seconds: float, on_event: Listener | None, *, out_of_memory: bool = False
    ) -> TrainResult:
        log.error("run %s failed: %s", self.run_id, message)
        if self.store is not None and self.run_id is not None:
            try:
                self.store.finish(self.run_id, "failed", message=message, out_of_memory=out_of_memory)
            except RunStoreError as err:  # the database may sit on the same full disk
                log.warning("run %s: could not record its failure: %s", self.run_id, err)
        if on_event is not None:
            on_event(Failed(message, 0))
        return TrainResult("failed", None, self.plan.config, self.saved_epoch, None, seconds, message)

    def _record_abort(self, err: BaseException) -> None:
        """An exception ended the run: record why, unless its outcome was already recorded."""
        if self.store is None or self.run_id is None:
            return
        interrupted = isinstance(err, KeyboardInterrupt)
        message = (
            f"interrupted; resume with `python -m cifar_lab train --resume {self.run_id}`"
            if interrupted
            else f"{type(err).__name__}: {err}"
        )
        log.log(logging.INFO if interrupted else logging.ERROR, "run %s: %s", self.run_id, message)
        with contextlib.suppress(RunStoreError):  # the error being raised says more than this one
            self.store.finish(
                self.run_id, "interrupted" if interrupted else "failed", message=message, only_if_running=True
            )

    def summary(self, result: TrainResult) -> dict[str, Any]:
        """The JSON-friendly outcome: the CLI's `--json` contract."""
        evaluation = result.evaluation
        return {
            "status": result.status,
            "run_id": self.run_id,
            "name": self.plan.name,
            "test_accuracy": result.test_accuracy,
            "validation_accuracy": result.validation.accuracy if result.validation else None,
            "per_class_accuracy": evaluation.per_class_accuracy if evaluation else {},
            "train_seconds": round(result.train_seconds, 3),
            "epochs": result.epochs_done,
            "images_per_s": round(result.images_per_s, 1),
            "checkpoint": str(self.plan.checkpoint) if self.saved_epoch or evaluation else None,
            "device": result.device,
            "node": self.node,
            "data": self.data.source,
            "config": self.plan.config.to_dict(),
        }
