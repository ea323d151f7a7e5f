"""A time budget: time the run's own model, batch and precision on this machine, then pick the epochs (and for
fastnet the width and the shrunk first epochs) so that the run, its final scores included, ends within it.

The order of preference keeps the recipe's length first: a schedule cut short costs more than a narrower net or
a first epoch on smaller images (docs/benchmarks.md: width 24 for 3 epochs, 2 of them at 24x24, beat width 24 for 2
full-size epochs, 83.53 % against 82.95 %).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .config import RUN_LENGTH, SETTINGS, TrainConfig, cli_setting
from .data import CifarData
from .evaluate import views_per_image
from .train import Calibration, calibrate, early_scored, scored_per_epoch, steps_per_epoch

SHRUNK_SIDE = 24  # the side of the shrunk epochs a budget adds: about half a full-size step's time here
WIDTH_STEP = 16  # fastnet widths the budget picks among: multiples of 16 ran faster per multiply-add on these CPUs
MEASURED_STEPS = 3  # timed steps per measurement, after as many warm-up ones
MOST_SHRUNK = 1 / 3  # of the epochs, at most, on shrunk images
MOST_EPOCHS = 2  # times the recipe's epochs: past that a wider fastnet is tried before more epochs
MOST_WIDTHS = 3  # widths measured at most: each measurement spends the budget
PLAN_SHARE = 0.97  # of the time left after measuring, what the run is planned to take: room for the noise
# A shrunk step takes at least this share of a full-size one per pixel: a bound for skipping a measurement that
# cannot change the choice (at 24x24, 0.45 of a full step against the 0.5-0.55 measured here).
SHRUNK_PIXEL_SHARE = 0.8


class BudgetTooSmall(ValueError):
    """Even the smallest sensible run does not fit the minutes given."""


@dataclass(frozen=True)
class Plan:
    recipe: TrainConfig  # what was asked, with its minutes
    config: TrainConfig  # what trains: minutes 0, the epochs, width and shrunk epochs chosen
    budget_s: float
    measured_s: float  # spent timing this machine, part of the budget
    predicted_s: float  # the run's own predicted seconds, after the measuring

    def _chosen(self) -> list[str]:
        return [n for n in RUN_LENGTH if getattr(self.config, n) != getattr(self.recipe, n)]

    def command(self) -> str:
        """The flags that reproduce this run without a budget, e.g. `--epochs 10 --width 48 --minutes 0`."""
        return " ".join([*(cli_setting(n, getattr(self.config, n)) for n in self._chosen()), "--minutes 0"])

    def in_words(self) -> str:
        """The same for the Train form, e.g. "Epochs 10, width 48 and Time budget (minutes) 0"."""
        named = [f"{SETTINGS[n].form_label(n)} {getattr(self.config, n):g}" for n in [*self._chosen(), "minutes"]]
        return ", ".join(named[:-1]) + (" and " if len(named) > 1 else "") + named[-1]

    def summary(self, *, for_page: bool = False) -> str:
        return (
            f"{self.budget_s / 60:g} min budget: {self.measured_s:.1f} s measuring this machine, then "
            f"{self.config.epochs} epoch(s)"
            + (
                f" ({self.config.lowres_epochs} at {self.config.lowres_side}x{self.config.lowres_side})"
                if self.config.lowres_epochs
                else ""
            )
            + (f" at width {self.config.width}" if self.config.arch == "fastnet" else "")
            + f", predicted {self.predicted_s:.0f} s. The same run without a budget: "
            + (f"set {self.in_words()} on the Train form." if for_page else self.command())
        )


def predict_seconds(
    config: TrainConfig, cost: Calibration, shrunk_step_s: float, train_images: int, test_images: int
) -> float:
    """Seconds of a run of `config` from costs measured here: its steps, its scoring after each epoch and at the end
    (with the test-time views it asks for), its checkpoints."""
    steps = steps_per_epoch(train_images, config.batch_size)
    shrunk = config.lowres_epochs
    early = max(shrunk, bias_epochs(config))  # full-size epochs before it are timed by step_s, the rest later_step_s
    full_early = early - shrunk
    training = steps * (shrunk * shrunk_step_s + full_early * cost.step_s + (config.epochs - early) * cost.later_step_s)
    scored = scored_per_epoch(config, test_images) + scored_per_epoch(config, config.validation)
    per_epoch = scored * cost.score_s + cost.save_s
    final = (test_images + config.validation) * cost.score_s * views_per_image(config.tta, config.tta_shifts)
    first_epoch_scores = early_scored(steps, test_images) * cost.score_s
    return cost.setup_s + training + first_epoch_scores + config.epochs * per_epoch + final + cost.save_s


def bias_epochs(config: TrainConfig) -> int:
    """Epochs whose steps also train fastnet's whitening bias (fastnet.FastNet.start_epoch); 0 for other nets."""
    if config.arch != "fastnet":
        return 0
    return min(config.epochs, max(1, round(config.epochs * config.whiten_bias_fraction)))


def measured_seconds(
    config: TrainConfig,
    data: CifarData,
    device: torch.device,
    *,
    measure: Callable[..., Calibration] = calibrate,
    stop: threading.Event | None = None,
) -> float:
    """Seconds a run of `config` as set (no budget) would take here, from a few of its steps timed now: what the
    Train page shows before a first run of a model has measured it."""
    recipe = config.replace(minutes=0.0)
    cost = measure(recipe.replace(lowres_epochs=0), data, device, steps=MEASURED_STEPS, shrunk=False, stop=stop)
    shrunk = 0.0
    if recipe.lowres_epochs:
        shrunk = measure(recipe, data, device, steps=MEASURED_STEPS, shrunk=True, stop=stop).step_s
    return predict_seconds(recipe, cost, shrunk, len(data.train_x) - recipe.validation, len(data.test_x))


def plan(
    config: TrainConfig,
    data: CifarData,
    device: torch.device,
    *,
    clock: Callable[[], float] = time.perf_counter,
    measure: Callable[..., Calibration] = calibrate,
    stop: threading.Event | None = None,
) -> Plan:
    """The run to train within config.minutes; raises BudgetTooSmall, saying by how much, when none fits, and
    train.MeasuringStopped within a step of `stop` being set."""
    started, budget = clock(), config.minutes * 60
    train_images, test_images = len(data.train_x) - config.validation, len(data.test_x)
    recipe = config.replace(minutes=0.0)
    full_costs: dict[int, Calibration] = {}  # by width
    shrunk_steps: dict[tuple[int, int], float] = {}  # by (width, side): measured only where a candidate shrinks

    def full_cost(width: int) -> Calibration:
        if width not in full_costs:
            full = recipe.replace(width=width, lowres_epochs=0)
            full_costs[width] = measure(full, data, device, steps=MEASURED_STEPS, shrunk=False, stop=stop)
        return full_costs[width]

    def seconds(candidate: TrainConfig) -> float:
        cost, shrunk_step = full_cost(candidate.width), 0.0
        if candidate.lowres_epochs:
            key = (candidate.width, candidate.lowres_side)
            if key not in shrunk_steps:
                shrunk_steps[key] = measure(
                    candidate, data, device, steps=MEASURED_STEPS, shrunk=True, stop=stop
                ).step_s
            shrunk_step = shrunk_steps[key]
        return predict_seconds(candidate, cost, shrunk_step, train_images, test_images)

    def fastest(candidate: TrainConfig) -> float:
        """At most seconds(candidate), with no shrunk steps measured."""
        cost = full_cost(candidate.width)
        pixels = (candidate.lowres_side / 32) ** 2 if candidate.lowres_epochs else 0.0
        step = cost.step_s * pixels * SHRUNK_PIXEL_SHARE
        return predict_seconds(candidate, cost, step, train_images, test_images)

    def left() -> float:
        return (budget - (clock() - started)) * PLAN_SHARE

    narrower, wider = _widths(recipe)
    chosen = choose(recipe, seconds, left, narrower=narrower, wider=wider, fastest=fastest)
    measured = clock() - started
    if chosen is None:
        smallest = recipe.replace(epochs=1, lowres_epochs=0, width=(narrower[: MOST_WIDTHS - 1] or [recipe.width])[-1])
        one = seconds(smallest)
        raise BudgetTooSmall(
            f"{config.minutes:g} min is too short here: even one epoch"
            + (f" at width {smallest.width}" if smallest.arch == "fastnet" else "")
            + f" takes about {one:.0f} s on this machine, after {measured:.0f} s of measuring it: "
            f"{one + measured - budget:.0f} s more than the budget. Give more minutes, or choose a smaller model "
            "or batch."
        )
    return Plan(config, chosen, budget, measured, seconds(chosen))


def choose(
    recipe: TrainConfig,
    seconds: Callable[[TrainConfig], float],
    left: Callable[[], float],
    *,
    narrower: list[int],
    wider: list[int],
    fastest: Callable[[TrainConfig], float] | None = None,
) -> TrainConfig | None:
    """The preferred run that fits in left() seconds: the recipe's epochs at its width, with up to a third of them
    shrunk if needed; else a narrower width; else fewer epochs. With time to spare: more epochs, up to MOST_EPOCHS
    times the recipe's, then a wider width. None when not even one epoch fits. `fastest`, a bound below seconds
    that measures less, skips candidates that cannot fit."""
    target, fastest = recipe.epochs, fastest or seconds
    most = _most_epochs(recipe, seconds, left)
    if most >= target:
        best = recipe.replace(epochs=most)
        for width in wider[: MOST_WIDTHS - 1]:
            if most <= MOST_EPOCHS * target:
                break
            trial = recipe.replace(width=width)
            most = _most_epochs(trial, seconds, left)
            if most < target:
                break
            best = trial.replace(epochs=most)
        return best
    at = recipe
    for width in [recipe.width, *narrower[: MOST_WIDTHS - 1]]:
        at = recipe.replace(width=width)
        if (most := _most_epochs(at, seconds, left)) >= target:
            return at.replace(epochs=most)
        if (shrunk := _shrunk_to_fit(at, target, seconds, left, fastest)) is not None:
            return shrunk
    for epochs in range(target - 1, 0, -1):
        if (shorter := _shrunk_to_fit(at, epochs, seconds, left, fastest)) is not None:
            return shorter
    return None


def _runs_of(at: TrainConfig, epochs: int, shrunk: int) -> TrainConfig:
    if not shrunk:
        return at.replace(epochs=epochs, lowres_epochs=min(at.lowres_epochs, epochs - 1))
    side = at.lowres_side if at.lowres_epochs else SHRUNK_SIDE
    return at.replace(epochs=epochs, lowres_epochs=shrunk, lowres_side=side)


def _most_epochs(at: TrainConfig, seconds: Callable[[TrainConfig], float], left_now: Callable[[], float]) -> int:
    """The most epochs of `at` (its own shrunk epochs kept) that fit in the time left; 0 when one does not."""
    seconds(_runs_of(at, 1, 0))  # measures a width not measured yet: that time is gone from what is left
    left = left_now()
    low, high = 0, int(SETTINGS["epochs"].high or 1)
    while low < high:  # seconds grow with the epochs
        mid = (low + high + 1) // 2
        if seconds(_runs_of(at, mid, 0)) <= left:
            low = mid
        else:
            high = mid - 1
    return low


def _shrunk_to_fit(
    at: TrainConfig,
    epochs: int,
    seconds: Callable[[TrainConfig], float],
    left_now: Callable[[], float],
    fastest: Callable[[TrainConfig], float],
) -> TrainConfig | None:
    """`epochs` epochs of `at` with the fewest shrunk first epochs (at most MOST_SHRUNK of them) that fit."""
    most = 0 if at.arch == "tutorial" else max(at.lowres_epochs, math.floor(epochs * MOST_SHRUNK))  # 32x32 only
    if fastest(_runs_of(at, epochs, min(most, epochs - 1))) > left_now():
        return None
    for shrunk in range(min(at.lowres_epochs, most), min(most, epochs - 1) + 1):
        candidate = _runs_of(at, epochs, shrunk)
        if seconds(candidate) <= left_now():  # after seconds(): a first shrunk candidate measures shrunk steps
            return candidate
    return None


def _widths(recipe: TrainConfig) -> tuple[list[int], list[int]]:
    """fastnet's widths to try below and above the recipe's, nearest first: multiples of WIDTH_STEP."""
    if recipe.arch != "fastnet":
        return [], []
    below = [w for w in range(recipe.width - 1, WIDTH_STEP - 1, -1) if w % WIDTH_STEP == 0]
    above = [w for w in range(recipe.width + 1, 2 * recipe.width + 1) if w % WIDTH_STEP == 0]
    return below, above
