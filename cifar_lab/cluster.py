"""Runs on a Ray cluster: each run a Ray task on a node with room for it, its events streamed home to this process.

This process (the dashboard or the CLI) stays the run's home: a mailbox actor on its own node (Home) holds what
the run sends until this process takes it, so checkpoints are written, and the run store updated, here as for any
run. A stop travels the other way, in the reply to the run's next send. Imported only when Ray is asked for.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .budget import BudgetTooSmall
from .config import TrainConfig
from .data import CifarData
from .devices import usable_cores
from .events import EpochEnd, Event, Listener, Step, Stopped, fan_out
from .executors import NodeListener, RunFailed, train_here
from .limits import memory_failure_message
from .train import TrainResult

SEND_EVERY_S = 0.25  # a run sends its events home this often; a stop reaches it as fast
TAKE_WAIT_S = 0.5  # home waits this long for a run's next events before checking the run is still alive
WORKER_NICENESS = "RAY_worker_niceness"  # Ray's spelling: its settings are read as RAY_<name>
ENV_GPUS = "CIFAR_LAB_RAY_GPUS"  # the GPU share each --device cuda run asks for, e.g. 0.25: four runs per GPU
_PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Note:
    """What a run says about itself besides the loop's events: where it trains, or how it ended."""

    kind: str  # "node", "done" (payload: a TrainResult), "budget" or "failed" (payload: the message)
    payload: Any


@ray.remote(num_cpus=0, max_concurrency=64)  # type: ignore[call-overload]  # its stubs omit max_concurrency
class Home:
    """This process's mailbox on the cluster: each run's events wait here for home to take them, by run key."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._mail: dict[str, list[Any]] = defaultdict(list)
        self._stops: set[str] = set()

    def put(self, key: str, items: list[Any]) -> bool:
        """Leave a run's events; returns whether home has asked the run to stop."""
        with self._changed:
            self._mail[key].extend(items)
            self._changed.notify_all()
            return key in self._stops

    def take(self, key: str, wait_s: float) -> list[Any]:
        """What the run sent since the last take, waiting up to `wait_s` for something."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self._mail.get(key)), wait_s)
            return self._mail.pop(key, [])

    def stop(self, key: str) -> None:
        with self._changed:
            self._stops.add(key)

    def forget(self, key: str) -> None:
        with self._changed:
            self._mail.pop(key, None)
            self._stops.discard(key)


# --- connecting ---
def connect(address: str) -> None:
    """Join the cluster at `address` (`auto`, HOST:PORT) or start one on this machine (`local`, loopback only), once
    per process. The lab's own code travels with each run, so a node needs only Ray and torch installed."""
    with _connecting:
        if ray.is_initialized():
            return
        if threading.current_thread() is threading.main_thread():
            _join(address)
            return
        # Ray's connection stays with the thread that made it: made on a page's or a job's thread, every later call
        # from another thread (ray.nodes() on the Class page) hung once that thread had ended. So a thread of its
        # own makes it, and lives as long as the process.
        outcome: list[BaseException | None] = []
        made = threading.Event()

        def keep() -> None:
            try:
                _join(address)
                outcome.append(None)
            except BaseException as err:
                outcome.append(err)
            made.set()
            threading.Event().wait()  # for ever: the connection is this thread's

        threading.Thread(target=keep, name="ray-connection", daemon=True).start()
        made.wait()
        if outcome[0] is not None:
            raise outcome[0]


_connecting = threading.Lock()


def _join(address: str) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # the lab reports nothing to anyone
    try:
        if address == "local":
            # Ray starts its workers at niceness 15, below its own daemons and this process: on 2 cores a classroom
            # run trained at 0.91 of the thread executor's pace so, and at 0.99 with the workers at 0
            # (docs/benchmarks.md). Training is what the lab's Ray instance is for.
            os.environ.setdefault(WORKER_NICENESS, "0")
            ray.init(include_dashboard=False, **init_options())  # loopback only: executors.require_ray
        else:
            ray.init(address=address, **init_options())
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ValueError(
            f"could not reach a Ray cluster at {address!r}: {err}. Start one with `ray start --head` (then use "
            "`auto`, or the HOST:PORT it prints), or use `local` to start one on this machine"
        ) from None


def init_options() -> dict[str, Any]:
    """What this process joins a cluster with, whoever calls ray.init."""
    return {
        "namespace": "cifar_lab",
        "log_to_driver": False,
        "runtime_env": {"py_modules": [str(_PACKAGE)], "excludes": ["*.pth", "__pycache__"]},
    }


_homes: dict[tuple[str, str], Any] = {}  # by (node, job): one process may join several clusters, one at a time
_homes_lock = threading.Lock()


def home() -> Any:
    """This process's Home actor, on this process's own node."""
    context = ray.get_runtime_context()
    here = context.get_node_id()
    key = (here, context.get_job_id())  # job ids restart at 1 in each new cluster; node ids never repeat
    with _homes_lock:
        if key not in _homes:
            _homes[key] = Home.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()  # type: ignore[attr-defined]
        return _homes[key]


# --- where a run trains ---
class Outbox:
    """A run's side of the mailbox: its events sent home in order, from a thread of their own every SEND_EVERY_S, so
    the loop never waits on the network; each reply may carry home's stop."""

    def __init__(self, mailbox: Any, key: str, stop: threading.Event) -> None:
        self._mailbox, self._key, self._stop = mailbox, key, stop
        self._pending: list[Any] = []
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # one send at a time, so that home gets the events in order
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"outbox-{key[:8]}", daemon=True)
        self._thread.start()

    def __call__(self, item: Any) -> None:
        with self._lock:
            self._pending.append(item)

    def close(self) -> None:
        """Send what is left and stop sending."""
        self._closed.set()
        self._thread.join()
        self.flush()

    def flush(self) -> None:
        """Send what is pending now, from this thread."""
        self._send()

    def _loop(self) -> None:
        while not self._closed.wait(SEND_EVERY_S):
            self._send()

    def _send(self) -> None:
        with self._sending:
            with self._lock:
                items, self._pending = self._pending, []
            if ray.get(self._mailbox.put.remote(self._key, items)):
                self._stop.set()


def node_label(hostname: str, node_id: str) -> str:
    """e.g. "lab-pc-07/3fa9c2e1": the node's host and the start of its Ray id (nodes may share a host)."""
    return f"{hostname}/{node_id[:8]}"


def this_ray_node() -> str:
    node_id = ray.get_runtime_context().get_node_id()
    hosts = {n["NodeID"]: n["NodeManagerHostname"] for n in ray.nodes()}
    return node_label(hosts.get(node_id, "?"), node_id)


def work(
    mailbox: Any,
    key: str,
    config: TrainConfig,
    data: CifarData,
    resume: dict[str, Any] | None,
    also: Listener | None = None,
) -> None:
    """A run's life on its node: train it (its time budget measured here), every event and the outcome sent home;
    `also` hears the events here (a sweep's trial reports its epochs to Tune), an epoch's end once home has it, so
    that a trial Tune ends at that report has its epoch saved."""
    stop = threading.Event()
    outbox = Outbox(mailbox, key, stop)
    outbox(Note("node", this_ray_node()))

    def home_first(event: Event) -> None:
        assert also is not None
        if isinstance(event, EpochEnd):
            outbox.flush()
        also(event)

    try:
        emit = fan_out(outbox, home_first) if also is not None else outbox
        result = train_here(_fit_threads(config), data, stop=stop, on_event=emit, resume=resume)
    except BudgetTooSmall as err:
        outbox(Note("budget", str(err)))
    except Exception as err:
        outbox(Note("failed", memory_failure_message(err, config) or f"{type(err).__name__}: {err}"))
    else:
        outbox(Note("done", _portable(result)))
    finally:
        outbox.close()


@ray.remote(max_retries=0)
def _train_task(mailbox: Any, key: str, config: TrainConfig, data: CifarData, resume: dict[str, Any] | None) -> None:
    work(mailbox, key, config, data, resume)


def _fit_threads(config: TrainConfig) -> TrainConfig:
    """Every core is what a run asks for; on a node with more than the run was given, only the CPUs it was given."""
    cpus = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0))
    if config.threads or config.device not in ("auto", "cpu") or not 0 < cpus < usable_cores():
        return config
    return config.replace(threads=cpus)


def _portable(result: TrainResult) -> TrainResult:
    """The result as sent home: each epoch's weights already went with its event."""
    history = [dataclasses.replace(e, state_dict={}, resume_state={}) for e in result.history]
    return dataclasses.replace(result, history=history)


# --- home's side ---
@dataclass(frozen=True)
class Ending:
    """Why a run ended without sending its outcome: its node left ("failed"), or a sweep's scheduler ended it early
    ("stopped")."""

    status: str
    why: str


def receive(
    mailbox: Any,
    key: str,
    config: TrainConfig,
    *,
    stop: threading.Event,
    on_event: Listener,
    on_node: NodeListener,
    ended: Callable[[], Ending | None],
) -> TrainResult:
    """Hand a run's events to `on_event` as they arrive, pass `stop` on, and return its result. `ended` says why
    the run ended without a word, None while it may still speak."""
    asked, epochs, step, node = False, 0, 0, "its node"
    try:
        while True:
            if stop.is_set() and not asked:
                mailbox.stop.remote(key)
                asked = True
            items = ray.get(mailbox.take.remote(key, TAKE_WAIT_S))
            for item in items:
                if not isinstance(item, Note):
                    epochs = item.epoch if isinstance(item, EpochEnd) else epochs
                    step = item.step if isinstance(item, Step) else step
                    on_event(item)
                elif item.kind == "node":
                    node = item.payload
                    on_node(node)
                elif item.kind == "done":
                    return item.payload
                elif item.kind == "budget":
                    raise BudgetTooSmall(item.payload)
                else:
                    raise RunFailed(item.payload)
            ending = ended() if not items else None
            if ending is not None and ending.status == "stopped":
                on_event(Stopped(epochs, step))
                return TrainResult("stopped", None, config, epochs, None, 0.0, ending.why)
            if ending is not None:
                saved = f"epoch {epochs} is saved here; resume it to go on" if epochs else "no epoch had been saved"
                raise RunFailed(f"the run ended on {node} without finishing: {ending.why}; {saved}")
    finally:
        mailbox.forget.remote(key)


def task_ended(task: Any) -> Callable[[], Ending | None]:
    """`receive`'s `ended` for a Ray task: why it ended, once it has."""

    def ended() -> Ending | None:
        ready, _ = ray.wait([task], timeout=0)
        if not ready:
            return None
        try:
            ray.get(task)
        except ray.exceptions.RayError as err:
            return Ending("failed", _why(err))
        return Ending("failed", "it sent no result")

    return ended


def _why(err: BaseException) -> str:
    if isinstance(err, (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError)):
        return "its node left the cluster or its worker process died"
    first = str(err).strip().splitlines()
    return f"{type(err).__name__}: {first[0] if first else ''}"


class RayExecutor:
    """Each run a Ray task, with the CPUs (and GPU share) it asks for; see the module's docstring."""

    name = "ray"

    def __init__(self, address: str) -> None:
        self.address = address
        self._data: tuple[CifarData, Any] | None = None  # the last data put in the object store, and its reference

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
        connect(self.address)
        mailbox, key = home(), uuid.uuid4().hex
        task = _train_task.options(**resources(config), name=f"cifar_lab-run-{key[:8]}").remote(
            mailbox, key, config, self._put(data), resume
        )
        try:
            return receive(mailbox, key, config, stop=stop, on_event=on_event, on_node=on_node, ended=task_ended(task))
        except BaseException:
            ray.cancel(task, force=True)
            raise

    def _put(self, data: CifarData) -> Any:
        """Data goes to the object store once, however many runs train on it."""
        if self._data is None or self._data[0] is not data:
            self._data = (data, ray.put(data))
        return self._data[1]


def resources(config: TrainConfig) -> dict[str, float]:
    """A run's request: its threads in CPUs (0, every core: the cores of the smallest node), and a GPU share
    ($CIFAR_LAB_RAY_GPUS, default one whole GPU) when it trains on CUDA, or on `auto` where the cluster has GPUs
    (a node hides its GPUs from a run that did not ask for one)."""
    wants_gpu = config.device.startswith("cuda") or (
        config.device == "auto" and ray.cluster_resources().get("GPU", 0) > 0
    )
    gpus = float(os.environ.get(ENV_GPUS) or 1) if wants_gpu else 0.0
    return {"num_cpus": float(config.threads or smallest_node_cpus()), "num_gpus": gpus}


def smallest_node_cpus(cpus: list[int] | None = None) -> int:
    """The fewest CPUs a node with any has (at least 1), of `cpus` (default: the live nodes')."""
    cpus = _live_cpus() if cpus is None else cpus
    return max(1, min((c for c in cpus if c > 0), default=1))


def cluster_slots(address: str) -> int:
    """Runs of every core that fit on the cluster at once: each node's CPUs over the smallest node's (at least 1)."""
    connect(address)
    cpus = _live_cpus()  # one query: every watcher's redraw asks
    unit = smallest_node_cpus(cpus)
    return max(1, sum(c // unit for c in cpus))


def _live_cpus() -> list[int]:
    return [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]]


def node_alive(label: str) -> bool | None:
    """Whether the node a run named (node_label) is alive; None when the cluster does not know it."""
    for n in ray.nodes():
        if node_label(n["NodeManagerHostname"], n["NodeID"]) == label:
            return bool(n["Alive"])
    return None


@dataclass(frozen=True)
class NodeInfo:
    label: str
    address: str
    alive: bool
    cpus: float
    gpus: float
    cpus_free: float
    gpus_free: float


def nodes() -> list[NodeInfo]:
    """The cluster's nodes with their CPUs and GPUs, and what is free of them now."""
    free = ray.state.available_resources_per_node()
    found = []
    for n in ray.nodes():
        have, left = n["Resources"], free.get(n["NodeID"], {})
        found.append(
            NodeInfo(
                node_label(n["NodeManagerHostname"], n["NodeID"]),
                n["NodeManagerAddress"],
                bool(n["Alive"]),
                have.get("CPU", 0.0),
                have.get("GPU", 0.0),
                left.get("CPU", 0.0),
                left.get("GPU", 0.0),
            )
        )
    return found
