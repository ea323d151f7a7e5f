"""The time left of a run, on a simulated clock: close to the truth after the first tenth, and steady."""

from __future__ import annotations

import itertools
import random

import pytest

from cifar_lab.config import TrainConfig
from cifar_lab.evaluate import views_per_image
from cifar_lab.events import EpochEnd, Finished, Step
from cifar_lab.time_left import TimeLeft

STEPS_PER_EPOCH, EVENTS_PER_EPOCH = 97, 50
EVAL_IMAGES, FINAL_IMAGES = 2_000, 10_000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(config: TrainConfig, *, step_s: float, seed: int = 0):
    """The events a run emits and when: slow first steps, shrunk epochs cheaper about as their pixels, jittered steps,
    an evaluation and a checkpoint save after every epoch, the final scoring with TTA. Returns (events, end)."""
    rng = random.Random(seed)
    shrunk_cost = (config.lowres_side / 32) ** 2 * rng.uniform(0.8, 1.05)  # measured 0.81-1.05 of the pixel ratio
    every = max(1, STEPS_PER_EPOCH // EVENTS_PER_EPOCH)
    per_image = step_s / config.batch_size / 3 * rng.uniform(0.8, 1.2)
    t, train_s, step, events = 3.0, 0.0, 0, []  # three seconds of set-up before the first step
    total = STEPS_PER_EPOCH * config.epochs
    for epoch in range(config.epochs):
        shrunk = epoch < config.lowres_epochs
        for i in range(STEPS_PER_EPOCH):
            cost = step_s * (shrunk_cost if shrunk else 1.0) * rng.uniform(0.85, 1.15)
            cost += 1.5 if step < 3 else 0.0  # one-time costs of the first batches
            t, train_s, step = t + cost, train_s + cost, step + 1
            if i % every == every - 1 or i == STEPS_PER_EPOCH - 1:
                events.append((t, Step(step, total, epoch + 1, 1.0, 0.1, 100.0, train_s)))
        eval_s = per_image * EVAL_IMAGES
        t += eval_s
        events.append((t, EpochEnd(epoch + 1, config.epochs, 1.0, 0.5, 1.0, 0.5, 1.0, t, eval_s=eval_s)))
        t += 0.4  # the listeners: the checkpoint of this epoch
    t += per_image * FINAL_IMAGES * views_per_image(config.tta, config.tta_shifts)
    events.append((t, Finished(0.9, config.epochs, t, 100.0)))
    return events, t + 0.4  # the final model's save


def readings(config: TrainConfig, events, end: float, every_s: float = 1.0):
    """(time, seconds left as read, true seconds left) once a second, events fed as they happen."""
    clock = Clock()
    left = TimeLeft(config, eval_images=EVAL_IMAGES, final_images=FINAL_IMAGES, clock=clock)
    out, pending = [], list(events)
    while clock.now < end:
        clock.now = min(clock.now + every_s, end)
        while pending and pending[0][0] <= clock.now:
            at, event = pending.pop(0)
            clock.now, saved = at, clock.now
            left(event)
            clock.now = saved
        value = left.seconds()
        if value is not None and clock.now < end:
            out.append((clock.now, value, end - clock.now))
    return out


def check(seen, after_s: float) -> None:
    """Within 15 % of the true time left from `after_s` on, and no reading jumps by more than 15 % of what remains
    from where the previous one pointed."""
    later = [(t, shown, true) for t, shown, true in seen if t >= after_s and true >= 2.0]
    assert later, "no readings to check"
    worst = max(abs(shown - true) / true for _, shown, true in later)
    assert worst <= 0.15, f"off by {worst:.0%} of what remained"
    for (t0, a, _), (t1, b, true) in itertools.pairwise(later):
        expected = a - (t1 - t0)
        assert abs(b - expected) <= 0.15 * max(expected, true), (t1, a, b)


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(arch="fastnet", epochs=10, batch_size=512, tta=True),
        TrainConfig(arch="cnn", epochs=4, batch_size=128, tta=True, tta_shifts=True),
        TrainConfig(arch="cnn", epochs=30, batch_size=256),
    ],
    ids=["tta", "shifts", "many-epochs"],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_after_the_first_tenth_the_time_left_is_within_15_percent_and_never_jumps(config, seed):
    events, end = simulate(config, step_s=0.08, seed=seed)
    check(readings(config, events, end), after_s=0.1 * end)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_with_shrunk_epochs_the_time_left_holds_once_a_full_size_epoch_has_begun(seed):
    """Before then the full-size pace is inferred from the shrunk one by pixels, which measured 0.81-1.05 of the
    truth on the 2-core Zen 4 (fastnet widths 24 and 32, bf16 and fp32, 24x24 against 32x32)."""
    config = TrainConfig(arch="fastnet", epochs=10, batch_size=512, lowres_epochs=3, lowres_side=24, tta=True)
    events, end = simulate(config, step_s=0.08, seed=seed)
    first_full = next(t for t, e in events if isinstance(e, Step) and e.epoch > config.lowres_epochs)
    check(readings(config, events, end), after_s=first_full)


def test_nothing_is_said_before_the_pace_is_measured():
    config = TrainConfig(arch="cnn", epochs=2, batch_size=32)
    left = TimeLeft(config, eval_images=100, final_images=100, clock=Clock())
    assert left.seconds() is None
    left(Step(1, 20, 1, 2.3, 0.1, 10.0, 5.0))  # the first step, with its one-time costs
    assert left.seconds() is None


def test_the_final_scoring_is_priced_by_every_scoring_so_far_not_the_last_one_alone():
    from cifar_lab.events import EarlyScore

    config = TrainConfig(arch="fastnet", epochs=2, batch_size=512, tta=True)
    clock = Clock()
    left = TimeLeft(config, eval_images=1_000, final_images=10_000, clock=clock)
    for step in range(1, 6):
        clock.now = step * 0.1
        left(Step(step, 10, 1, 1.0, 0.1, 100.0, step * 0.1))
    left(EarlyScore(5, 0.5, 0.4, seconds=0.115, images=500))  # 0.23 ms an image
    left(EpochEnd(1, 2, 1.0, 0.5, 1.0, 0.5, 0.5, 1.0, eval_s=0.20))  # 0.20 ms
    for step in range(6, 11):
        clock.now = 1.0 + (step - 5) * 0.1
        left(Step(step, 10, 2, 1.0, 0.1, 100.0, step * 0.1))
    left(EpochEnd(2, 2, 1.0, 0.5, 1.0, 0.5, 0.5, 2.0, eval_s=0.26))  # 0.26 ms: this one alone would price the end
    per_image = (0.115 + 0.20 + 0.26) / 2_500
    final = per_image * 10_000 * views_per_image(config.tta, config.tta_shifts)
    assert left._estimate() == pytest.approx(final + 2 * left._other_s)  # the final scoring and the last saves
