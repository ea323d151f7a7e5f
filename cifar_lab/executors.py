"""Where a run trains: `thread` (this process, the default) or `ray` (a task on a Ray cluster, cluster.py).

An executor trains one run's config on its data and streams the loop's events to the caller's listener, here in
this process, whatever machine trained it: runner.TrainingRun turns them into checkpoints and records as for any
run. Ray is an optional install; nothing here imports it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

from .budget import plan as fit_budget
from .config import TrainConfig
from .data import CifarData
from .devices import resolve_device
from .events import Listener, Planned
from .limits import check_memory
from .train import MeasuringStopped, TrainResult, train

ENV_EXECUTOR = "CIFAR_LAB_EXECUTOR"
ENV_RAY_ADDRESS = "CIFAR_LAB_RAY_ADDRESS"
EXECUTORS = ("thread", "ray")
# Ray's switch for "no cluster, this machine only" (its default on Windows and macOS): read when Ray is imported.
RAY_SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
RAY_INSTALL = "pip install 'ray[tune]'"  # the cluster extra of pyproject.toml
NodeListener = Callable[[str], None]  # told the node a run trains on, once it is known


class RayMissing(ValueError):
    """Ray was asked for and is not installed; the message names the install command."""


class RunFailed(Exception):
    """The run failed where it trained (another node, say); the message says why and what to do."""


class Executor(Protocol):
    name: str

    def train(
        self,
        config: TrainConfig,
        data: CifarData,
        *,
        stop: threading.Event,
        on_event: Listener,
        resume: dict[str, Any] | None,
        on_node: NodeListener,
    ) -> TrainResult: ...


class ThreadExecutor:
    """The run trains in the calling thread of this process."""

    name = "thread"

    def train(
        self,
        config: TrainConfig,
        data: CifarData,
        *,
        stop: threading.Event,
        on_event: Listener,
        resume: dict[str, Any] | None,
        on_node: NodeListener,
    ) -> TrainResult:
        on_node(this_node())
        return train_here(config, data, stop=stop, on_event=on_event, resume=resume)


def this_node() -> str:
    """How a run trained in this process names where it trained."""
    return socket.gethostname()


def train_here(
    config: TrainConfig,
    data: CifarData,
    *,
    stop: threading.Event,
    on_event: Listener,
    resume: dict[str, Any] | None = None,
) -> TrainResult:
    """What any executor runs where the run trains: a time budget is measured on this machine and its choice
    emitted as a Planned event (the time spent measuring counts in the budget), then the loop trains. Stopped while
    it measures, the run trains as set, to stop before its first step."""
    if config.minutes and resume is None:
        try:
            budget = fit_budget(config, data, resolve_device(config.device), stop=stop)
        except MeasuringStopped:
            config = config.replace(minutes=0.0)
        else:
            check_memory(budget.config, len(data.train_x), n_test_images=len(data.test_x))
            config = budget.config
            on_event(Planned(budget.config, budget.summary(), budget.summary(for_page=True)))
    return train(config, data, stop=stop, on_event=on_event, resume=resume)


def executor_name(name: str | None = None) -> str:
    """`name`, else $CIFAR_LAB_EXECUTOR, else thread; ValueError naming the choices for any other."""
    chosen = (name or os.environ.get(ENV_EXECUTOR) or "thread").strip().lower()
    if chosen not in EXECUTORS:
        raise ValueError(f"executor {chosen!r} is unknown; choose one of: {', '.join(EXECUTORS)} (${ENV_EXECUTOR})")
    return chosen


def make_executor(name: str | None = None, address: str | None = None) -> Executor:
    """The executor `name` (executor_name) names; for ray, the cluster at `address`, else $CIFAR_LAB_RAY_ADDRESS,
    else `local` (a Ray instance started on this machine). RayMissing when Ray is not installed."""
    if executor_name(name) == "thread":
        return ThreadExecutor()
    return ray_executor(address)


def ray_address(address: str | None = None) -> str:
    return (address or os.environ.get(ENV_RAY_ADDRESS) or "local").strip()


def ray_executor(address: str | None = None) -> Executor:
    address = ray_address(address)
    require_ray(address)
    from .cluster import RayExecutor

    return RayExecutor(address)


def require_ray(address: str | None = None) -> None:
    """RayMissing, naming the install command, unless Ray is installed. For a `local` instance, before Ray is first
    imported: one that lives on this machine's loopback address only (Ray's own default listens on every network
    address of the machine, and advertises its LAN address, so that other computers can join)."""
    if importlib.util.find_spec("ray") is None:
        raise RayMissing(f"this needs Ray, which is not installed; install it with `{RAY_INSTALL}`, then try again")
    if address == "local":
        os.environ.setdefault(RAY_SINGLE_MACHINE, "0")
