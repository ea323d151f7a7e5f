"""Hyperparameter sweeps with Ray Tune: every trial is a run in the store, tagged with its sweep, trained wherever
the cluster has room and compared on the validation hold-out, never the test set; ASHA ends weak trials early.

Tune decides which trials run and when; each trial's run is still owned at home by runner.TrainingRun, fed by the
trial's events through the cluster's mailbox (cluster.py), so checkpoints and records are written here as for any
run. Imported only when Ray is asked for.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from . import cluster
from .config import SETTINGS, TrainConfig
from .data import CifarData
from .events import EpochEnd, Event, Listener
from .holdout import for_class
from .runner import TrainingRun, new_run
from .runs import RunStore, RunStoreError, new_run_id
from .sweep_record import LAST_EPOCH, Trial, best_of, record_sweep, trial_of
from .sweep_space import Param, check_space
from .train import TrainResult

log = logging.getLogger(__name__)
# Tune's own console output (a banner, TensorBoard hints) would mix with the sweep's lines on stdout.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
SCHEDULERS = ("fifo", "asha")
METRIC = "val_accuracy"  # what Tune compares: accuracy on the hold-out after each epoch
OPEN_ENDED_EPOCHS = 100  # ASHA's horizon for trials whose epochs a time budget chooses
ASHA_STOP = "ended early by ASHA: its validation accuracy trailed the other trials' at a checkpoint epoch"


@dataclass(frozen=True)
class SweepSpec:
    base: TrainConfig  # the preset and every fixed flag
    params: tuple[Param, ...]
    samples: int = 1  # each grid point (or draw from the ranges) this many times
    scheduler: str = "fifo"  # fifo: every trial to the end; asha: weak ones stopped early
    preset: str = ""
    owner: str = ""
    data_source: str | None = None

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler {self.scheduler!r} is unknown; choose one of: {', '.join(SCHEDULERS)}")
        if self.samples < 1:
            raise ValueError(f"samples={self.samples} is not valid; it must be 1 or more")
        check_space(self.base, list(self.params))


class Sweep:
    """One sweep's life at home. run() blocks until every trial has ended; stop() and stop_trial() may be called
    from any thread meanwhile, and trials() shows the trials so far."""

    def __init__(
        self,
        spec: SweepSpec,
        data: CifarData,
        *,
        folder: str | Path,
        store: RunStore,
        address: str,
        on_trial: Callable[[str, Trial], None] | None = None,
        listeners: tuple[Listener, ...] = (),
    ) -> None:
        """on_trial(what, trial): told "started" and "ended" for each trial, from the thread that saw it;
        `listeners` hear every trial's events as they arrive home."""
        self.id = f"sweep-{new_run_id()}"
        self.spec = dataclasses.replace(spec, base=_with_holdout(spec.base, data))
        self.data, self.folder, self.store, self.address = data, Path(folder), store, address
        self._on_trial, self._listeners = on_trial, listeners
        self._lock = threading.Lock()
        self._runs: dict[str, str] = {}  # Tune's trial id -> run id
        self._params: dict[str, dict[str, Any]] = {}  # run id -> swept values
        self._stops: dict[str, threading.Event] = {}  # run id -> its stop
        self._last: dict[str, EpochEnd] = {}  # run id -> its last epoch, for trials that do not complete
        self._endings: dict[str, cluster.Ending] = {}  # trial id -> why Tune ended it
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.started = 0.0  # when run() began
        self.seconds = 0.0

    # --- control ---
    def run(self) -> dict[str, Any]:
        """Run every trial; returns summary()."""
        self.started = time.time()
        cluster.connect(self.address)
        spec = self.spec
        record_sweep(
            self.store, self.id, preset=spec.preset, params=[p.text() for p in spec.params], scheduler=spec.scheduler
        )
        scratch = tempfile.mkdtemp(prefix="cifar_lab-tune-")  # Tune's own bookkeeping: the runs live in the store
        try:
            self._tuner(scratch).fit()
        finally:
            for thread in self._threads:
                thread.join()
            shutil.rmtree(scratch, ignore_errors=True)
            self.seconds = time.time() - self.started
        return self.summary()

    def stop(self) -> None:
        """Stop every trial (each within a step) and start no more."""
        self._stopping.set()
        with self._lock:
            stops = list(self._stops.values())
        for stop in stops:
            stop.set()

    def stop_trial(self, run_id: str) -> None:
        with self._lock:
            stop = self._stops.get(run_id)
        if stop is None:
            raise RunStoreError(f"run {run_id} is not a trial of {self.id} that has started")
        stop.set()

    # --- what it found ---
    def trials(self) -> list[Trial]:
        with self._lock:
            run_ids = list(self._runs.values())
        return [self._trial(run_id) for run_id in run_ids]

    def best(self) -> Trial | None:
        return best_of(self.trials())

    def summary(self) -> dict[str, Any]:
        trials = self.trials()
        best = self.best()
        return {
            "sweep_id": self.id,
            "preset": self.spec.preset,
            "params": [p.text() for p in self.spec.params],
            "scheduler": self.spec.scheduler,
            "validation_images": self.spec.base.validation,
            "seconds": round(self.seconds, 1),
            "trials_per_hour": round(len(trials) * 3600 / self.seconds, 1) if self.seconds else None,
            "best": best.to_dict() if best else None,
            "trials": [t.to_dict() for t in trials],
        }

    # --- inside ---
    def _tuner(self, scratch: str) -> tune.Tuner:
        spec = self.spec
        resources = cluster.resources(spec.base)
        trainable = tune.with_resources(
            tune.with_parameters(_trial, base=spec.base.to_dict(), data=self.data, mailbox=cluster.home()),
            {"cpu": resources["num_cpus"], "gpu": resources["num_gpus"]},
        )
        scheduler = None
        if spec.scheduler == "asha":
            horizon = OPEN_ENDED_EPOCHS if spec.base.minutes else spec.base.epochs + 1  # the last epoch, then scores
            scheduler = ASHAScheduler(max_t=horizon, grace_period=1, reduction_factor=2)
        return tune.Tuner(
            trainable,
            param_space=_search_space(spec.params),
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", num_samples=spec.samples, scheduler=scheduler),
            run_config=tune.RunConfig(
                name=self.id,
                storage_path=scratch,
                verbose=0,
                callbacks=[_Home(self)],
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )

    def _start(self, trial_id: str, params: dict[str, Any]) -> None:
        """Tune starts a trial: its run is recorded now, and followed on a thread of its own."""
        config = self.spec.base.replace(**params)
        words = " · ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())
        plan = new_run(
            config,
            folder=self.folder,
            store=self.store,
            name=f"{self.id} · {words}",
            data_source=self.spec.data_source,
            owner=self.spec.owner,
            preset=self.spec.preset,
        )
        assert plan.run_id is not None  # a store was given
        self.store.annotate(plan.run_id, sweep=self.id)
        stop = threading.Event()
        with self._lock:
            self._runs[trial_id], self._params[plan.run_id], self._stops[plan.run_id] = plan.run_id, params, stop
        if self._stopping.is_set():
            stop.set()
        run = TrainingRun(
            plan,
            self.data,
            store=self.store,
            listeners=(self._listener(plan.run_id), *self._listeners),
            executor=_Attached(trial_id, self._endings),
        )
        thread = threading.Thread(target=self._follow, args=(run, stop), name=f"trial-{plan.run_id}", daemon=True)
        self._threads.append(thread)
        thread.start()
        self._tell("started", plan.run_id)

    def _follow(self, run: TrainingRun, stop: threading.Event) -> None:
        assert run.run_id is not None
        try:
            result = run.run(stop=stop)
            if result.status == "stopped" and result.message == ASHA_STOP:
                self.store.finish(run.run_id, message=f"{ASHA_STOP} (after epoch {result.epochs_done})")
            with self._lock:
                last = self._last.get(run.run_id)
            if result.status != "completed" and last is not None:  # the page shows a past sweep's trials from these
                scores = {"validation_accuracy": last.val_acc, "test_accuracy": last.test_acc, "epoch": last.epoch}
                self.store.finish(run.run_id, metrics={LAST_EPOCH: scores})
        except Exception:
            log.exception("trial run %s failed at home", run.run_id)
        self._tell("ended", run.run_id)

    def _end(self, trial_id: str, ending: cluster.Ending) -> None:
        self._endings.setdefault(trial_id, ending)

    def _failed(self, trial_id: str) -> None:
        """Tune lost a trial: say whether its node left the cluster (the usual cause on lab PCs)."""
        with self._lock:
            run_id = self._runs.get(trial_id)
        node = self.store.get_run(run_id).node if run_id else ""
        gone = bool(node) and cluster.node_alive(node) is False
        why = "its node left the cluster" if gone else "Ray Tune reported the trial failed (see Ray's logs for why)"
        self._end(trial_id, cluster.Ending("failed", why))

    def _listener(self, run_id: str) -> Callable[[Event], None]:
        def listen(event: Event) -> None:
            if isinstance(event, EpochEnd):
                with self._lock:
                    self._last[run_id] = event

        return listen

    def _trial(self, run_id: str) -> Trial:
        with self._lock:
            last, params = self._last.get(run_id), self._params.get(run_id, {})
        return trial_of(self.store.get_run(run_id), params, (last.val_acc, last.test_acc) if last else None)

    def _tell(self, what: str, run_id: str) -> None:
        if self._on_trial is not None:
            try:
                self._on_trial(what, self._trial(run_id))
            except Exception:
                log.exception("reporting trial %s failed", run_id)


class _Home(tune.Callback):
    """Tune's view, brought home: a trial starting becomes a run; one Tune ended early is told to its run."""

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep

    def __getstate__(self) -> dict[str, Any]:  # Tune saves its experiment's state; a live sweep is not part of it
        return {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.sweep._stopping.is_set():
            return
        self.sweep._start(trial.trial_id, dict(trial.config))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.sweep._end(trial.trial_id, cluster.Ending("stopped", ASHA_STOP))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.sweep._failed(trial.trial_id)


class _Attached:
    """The executor of a trial's run: Tune already started it; home only receives what it sends."""

    name = "ray"

    def __init__(self, trial_id: str, endings: dict[str, cluster.Ending]) -> None:
        self.trial_id, self.endings = trial_id, endings

    def train(self, config: TrainConfig, data: CifarData, **kwargs: Any) -> TrainResult:
        kwargs.pop("resume")
        return cluster.receive(
            cluster.home(), self.trial_id, config, ended=lambda: self.endings.get(self.trial_id), **kwargs
        )


def _trial(params: dict[str, Any], *, base: dict[str, Any], data: CifarData, mailbox: Any) -> None:
    """A trial where Tune put it: the run trains (cluster.work) and reports each epoch's hold-out score to Tune."""
    config = TrainConfig.from_dict({**base, **params})

    def report(event: Event) -> None:
        if isinstance(event, EpochEnd):
            tune.report({METRIC: event.val_acc, "test_accuracy": event.test_acc, "epoch": event.epoch})

    cluster.work(mailbox, tune.get_context().get_trial_id(), config, data, None, also=report)


def _search_space(params: tuple[Param, ...]) -> dict[str, Any]:
    space: dict[str, Any] = {}
    for p in params:
        if p.grid:
            space[p.name] = tune.grid_search(list(p.values))
            continue
        assert p.low is not None and p.high is not None  # a range
        if SETTINGS[p.name].kind is int:  # randint's high end is left out
            space[p.name] = (tune.lograndint if p.log else tune.randint)(int(p.low), int(p.high) + 1)
        else:
            space[p.name] = (tune.loguniform if p.log else tune.uniform)(p.low, p.high)
    return space


def _with_holdout(config: TrainConfig, data: CifarData) -> TrainConfig:
    """Trials are compared on images held out of the training set: the class's hold-out unless one is set."""
    return config if config.validation else for_class(config, len(data.train_x))


def shutdown() -> None:
    """Leave the cluster (a local one stops)."""
    if ray.is_initialized():
        ray.shutdown()
