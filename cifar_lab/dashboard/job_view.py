"""What a page sees of a training job: the bounded loss curve and an immutable snapshot of the job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import TrainConfig
from ..events import EarlyScore, EpochEnd, Failed, Finished, Step, Stopped

DONE = frozenset({"completed", "stopped", "failed"})
# Loss curve points kept per job; older ones are merged in pairs beyond this. A half-page chart shows no more, and
# every watcher's redraw sends them all again.
MAX_LOSS_POINTS = 500


@dataclass(frozen=True)
class LossPoint:
    step: int  # last training step merged into this point
    epoch: float  # the same position in epochs (fractional), for plotting
    loss: float  # mean training loss over the merged steps
    count: int  # Step events merged into this point


class LossSeries:
    """The per-step loss curve in bounded memory: past the cap, neighbouring points are averaged in pairs."""

    def __init__(self, cap: int = MAX_LOSS_POINTS) -> None:
        self.cap = max(2, cap)
        self.points: list[LossPoint] = []
        self.stride = 1  # Step events per stored point once the list is full
        self._pending: list[tuple[int, float, float]] = []  # (step, epoch, loss) waiting to fill a point

    def add(self, step: int, epoch: float, loss: float) -> None:
        self._pending.append((step, epoch, loss))
        if len(self._pending) >= self.stride:
            self.points.append(_merge_raw(self._pending))
            self._pending = []
        if len(self.points) > self.cap:
            self.points = [_merge_points(self.points[i : i + 2]) for i in range(0, len(self.points), 2)]
            self.stride *= 2

    def snapshot(self) -> tuple[LossPoint, ...]:
        tail = (_merge_raw(self._pending),) if self._pending else ()
        return tuple(self.points) + tail


def _merge_raw(raw: list[tuple[int, float, float]]) -> LossPoint:
    step, epoch, _ = raw[-1]
    return LossPoint(step, epoch, sum(r[2] for r in raw) / len(raw), len(raw))


def _merge_points(points: list[LossPoint]) -> LossPoint:
    count = sum(p.count for p in points)
    loss = sum(p.loss * p.count for p in points) / count
    return LossPoint(points[-1].step, points[-1].epoch, loss, count)


@dataclass(frozen=True)
class JobSnapshot:
    """Everything a page draws about one job, copied under the job's lock; safe to read from any thread."""

    name: str
    status: str
    config: TrainConfig
    source: str  # data source description
    losses: tuple[LossPoint, ...]
    epochs: tuple[EpochEnd, ...]  # without weights
    last_step: Step | None
    final: Finished | Stopped | Failed | None
    message: str  # why it failed or stopped, or what it is doing now
    checkpoint: Path | None  # the last checkpoint written (last finished epoch, or the final model)
    started_at: float  # time.time() when start() was called
    finished_at: float | None
    run_id: str | None = None  # the run's id in the run store, once recorded there
    saved_epoch: int = 0  # the epoch whose checkpoint the file holds (a resumed run's earlier epochs included)
    version: int = 0  # the job's changes so far: a snapshot with the same version shows the same
    eta_s: float | None = None  # seconds until it ends, final scoring included (time_left.TimeLeft); None: unknown
    budget: str = ""  # what a time budget measured and chose (events.Planned), "" without one
    early: tuple[EarlyScore, ...] = ()  # the first epoch's early test scores

    @property
    def done(self) -> bool:
        return self.status in DONE

    @property
    def progress(self) -> float:
        """0..1 of all training steps."""
        if self.status == "completed":
            return 1.0
        if self.last_step is None:
            return 0.0
        return min(1.0, self.last_step.step / max(1, self.last_step.total_steps))

    @property
    def images_per_s(self) -> float | None:
        if isinstance(self.final, Finished):
            return self.final.images_per_s
        return self.last_step.images_per_s if self.last_step else None

    @property
    def test_accuracy(self) -> float | None:
        """Final accuracy on the whole test set when completed, else the last epoch's (subset) accuracy."""
        if isinstance(self.final, Finished):
            return self.final.test_accuracy
        return self.epochs[-1].test_acc if self.epochs else None


def why_test_beats_train(config: TrainConfig, epochs: Sequence[EpochEnd]) -> str:
    """Why test accuracy is above train accuracy, when it is: a student reads that as a mistake. Empty otherwise."""
    if not epochs or epochs[-1].test_acc <= epochs[-1].train_acc:
        return ""
    harder = [
        what
        for what, on in (
            ("flipped", config.flip),
            ("shifted", config.crop_pad > 0),
            ("rotated", config.rotate > 0),
            ("partly blanked", config.cutout > 0),
        )
        if on
    ]
    reasons = []
    if harder:
        reasons.append(f"the training images are {', '.join(harder)} at random (augmentation), the test images never")
    if config.label_smoothing > 0:
        reasons.append("training is scored against softened answers (label smoothing)")
    if config.dropout > 0:
        reasons.append("dropout switches off part of the network while it trains")
    why = "; ".join(reasons) or "train accuracy is averaged over the epoch, while the network was still improving"
    return (
        "Test accuracy is above train accuracy here, and that is expected: train accuracy is measured on a harder "
        f"task ({why}). Loss shows the same: the train loss stays higher than the test loss."
    )
