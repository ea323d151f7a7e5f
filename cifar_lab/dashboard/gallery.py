"""The class gallery: the latest pictures the class classified, with the model's answers. Kept in memory only,
never written to disk; the teacher turns it on and clears it."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

CAPACITY = 24  # pictures kept: a projector shows a few rows of them


@dataclass(frozen=True)
class Shot:
    view: np.ndarray  # (32, 32, 3) uint8: what the model saw
    label: str  # its answer
    probability: float  # 0..1
    who: str  # the participant's name; "" when none was typed
    at: float  # time.time() when added


class Gallery:
    """Thread-safe and bounded; the same picture classified again by the same person is kept once."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._shots: OrderedDict[str, Shot] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, view: np.ndarray, label: str, probability: float, who: str = "") -> None:
        key = hashlib.sha1(view.tobytes() + who.encode() + label.encode()).hexdigest()
        shot = Shot(np.array(view, dtype=np.uint8, copy=True), label, probability, who, time.time())
        with self._lock:
            self._shots.pop(key, None)
            self._shots[key] = shot
            while len(self._shots) > self._capacity:
                self._shots.popitem(last=False)

    def latest(self) -> list[Shot]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._shots.values()))

    def clear(self) -> None:
        with self._lock:
            self._shots.clear()


def gallery(runs: str) -> Gallery:
    """One per runs folder and process (through the dashboard's cache), like the job manager."""
    return Gallery()
