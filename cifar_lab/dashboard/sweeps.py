"""Sweeps started from the dashboard: one at a time per server, on a thread of its own, started and stopped by the
teacher; every page reads its trials. Ray is imported only when a sweep starts."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..data import CifarData
from ..executors import ray_address, require_ray
from ..roles import Viewer, check_teacher
from ..runs import RunStore

if TYPE_CHECKING:
    from ..sweep import Sweep, SweepSpec
    from ..sweep_record import Trial

log = logging.getLogger(__name__)


class SweepBusy(RuntimeError):
    """A sweep was asked to start while one runs."""


@dataclass
class SweepJob:
    sweep: Sweep
    thread: threading.Thread | None = None
    summary: dict[str, Any] | None = None
    error: str = ""
    stopped: bool = False
    _done: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def status(self) -> str:
        if not self.done:
            return "stopping" if self.stopped else "running"
        return "failed" if self.error else "stopped" if self.stopped else "finished"

    def trials(self) -> list[Trial]:
        return self.sweep.trials()

    def join(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def run(self) -> None:
        try:
            self.summary = self.sweep.run()
        except Exception as err:  # the page shows it; the trials recorded so far stay in the store
            log.exception("sweep %s failed", self.sweep.id)
            self.error = f"{type(err).__name__}: {err}"
        finally:
            self._done.set()


class SweepDesk:
    """The server's sweep: the latest one, running or finished."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current: SweepJob | None = None

    def start(
        self,
        spec: SweepSpec,
        data: CifarData,
        *,
        folder: str,
        store: RunStore,
        by: Viewer | None,
        address: str | None = None,
    ) -> SweepJob:
        """Start a sweep for the teacher; NotAllowed for anyone else, SweepBusy while one runs, RayMissing (naming
        the install command) without Ray."""
        check_teacher(by, "start a sweep")
        require_ray(ray_address(address))
        from ..sweep import Sweep

        with self._lock:
            if self.current is not None and not self.current.done:
                raise SweepBusy(f"{self.current.sweep.id} is still running; stop it or wait for it to end")
            sweep = Sweep(spec, data, folder=folder, store=store, address=ray_address(address))
            job = SweepJob(sweep)
            job.thread = threading.Thread(target=job.run, name=f"sweep-{sweep.id}", daemon=True)
            self.current = job
        job.thread.start()
        return job

    def stop(self, *, by: Viewer | None) -> None:
        check_teacher(by, "stop a sweep")
        job = self.current
        if job is not None and not job.done:
            job.stopped = True
            job.sweep.stop()


_desk = SweepDesk()


def shared_desk() -> SweepDesk:
    """The server's one desk: every session of this process sees the same sweep."""
    return _desk
