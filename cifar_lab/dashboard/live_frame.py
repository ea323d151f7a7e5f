"""What every watcher of a training job sees, built once per change of the job and shared by every session."""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass

import plotly.graph_objects as go

from . import plots
from .insides import SAMPLE_INDEX, Insides, insides
from .job_view import JobSnapshot
from .training_job import TrainingJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveFrame:
    """A snapshot of the job and its two live charts. Shared: the figures must not be changed by whoever draws them
    (st.plotly_chart only reads them)."""

    snapshot: JobSnapshot
    loss: go.Figure
    accuracy: go.Figure
    insides: Insides | None = None  # after the last finished epoch; None before the first


class LiveFrames:
    """The latest frame of each job (by whether test accuracy is shown): thirty sessions redrawing a running job
    take one snapshot and build its figures once per change of the job, not thirty times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one session builds a new frame; the others wait for it and share it
        self._frames: weakref.WeakKeyDictionary[TrainingJob, dict[bool, LiveFrame]] = weakref.WeakKeyDictionary()
        # Once per epoch, not per change: a forward pass of a fresh copy of the network.
        # (epoch, insides): None where drawing them failed, which is not tried again for that epoch.
        self._insides: weakref.WeakKeyDictionary[TrainingJob, tuple[int, Insides | None]] = weakref.WeakKeyDictionary()

    def frame(self, job: TrainingJob, *, show_test: bool = True) -> LiveFrame:
        with self._lock:
            frames = self._frames.setdefault(job, {})
            cached = frames.get(show_test)
            if cached is not None and cached.snapshot.version == job.version:
                return cached
            snap = job.snapshot()
            frame = LiveFrame(
                snap,
                plots.loss_figure(snap.losses, snap.epochs),
                plots.accuracy_figure(snap.epochs, show_test=show_test, early=snap.early),
                self._insides_of(job),
            )
            frames[show_test] = frame
            return frame

    def _insides_of(self, job: TrainingJob) -> Insides | None:
        weights = job.latest_weights()
        known_epoch, known = self._insides.get(job, (0, None))
        if weights is None or weights[0] == known_epoch or (sample := job.sample(SAMPLE_INDEX)) is None:
            return known
        epoch, state_dict = weights
        try:
            found: Insides | None = insides(job.config, state_dict, *sample, epoch=epoch)
        except Exception:  # the charts must still be drawn; the log says what broke
            log.exception("the insides of run %s after epoch %d could not be drawn", job.name, epoch)
            found = None
        self._insides[job] = (epoch, found)
        return found


_FRAMES = LiveFrames()  # process-wide, like the jobs: every session of the server draws from it


def live_frame(job: TrainingJob, *, show_test: bool = True) -> LiveFrame:
    """The job's frame as it stands now, built only when the job has changed since the last one."""
    return _FRAMES.frame(job, show_test=show_test)
