"""The training loop: config in, events out, result back; it does no I/O of its own."""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm  # base of BatchNorm1d/2d/3d; momentum: float or None

from .augment import augment, shrink
from .config import TrainConfig
from .data import CifarData
from .devices import (
    autocast,
    describe,
    effective_threads,
    freed_memory_kept,
    resolve_device,
    resolve_precision,
    set_threads,
)
from .evaluate import Evaluation, evaluate, predict_logits
from .events import EarlyScore, EpochEnd, Failed, Finished, Listener, Step, Stopped
from .holdout import split
from .models import EpochAware, InitFromData, build_model, count_macs
from .optim import apply_schedule, build_optimizer, load_optimizer_state, lr_factor
from .preprocess import normalize

STEP_EVENTS_PER_EPOCH = 50  # loss is read back (a device sync) only this often
EARLY_FRACTIONS = (0.25, 0.5, 0.75)  # of the first epoch, where its test accuracy is scored on EARLY_IMAGES
EARLY_IMAGES = 500  # the first test images: fixed, so the points differ only by what the model learned
WHITENING_SAMPLE = 5000  # training images a model may look at before training (fastnet's whitening)
SMALL_STEP_MACS = 50_000_000  # multiply-adds per training step below which one CPU thread is fastest
# BatchNorm's running statistics otherwise come from the last few batches only (its momentum), a noisy estimate.
# Over the last 4 % of the steps they become the plain average of every batch; the learning rate there is below
# 4 % of its peak under the onecycle schedule, so the weights barely move meanwhile. On the 11-epoch `best` model,
# statistics averaged over 20,000 training images after training raised test accuracy from 90.60 % to 90.78 %.
NORM_AVERAGE_FRACTION = 0.04


@dataclass
class TrainResult:
    status: str  # "completed", "stopped" or "failed"
    model: nn.Module | None  # on the CPU, in eval mode; None when a failed save ended the run
    config: TrainConfig
    epochs_done: int
    test_accuracy: float | None  # 0..1 on the whole test set; None unless completed
    train_seconds: float
    message: str = ""
    history: list[EpochEnd] = field(default_factory=list)
    evaluation: Evaluation | None = None  # the final test-set scores when completed
    validation: Evaluation | None = None  # the final scores on the validation hold-out, when completed with one
    images_per_s: float = 0.0  # training throughput, evaluation excluded
    device: str = ""  # e.g. "cpu (bf16)"
    notes: list[str] = field(default_factory=list)  # settings the machine changed, e.g. threads lowered to its cores


@dataclass
class _Run:
    """The mutable state of one run, kept together so helpers stay small."""

    config: TrainConfig
    data: CifarData
    device: torch.device
    dtype: torch.dtype | None
    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    train_x: torch.Tensor  # on the device: the training set less its validation hold-out
    train_y: torch.Tensor
    val_x: torch.Tensor  # on the CPU, like the test set: the hold-out, (0, 3, H, W) when none
    val_y: torch.Tensor
    flip_bits: torch.Tensor | None  # (N,) bool, alternate_flip only: mirror image i in even epochs
    steps_per_epoch: int
    total_steps: int
    norm_momenta: list[tuple[_BatchNorm, float | None]]  # each BatchNorm and its own momentum, restored at the end
    notes: list[str] = field(default_factory=list)
    early_steps: frozenset[int] = frozenset()  # steps of the first epoch after which EARLY_IMAGES are scored
    step: int = 0
    start_epoch: int = 0
    train_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    @property
    def images_seen(self) -> int:
        """Training images the steps so far used: an epoch's last batch may be short, and a stop falls between
        full batches."""
        per_epoch = min(len(self.train_x), self.steps_per_epoch * self.config.batch_size)
        epochs, steps = divmod(self.step, self.steps_per_epoch)
        return epochs * per_epoch + steps * self.config.batch_size

    @property
    def norm_average_from(self) -> int:
        """The step from which BatchNorm statistics are averaged (see NORM_AVERAGE_FRACTION)."""
        return self.total_steps - max(1, round(self.total_steps * NORM_AVERAGE_FRACTION))


def train(
    config: TrainConfig,
    data: CifarData,
    *,
    stop: threading.Event | None = None,
    on_event: Listener | None = None,
    resume: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a fresh model (or continue from `resume`) and score it on the test set, and on the validation
    hold-out (the last config.validation training images, never trained on) when it keeps one.

    `resume` is an EpochEnd's `resume_state` plus the weights of that epoch under "model". A config with a time
    budget is refused: what it trains is chosen first (budget.plan), as the CLI, the dashboard and bench do.
    """
    if config.minutes:
        raise ValueError(
            f"minutes={config.minutes:g} is a time budget: choose the run it buys first, with "
            "cifar_lab.budget.plan(config, data, device).config, or set minutes=0 to train the epochs as set"
        )
    device = resolve_device(config.device)
    with freed_memory_kept(enabled=device.type == "cpu"):
        return _train(config, data, device, stop, on_event, resume)


def _train(
    config: TrainConfig,
    data: CifarData,
    device: torch.device,
    stop: threading.Event | None,
    on_event: Listener | None,
    resume: dict[str, Any] | None,
) -> TrainResult:
    started = time.perf_counter()  # data-dependent init (fastnet's whitening) counts as training time
    emit = on_event or (lambda event: None)
    stop = stop or threading.Event()
    run = _setup(config, data, device, resume)
    run.started = started
    history: list[EpochEnd] = []
    for epoch in range(run.start_epoch, config.epochs):
        outcome = _train_epoch(run, epoch, stop, emit)
        if isinstance(outcome, (Failed, Stopped)):
            emit(outcome)
            status = "failed" if isinstance(outcome, Failed) else "stopped"
            message = outcome.message if isinstance(outcome, Failed) else "stopped by request"
            return _result(run, status, len(history) + run.start_epoch, None, message, history)
        history.append(_end_epoch(run, epoch, outcome, emit))
    evaluation = _final_scores(run, data.test_x, data.test_y)
    validation = _final_scores(run, run.val_x, run.val_y) if len(run.val_x) else None
    elapsed = time.perf_counter() - run.started
    images_per_s = run.images_seen / max(run.train_seconds, 1e-9)
    held_out = validation.accuracy if validation is not None else None
    emit(Finished(evaluation.accuracy, config.epochs, elapsed, images_per_s, held_out))
    result = _result(run, "completed", config.epochs, evaluation.accuracy, "", history, elapsed)
    result.evaluation, result.validation = evaluation, validation
    return result


@dataclass(frozen=True)
class Calibration:
    """What a few real steps of a config cost on this machine (budget.py plans a time budget with it)."""

    setup_s: float  # building the model and its data-dependent start, before the first step
    step_s: float  # one training step: augmentation, forward, backward, the optimizer
    score_s: float  # scoring one image, one view (no test-time augmentation)
    save_s: float  # an epoch's copy of the weights and optimizer state, serialised as its checkpoint is
    later_step_s: float  # a step of the last epoch (fastnet's then skip the frozen whitening bias's gradient)


class MeasuringStopped(Exception):
    """A stop asked for while a time budget was being measured: the run ends before its first step."""


def calibrate(
    config: TrainConfig,
    data: CifarData,
    device: torch.device,
    *,
    steps: int,
    shrunk: bool,
    stop: threading.Event | None = None,
) -> Calibration:
    """Time `steps` training steps of `config` (after one warm-up step, whose one-time costs are left out) on the
    first images of `data`, shrunk to config.lowres_side when `shrunk`, and the scoring of a batch of test images.
    The steps run in the training loop itself, on a model of their own: nothing is kept. The run that follows seeds
    itself anew, so its result does not depend on this. Memory is allocated as train() allocates it: returned to
    the system after each step, the steps would take longer than the run's. A `stop` set ends it within a step,
    raising MeasuringStopped."""
    with freed_memory_kept(enabled=device.type == "cpu"):
        return _calibrate(config, data, device, steps=steps, shrunk=shrunk, stop=stop or threading.Event())


def _calibrate(
    config: TrainConfig, data: CifarData, device: torch.device, *, steps: int, shrunk: bool, stop: threading.Event
) -> Calibration:
    sample = dataclasses.replace(
        data,
        train_x=data.train_x[: (steps + 1) * config.batch_size],
        train_y=data.train_y[: (steps + 1) * config.batch_size],
    )
    started = time.perf_counter()
    run = _setup(config.replace(validation=0), sample, device, None)
    run.early_steps = frozenset()  # the steps are timed alone; the early scores are predicted apart
    setup_s = time.perf_counter() - started
    first = 0 if shrunk else config.lowres_epochs  # the loop shrinks the images of epochs below lowres_epochs
    step_s = _time_steps(run, first, stop)
    # fastnet's later epochs skip the whitening bias's gradient (EpochAware): their steps are timed apart
    later = _time_steps(run, config.epochs - 1, stop) if isinstance(run.model, EpochAware) and not shrunk else step_s
    images = data.test_x[: min(len(data.test_x), max(config.batch_size, 256))]
    started = time.perf_counter()
    predict_logits(run.model, images, normalize=config.normalize, device=device, dtype=run.dtype)
    score_s = (time.perf_counter() - started) / max(1, len(images))
    started = time.perf_counter()
    torch.save({"model": _cpu_state(run.model), "resume": _resume_state(run, 1)}, io.BytesIO())
    return Calibration(setup_s, step_s, score_s, time.perf_counter() - started, later)


def _time_steps(run: _Run, epoch: int, stop: threading.Event) -> float:
    """Seconds per step of `epoch` over the run's sample, its first step (the warm-up) left out; a sample of one
    step is passed over twice, the first pass being the warm-up."""
    marks = list[Step]()
    for _ in range(2):
        marks.clear()
        outcome = _train_epoch(run, epoch, stop, lambda e: marks.append(e) if isinstance(e, Step) else None)
        if isinstance(outcome, Stopped):
            raise MeasuringStopped()
        if isinstance(outcome, Failed):
            raise ValueError(f"timing this config on this machine failed: {outcome.message}")
        if len(marks) >= 2:  # a step event after every step: STEP_EVENTS_PER_EPOCH exceeds the sample's steps
            return (marks[-1].elapsed_s - marks[0].elapsed_s) / (marks[-1].step - marks[0].step)
    assert isinstance(outcome, tuple)
    return outcome[2] / run.steps_per_epoch


def _final_scores(run: _Run, x: torch.Tensor, y: torch.Tensor) -> Evaluation:
    """Every image of (x, y) scored as the run's config asks (test-time augmentation included)."""
    c = run.config
    return evaluate(
        run.model,
        x,
        y,
        classes=run.data.classes,
        normalize=c.normalize,
        tta=c.tta,
        shifts=c.tta_shifts,
        device=run.device,
        dtype=run.dtype,
    )


def _setup(config: TrainConfig, data: CifarData, device: torch.device, resume: dict[str, Any] | None) -> _Run:
    dtype = resolve_precision(config.precision, device)
    torch.manual_seed(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    if len(data.train_x) < 2:
        raise ValueError("the training set needs at least 2 images")
    held = split(data.train_x, data.train_y, config.validation)  # refused with the fix when it leaves too few
    model = build_model(config, len(data.classes))
    threads, thread_note = effective_threads(_auto_threads(config, model))
    set_threads(threads)
    model = model.to(device).to(memory_format=torch.channels_last)
    train_x, train_y = held.train_x.to(device), held.train_y.to(device)
    if resume is not None:  # before the optimizer: a checkpoint of an older layout may leave out a layer
        model.load_state_dict(resume["model"])
    elif isinstance(model, InitFromData):
        sample = train_x[torch.randperm(len(train_x), generator=generator, device=device)[:WHITENING_SAMPLE]]
        model.init_from_data(normalize(sample, config.normalize))
    optimizer = build_optimizer(model, config)
    steps = steps_per_epoch(len(train_x), config.batch_size)
    norm_momenta = [(m, m.momentum) for m in _batch_norms(model)]
    run = _Run(
        config,
        data,
        device,
        dtype,
        model,
        optimizer,
        generator,
        train_x,
        train_y,
        held.val_x,
        held.val_y,
        _flip_bits(config, len(train_x), device),
        steps,
        steps * config.epochs,
        norm_momenta,
        notes=[thread_note] if thread_note else [],
        early_steps=early_steps(steps, len(data.test_x)),
    )
    if resume is not None:
        _restore(run, resume)
    return run


def _flip_bits(config: TrainConfig, n: int, device: torch.device) -> torch.Tensor | None:
    """One fixed coin per image for alternate_flip, from its own seeded generator so a resumed run redraws them."""
    if not (config.flip and config.alternate_flip):
        return None
    coins = torch.Generator().manual_seed(config.seed + 1)
    return (torch.rand(n, generator=coins) < 0.5).to(device)


def _auto_threads(config: TrainConfig, model: nn.Module) -> int:
    """Every core, except for tiny steps (the tutorial's batch of 4), where syncing threads costs more than it
    saves: measured 2.2 ms/step on one thread against far slower on two when the cores are busy."""
    if config.threads or config.device not in ("auto", "cpu"):
        return config.threads
    return 1 if count_macs(model) * config.batch_size < SMALL_STEP_MACS else 0


def _train_epoch(run: _Run, epoch: int, stop: threading.Event, emit: Listener):
    """One pass over the shuffled training set; returns (loss, acc, seconds) or a Failed/Stopped event."""
    c, model = run.config, run.model
    if isinstance(model, EpochAware):  # fastnet freezes its whitening bias after the first third of the epochs
        model.start_epoch(epoch, c.epochs)
    model.train()
    if run.step > run.norm_average_from:  # resumed inside the window: the saved statistics are a running average
        _average_norm_statistics(model, restart=False)
    n = len(run.train_x)
    order = torch.randperm(n, generator=run.generator, device=run.device)
    loss_sum = torch.zeros((), device=run.device)
    correct = torch.zeros((), device=run.device, dtype=torch.long)
    seen, every = 0, max(1, run.steps_per_epoch // STEP_EVENTS_PER_EPOCH)
    t0 = t_mark = time.perf_counter()
    images_mark = 0
    for i in range(run.steps_per_epoch):
        if stop.is_set():
            run.train_seconds += time.perf_counter() - t0
            return Stopped(epoch, run.step)
        if run.step == run.norm_average_from:
            _average_norm_statistics(model, restart=True)
        idx = order[i * c.batch_size : (i + 1) * c.batch_size]
        x = augment(
            run.train_x[idx],
            flip=c.flip and run.flip_bits is None,
            crop_pad=c.crop_pad,
            rotate=c.rotate,
            cutout=c.cutout,
            generator=run.generator,
        )
        if run.flip_bits is not None:  # each image flips every other epoch: seen both ways in any two epochs
            mirror = run.flip_bits[idx] ^ bool(epoch % 2)
            x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(3), x)
        x = normalize(x, c.normalize)
        if epoch < c.lowres_epochs:  # fewer pixels, less work; the full-size epochs after it adapt the net back
            x = shrink(x, c.lowres_side)
        x = x.contiguous(memory_format=torch.channels_last)
        y = run.train_y[idx]
        lr = apply_schedule(run.optimizer, lr_factor(c.schedule, run.step, run.total_steps, c.warmup))
        with autocast(run.device, run.dtype):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=c.label_smoothing)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.step += 1
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if i % every == every - 1 or i == run.steps_per_epoch - 1:
            value = loss.item()
            if not math.isfinite(value):
                run.train_seconds += time.perf_counter() - t0
                return Failed(_diverged_message(run.step, c), run.step)
            now = time.perf_counter()
            rate = (seen - images_mark) / max(now - t_mark, 1e-9)
            t_mark, images_mark = now, seen
            elapsed = run.train_seconds + now - t0
            emit(Step(run.step, run.total_steps, epoch + 1, value, lr, rate, elapsed))
        if epoch == 0 and i + 1 in run.early_steps:
            early = _early_score(run)
            t0, t_mark = t0 + early.seconds, t_mark + early.seconds  # scoring, not training: out of its time
            emit(early)
    seconds = time.perf_counter() - t0
    run.train_seconds += seconds
    return loss_sum.item() / seen, correct.item() / seen, seconds


def _average_norm_statistics(model: nn.Module, *, restart: bool) -> None:
    """From now on each BatchNorm's running statistics are the plain average of the batches it sees."""
    for module in _batch_norms(model):
        if restart:
            module.reset_running_stats()
        module.momentum = None


def _batch_norms(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))]


def _diverged_message(step: int, c: TrainConfig) -> str:
    return (
        f"diverged at step {step}: the loss became infinite or NaN. Lower the learning rate "
        f"(lr={c.lr:g}; try {c.lr / 10:g}) or turn on batchnorm / a warmup."
    )


def _end_epoch(run: _Run, epoch: int, outcome: tuple[float, float, float], emit: Listener) -> EpochEnd:
    train_loss, train_acc, seconds = outcome
    c, data = run.config, run.data
    t0 = time.perf_counter()
    test_loss, test_acc = _curve_point(run, data.test_x, data.test_y)
    val_loss, val_acc = _curve_point(run, run.val_x, run.val_y) if len(run.val_x) else (None, None)
    eval_s = time.perf_counter() - t0
    event = EpochEnd(
        epoch + 1,
        c.epochs,
        train_loss,
        train_acc,
        test_loss,
        test_acc,
        seconds,
        time.perf_counter() - run.started,
        _cpu_state(run.model),
        _resume_state(run, epoch + 1),
        val_loss,
        val_acc,
        eval_s,
    )
    emit(event)
    return event


def steps_per_epoch(images: int, batch_size: int) -> int:
    """A last batch of one image would break BatchNorm; it is dropped, so each epoch sees N - 1 at worst."""
    return max(1, images // batch_size + (images % batch_size > 1))


def early_steps(steps_per_epoch: int, test_images: int) -> frozenset[int]:
    """Steps of the first epoch after which its test accuracy is scored early: none without a test set, or where an
    epoch is too short to need it."""
    if not test_images or steps_per_epoch < 2 * len(EARLY_FRACTIONS):
        return frozenset()
    return frozenset(max(1, round(f * steps_per_epoch)) for f in EARLY_FRACTIONS) - {steps_per_epoch}


def early_scored(steps_per_epoch: int, test_images: int) -> int:
    """Test images scored early in a run (early_steps), for what a run is predicted to take."""
    return len(early_steps(steps_per_epoch, test_images)) * min(EARLY_IMAGES, test_images)


def _early_score(run: _Run) -> EarlyScore:
    """The first epoch's test accuracy so far (early_steps)."""
    started = time.perf_counter()
    x, y = run.data.test_x[:EARLY_IMAGES], run.data.test_y[:EARLY_IMAGES]
    logits = predict_logits(run.model, x, normalize=run.config.normalize, device=run.device, dtype=run.dtype)
    accuracy = float((logits.argmax(1) == y.cpu()).float().mean())
    seconds = time.perf_counter() - started
    return EarlyScore(run.step, run.step / run.steps_per_epoch, accuracy, seconds, len(y))


def scored_per_epoch(config: TrainConfig, images: int) -> int:
    """Of `images` (a test set, a hold-out), how many are scored after each epoch: the first eval_subset, all at 0."""
    return min(images, config.eval_subset) if config.eval_subset else images


def _curve_point(run: _Run, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Loss and accuracy (0..1) on the first eval_subset images of (x, y), all when 0: plain views, no TTA."""
    c = run.config
    x, y = x[: scored_per_epoch(c, len(x))], y[: scored_per_epoch(c, len(y))]
    logits = predict_logits(run.model, x, normalize=c.normalize, device=run.device, dtype=run.dtype)
    return F.cross_entropy(logits, y.cpu()).item(), float((logits.argmax(1) == y.cpu()).float().mean())


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _resume_state(run: _Run, epochs_done: int) -> dict[str, Any]:
    """What a later run needs to continue exactly from here (CPU copies)."""
    return {
        "epoch": epochs_done,
        "step": run.step,
        "train_seconds": run.train_seconds,
        "optimizer": _to_cpu(run.optimizer.state_dict()),
        "generator": run.generator.get_state().cpu(),
        "torch_rng": torch.get_rng_state(),
        # Dropout on a GPU draws from the GPU's own generator.
        "cuda_rng": torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None,
    }


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _restore(run: _Run, resume: dict[str, Any]) -> None:
    # The weights are in already (_setup). The optimizer's load_state_dict keeps the given CPU tensors and would
    # update the caller's copy in place.
    load_optimizer_state(run.optimizer, copy.deepcopy(resume["optimizer"]))
    run.generator.set_state(resume["generator"])
    torch.set_rng_state(resume["torch_rng"])
    if run.device.type == "cuda" and resume.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(resume["cuda_rng"], run.device)
    run.start_epoch, run.step = int(resume["epoch"]), int(resume["step"])
    run.train_seconds = float(resume.get("train_seconds", 0.0))


def _result(
    run: _Run,
    status: str,
    epochs_done: int,
    accuracy: float | None,
    message: str,
    history: list[EpochEnd],
    elapsed: float | None = None,
) -> TrainResult:
    for module, momentum in run.norm_momenta:
        module.momentum = momentum
    model = run.model.to("cpu").eval()
    seconds = elapsed if elapsed is not None else time.perf_counter() - run.started
    images_per_s = run.images_seen / max(run.train_seconds, 1e-9)
    return TrainResult(
        status,
        model,
        run.config,
        epochs_done,
        accuracy,
        seconds,
        message,
        history,
        images_per_s=images_per_s,
        device=describe(run.device, run.dtype),
        notes=list(run.notes),
    )
