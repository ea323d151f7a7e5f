"""One training run with its listeners: a checkpoint after every epoch and a summary at the end."""
from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

from .checkpoint import save_checkpoint
from .config import TrainConfig
from .data import CifarData
from .events import EpochEnd, Event, Listener, fan_out
from .runs import RunStore, RunStoreError
from .train import TrainResult, train


def write_failure_message(err: OSError, checkpoint: Path, saved_epoch: int) -> str:
    """The loop reads no files, so an OSError during a run is a checkpoint that could not be written."""
    kept = (f"the checkpoint of its last saved epoch ({checkpoint.name}) is intact" if saved_epoch
            else "no epoch had been saved yet")
    return (f"could not save to {checkpoint.parent}: {err.strerror or err}. Free some disk space or make the "
            f"folder writable, then resume the run; {kept}")


class TrainSession:
    """Trains `config` on `data`, keeping `checkpoint_path` at the last finished epoch.

    Shared by the CLI and the dashboard's background jobs so both save and report alike.
    """

    def __init__(self, config: TrainConfig, data: CifarData, checkpoint_path: str | Path,
                 listeners: tuple[Listener, ...] = (), *, store: RunStore | None = None, name: str = "",
                 data_source: str | None = None, run_id: str | None = None) -> None:
        self.config, self.data = config, data
        self.checkpoint_path = Path(checkpoint_path)
        self.listeners = listeners
        self.saved_epoch = 0
        # With a store the run is recorded there: as `run_id` when given (created, or resumed), else as a new run.
        self.store, self.name, self.data_source, self.run_id = store, name, data_source, run_id

    def run(self, *, on_event: Listener | None = None, stop: threading.Event | None = None,
            resume: dict[str, Any] | None = None) -> TrainResult:
        recorder = self._open_record(resume)
        listeners = (self._save_epoch, *recorder, *self.listeners, *([on_event] if on_event else []))
        try:
            result = train(self.config, self.data, stop=stop, on_event=fan_out(*listeners), resume=resume)
            metrics = self._final_metrics(result)
            if metrics is not None:
                save_checkpoint(self.checkpoint_path, result.model, self.config, classes=self.data.classes,
                                epoch=result.epochs_done, metrics=metrics)
        except BaseException as err:
            self._record_abort(err)
            raise
        self._record_end(result, metrics)
        return result

    def _final_metrics(self, result: TrainResult) -> dict[str, Any] | None:
        if result.status != "completed" or result.evaluation is None:
            return None
        metrics = {**result.evaluation.summary(), "train_seconds": result.train_seconds,
                   "images_per_s": result.images_per_s, "device": result.device, "data": self.data.source}
        metrics.pop("confusion_matrix")
        return metrics

    def _open_record(self, resume: dict[str, Any] | None) -> tuple[Listener, ...]:
        if resume is not None:
            self.saved_epoch = int(resume.get("epoch", 0))  # its checkpoint is already on disk
        if self.store is None:
            return ()
        if self.run_id is None:
            self.run_id = self.store.create_run(self.config, self.name or self.checkpoint_path.stem,
                                                self.data_source or self.data.source, self.checkpoint_path)
        elif resume is not None:
            self.store.begin_resume(self.run_id, epoch=int(resume["epoch"]), step=int(resume["step"]))
        return (self.store.listener(self.run_id),)

    def _record_end(self, result: TrainResult, metrics: dict[str, Any] | None) -> None:
        """Add the device and the full final metrics; the outcome itself came with the loop's last event."""
        if self.store is None or self.run_id is None:
            return
        try:
            self.store.finish(self.run_id, device=result.device, metrics=metrics)
        except RunStoreError as err:  # the model is saved; a missing summary row must not turn that into an error
            warnings.warn(f"run {self.run_id}: final metrics not recorded: {err}", RuntimeWarning, stacklevel=3)

    def _record_abort(self, err: BaseException) -> None:
        """An exception ended the run: record why, unless its outcome was already recorded."""
        if self.store is None or self.run_id is None:
            return
        interrupted = isinstance(err, KeyboardInterrupt)
        message = (f"interrupted; resume with `python -m cifar_lab train --resume {self.run_id}`" if interrupted
                   else write_failure_message(err, self.checkpoint_path, self.saved_epoch)
                   if isinstance(err, OSError) else f"{type(err).__name__}: {err}")
        try:
            self.store.finish(self.run_id, "interrupted" if interrupted else "failed", message=message,
                              only_if_running=True)
        except RunStoreError:
            pass  # the error being raised says more than this one

    def _save_epoch(self, event: Event) -> None:
        if isinstance(event, EpochEnd):
            save_checkpoint(self.checkpoint_path, event.state_dict, self.config, classes=self.data.classes,
                            epoch=event.epoch, metrics={"test_accuracy_subset": event.test_acc,
                                                        "train_accuracy": event.train_acc},
                            resume=event.resume_state)
            self.saved_epoch = event.epoch

    def summary(self, result: TrainResult) -> dict[str, Any]:
        """The JSON-friendly outcome: the CLI's `--json` contract."""
        evaluation = result.evaluation
        return {
            "status": result.status,
            "run_id": self.run_id,
            "test_accuracy": result.test_accuracy,
            "per_class_accuracy": evaluation.per_class_accuracy if evaluation else {},
            "train_seconds": round(result.train_seconds, 3),
            "epochs": result.epochs_done,
            "images_per_s": round(result.images_per_s, 1),
            "checkpoint": str(self.checkpoint_path) if self.saved_epoch or evaluation else None,
            "device": result.device,
            "data": self.data.source,
            "config": self.config.to_dict(),
        }
