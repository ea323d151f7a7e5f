"""How long a run will take on this machine, from the throughput its finished runs measured, and when queued runs
will start."""

from __future__ import annotations

import functools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from .config import TrainConfig
from .models import build_model, count_macs
from .runs import RunRecord

CIFAR_TRAIN_IMAGES = 50_000  # what a run trains on when its data is not loaded yet: the real training set
EVALUATION_OVERHEAD = 1.15  # total time over training time, where no finished run has measured it here


@dataclass(frozen=True)
class Measured:
    images_per_s: float  # training throughput, evaluation excluded
    overhead: float  # total time / training time: per-epoch and final evaluation, loading


@dataclass(frozen=True)
class Throughput:
    """What this machine measured: by (architecture, width, precision), and by architecture alone (per MAC)."""

    exact: dict[tuple[str, int, str], Measured]
    per_mac: dict[str, float]  # images/s × multiply-adds per image: scales to another width of the same model
    overhead: float

    @classmethod
    def from_runs(cls, records: Iterable[RunRecord]) -> Throughput:
        """From completed runs' metrics; runs without a throughput are skipped."""
        rates: dict[tuple[str, int, str], list[float]] = {}
        overheads: list[float] = []
        for record in records:
            rate = record.metrics.get("images_per_s")
            if record.status != "completed" or record.damaged or not isinstance(rate, (int, float)) or rate <= 0:
                continue
            try:
                config = record.train_config
            except ValueError:
                continue
            rates.setdefault(_key(config), []).append(float(rate))
            total, train = record.metrics.get("total_seconds"), record.metrics.get("train_seconds")
            if isinstance(total, (int, float)) and isinstance(train, (int, float)) and 0 < train <= total:
                overheads.append(total / train)  # a resumed run's total covers its last part only: it is < train
        overhead = statistics.median(overheads) if overheads else EVALUATION_OVERHEAD
        exact = {key: Measured(statistics.median(values), overhead) for key, values in rates.items()}
        per_mac: dict[str, list[float]] = {}
        for (arch, width, _), measured in exact.items():
            per_mac.setdefault(arch, []).append(measured.images_per_s * _macs(arch, width))
        return cls(exact, {arch: statistics.median(v) for arch, v in per_mac.items()}, overhead)

    def images_per_s(self, config: TrainConfig) -> float | None:
        """Training images/s for `config` here: measured for its model and precision, else scaled from the same
        architecture at another width by multiply-adds; None when this machine has measured neither."""
        measured = self.exact.get(_key(config))
        if measured is not None:
            return measured.images_per_s
        if config.arch in self.per_mac:
            return self.per_mac[config.arch] / _macs(config.arch, config.width)
        return None

    def run_seconds(self, config: TrainConfig, train_images: int = CIFAR_TRAIN_IMAGES) -> float | None:
        """Estimated seconds from start to the final test accuracy; None when nothing comparable was measured.
        A run with a time budget takes its budget."""
        if config.minutes:
            return config.minutes * 60
        rate = self.images_per_s(config)
        if rate is None:
            return None
        trained_on = max(train_images - config.validation, 0)  # the validation hold-out is only scored
        return config.epochs * trained_on / rate * self.overhead


def start_times(busy_for: list[float], durations: list[float | None], slots: int) -> list[float | None]:
    """Seconds from now until each waiting run starts, in queue order: `busy_for` is what the running runs have
    left, `durations` the waiting runs' estimates. A run after one of unknown length has no estimate either."""
    free = sorted([*busy_for, *[0.0] * max(0, slots - len(busy_for))])[: max(1, slots)]
    starts: list[float | None] = []
    unknown = False
    for duration in durations:
        free.sort()
        start = free[0]
        starts.append(None if unknown else start)
        if duration is None:
            unknown = True
            continue
        free[0] = start + duration
    return starts


def _key(config: TrainConfig) -> tuple[str, int, str]:
    return (config.arch, config.width, config.precision)


@functools.lru_cache(maxsize=64)
def _macs(arch: str, width: int) -> int:
    return count_macs(build_model(TrainConfig(arch=arch, width=width)))
