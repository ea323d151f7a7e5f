"""How long a run has left, in wall seconds: measured step times plus the measured cost of evaluating, steadied.

A listener: feed it the loop's events, ask `seconds()` whenever a page or a progress bar redraws. The early
readings were off by 2.4x when the time left was judged from the average pace since the start (the first steps
pay one-time costs, a shrunk lowres epoch is not a full-size one) and the evaluations were left out.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable

from .config import TrainConfig
from .evaluate import views_per_image
from .events import EarlyScore, EpochEnd, Event, Planned, Step
from .train import scored_per_epoch

PACE_WINDOW = 100  # step events (two epochs of them) whose median pace counts: recent enough to follow a change
MIN_RATES = 3  # and no pace from fewer
STEADY = 0.10  # a reading moves at most this share of the time left away from where the previous one pointed
FORWARD_SHARE = 1 / 3  # an evaluated image costs about a third of a trained one (a forward pass, no backward)


class _Pace:
    """Seconds per step of one kind of epoch (shrunk or full size): the median over the latest step events, so the
    first batches' one-time costs and a busy moment do not move it."""

    def __init__(self) -> None:
        self._last: tuple[int, float] | None = None  # (step, training seconds) of the previous event
        self._rates: deque[float] = deque(maxlen=PACE_WINDOW)

    def add(self, step: int, seconds: float) -> None:
        if self._last is not None and step > self._last[0]:
            self._rates.append((seconds - self._last[1]) / (step - self._last[0]))
        self._last = (step, seconds)

    def per_step(self) -> float | None:
        return statistics.median(self._rates) if len(self._rates) >= MIN_RATES else None


class TimeLeft:
    """Seconds until a run ends, its final evaluation included; None until the pace is known."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        eval_images: int,
        final_images: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """eval_images: images scored at each epoch's end (eval_subset of the test set and of any hold-out);
        final_images: images of the final scoring (the whole test set and hold-out), with config's TTA."""
        self.config, self.clock = config, clock
        self.eval_images, self.final_images = eval_images, final_images
        self._paces = {True: _Pace(), False: _Pace()}  # keyed by "a step of a shrunk lowres epoch"
        self._step = self._total = 0
        self._steps_per_epoch = 1
        self._train_s = 0.0  # training seconds at the last step event
        # Seconds and images of every scoring so far: their ratio prices the final scoring, twenty times an epoch's
        # with TTA, so one epoch's scoring alone (each varied by some 10 %) put the end a second out.
        self._scored_s, self._scored_images = 0.0, 0
        self._other_s = 0.0  # per epoch, outside steps and scoring: saving the checkpoint, the listeners
        self._last_end: tuple[float, float] | None = None  # (elapsed, training seconds) at the last EpochEnd
        self._shown: tuple[float, float] | None = None  # (clock, seconds left) of the last reading
        self._evaluated = 0  # epochs whose end-of-epoch scoring is done
        self._saving = False  # an epoch has ended and its checkpoint is being written: no step since
        self._event_at = clock()

    @classmethod
    def for_data(cls, config: TrainConfig, test_images: int, **kwargs) -> TimeLeft:
        """For a run scoring `test_images` test images (and config.validation held-out ones)."""
        held_out = config.validation
        scored = scored_per_epoch(config, test_images) + scored_per_epoch(config, held_out)
        return cls(config, eval_images=scored, final_images=test_images + held_out, **kwargs)

    def __call__(self, event: Event) -> None:
        if isinstance(event, Planned):  # a time budget chose the epochs; it leaves what is scored as it was
            self.config = event.config
            return
        self._event_at = self.clock()
        self._saving = isinstance(event, EpochEnd)
        if isinstance(event, Step):
            self._step, self._total, self._train_s = event.step, event.total_steps, event.elapsed_s
            self._steps_per_epoch = max(1, event.total_steps // self.config.epochs)
            self._paces[event.epoch <= self.config.lowres_epochs].add(event.step, event.elapsed_s)
        elif isinstance(event, EarlyScore):
            self._scored_s += event.seconds
            self._scored_images += event.images
        elif isinstance(event, EpochEnd):
            if event.eval_s > 0 and self.eval_images:
                self._scored_s += event.eval_s
                self._scored_images += self.eval_images
            if self._last_end is not None:  # the first epoch's elapsed time also holds the set-up before training
                wall = event.elapsed_s - self._last_end[0]
                self._other_s = max(0.0, wall - (self._train_s - self._last_end[1]) - event.eval_s)
            self._last_end = (event.elapsed_s, self._train_s)
            self._evaluated = event.epoch

    def seconds(self) -> float | None:
        """The time left now: the estimate, moved from the previous reading by at most STEADY of what remains."""
        estimate, now = self._estimate(), self.clock()
        if estimate is None:
            return None
        estimate = max(0.0, estimate - (now - self._event_at))  # e.g. an evaluation going on since the last event
        if self._shown is not None:
            expected = max(0.0, self._shown[1] - (now - self._shown[0]))
            estimate = min(max(estimate, expected * (1 - STEADY)), expected * (1 + STEADY))
        self._shown = (now, estimate)
        return estimate

    def _estimate(self) -> float | None:
        c = self.config
        shrunk, full = self._paces[True].per_step(), self._paces[False].per_step()
        ratio = (c.lowres_side / 32) ** 2
        if full is None and shrunk is not None:
            full = shrunk / ratio  # work scales with pixels until a full-size step is measured
        if full is None:
            return None
        shrunk = shrunk if shrunk is not None else full * ratio
        lowres_steps = self._steps_per_epoch * c.lowres_epochs
        shrunk_left = max(0, lowres_steps - self._step)
        full_left = max(0, self._total - max(self._step, lowres_steps))
        training = shrunk_left * shrunk + full_left * full
        per_image = self._scored_s / self._scored_images if self._scored_images else None
        if per_image is None:
            per_image = full / max(1, c.batch_size) * FORWARD_SHARE
        epochs_left = c.epochs - max(self._evaluated, (self._step - 1) // self._steps_per_epoch)
        final = per_image * self.final_images * views_per_image(c.tta, c.tta_shifts)
        saves = self._other_s * (1 + self._saving)  # the final model's, and the ended epoch's still being written
        return training + epochs_left * (per_image * self.eval_images + self._other_s) + final + saves
