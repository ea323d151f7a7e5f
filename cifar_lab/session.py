"""One training run with its listeners: a checkpoint after every epoch and a summary at the end."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .checkpoint import save_checkpoint
from .config import TrainConfig
from .data import CifarData
from .events import EpochEnd, Event, Listener, fan_out
from .train import TrainResult, train


class TrainSession:
    """Trains `config` on `data`, keeping `checkpoint_path` at the last finished epoch.

    Shared by the CLI and the dashboard's background jobs so both save and report alike.
    """

    def __init__(self, config: TrainConfig, data: CifarData, checkpoint_path: str | Path,
                 listeners: tuple[Listener, ...] = ()) -> None:
        self.config, self.data = config, data
        self.checkpoint_path = Path(checkpoint_path)
        self.listeners = listeners
        self.saved_epoch = 0

    def run(self, *, on_event: Listener | None = None, stop: threading.Event | None = None,
            resume: dict[str, Any] | None = None) -> TrainResult:
        listeners = (self._save_epoch, *self.listeners, *([on_event] if on_event else []))
        result = train(self.config, self.data, stop=stop, on_event=fan_out(*listeners), resume=resume)
        if result.status == "completed" and result.evaluation is not None:
            metrics = {**result.evaluation.summary(), "train_seconds": result.train_seconds,
                       "images_per_s": result.images_per_s, "device": result.device, "data": self.data.source}
            metrics.pop("confusion_matrix")
            save_checkpoint(self.checkpoint_path, result.model, self.config, classes=self.data.classes,
                            epoch=result.epochs_done, metrics=metrics)
        return result

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
