"""Soak (opt-in, `pytest -m slow tests/test_soak.py`): 20 short jobs back to back through the JobManager.

Some are stopped mid-run, some complete, some diverge; afterwards no worker thread is left, resident memory has
grown by less than 50 MB, and the run store holds each run with the status its job ended in.
"""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import pytest

from cifar_lab.config import TrainConfig
from cifar_lab.dashboard.jobs import JobManager
from cifar_lab.data import synthetic_data

pytestmark = pytest.mark.slow

JOBS = 20
MAX_GROWTH_MB = 50
TINY = TrainConfig(
    arch="cnn",
    width=8,
    depth=1,
    batch_size=32,
    epochs=2,
    eval_subset=0,
    precision="fp32",
    device="cpu",
    threads=1,
    schedule="constant",
    lr=0.05,
)
DIVERGES = TrainConfig(
    arch="tutorial",
    lr=100.0,
    schedule="constant",
    batch_size=64,
    epochs=2,
    flip=False,
    crop_pad=0,
    precision="fp32",
    device="cpu",
    threads=1,
)  # NaN within the first epoch


def rss_mb() -> float:
    """Resident memory of this process (VmRSS in /proc/self/status, kB) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


def settled_rss_mb() -> float:
    gc.collect()
    return rss_mb()


def plan(i: int) -> tuple[TrainConfig, str]:
    """Job i's config and the status it must end in: mostly stopped, every fourth completed, every fifth failed."""
    if i % 5 == 4:
        return DIVERGES, "failed"
    if i % 4 == 3:
        return TINY, "completed"
    return TINY.replace(epochs=500), "stopped"


def run_one(manager: JobManager, i: int, data) -> tuple[str, str, str]:
    """Start job i, stop it once it is training (unless it must end by itself); (run id, expected, job status)."""
    config, expected = plan(i)
    job = manager.start(config, data=data, source="synthetic", name=f"soak-{i}")
    if expected == "stopped":
        deadline = time.monotonic() + 30
        while job.snapshot().last_step is None:  # stopped mid-epoch, after at least one step
            assert time.monotonic() < deadline, f"job {i} never took a step"
            time.sleep(0.005)
        job.stop()
    assert job.join(60), f"job {i} did not end"
    return job.snapshot().run_id, expected, job.status


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from Linux's /proc")
def test_twenty_jobs_back_to_back_leak_no_threads_or_memory_and_are_all_recorded(tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAR_LAB_RUNS_DB", raising=False)  # the store beside the checkpoints, in tmp_path
    data = synthetic_data(n_train=256, n_test=64)
    manager = JobManager(tmp_path)
    for i in (0, 3, 4):  # warm-up, one job of each kind: torch's one-off allocations are not a leak
        manager.store.delete(run_one(manager, i, data)[0])
    threads_before, rss_before = set(threading.enumerate()), settled_rss_mb()

    t0 = time.perf_counter()
    outcomes = [run_one(manager, i, data) for i in range(JOBS)]
    seconds = time.perf_counter() - t0

    leftover = [t for t in threading.enumerate() if t not in threads_before]
    rss_after = settled_rss_mb()
    records = {r.id: r for r in manager.store.list_runs()}
    print(
        f"\nsoak: {JOBS} jobs in {seconds:.1f} s; threads {len(threads_before)} -> "
        f"{len(threads_before) + len(leftover)}; RSS {rss_before:.1f} -> {rss_after:.1f} MB "
        f"(+{rss_after - rss_before:.1f}); statuses {[status for _, _, status in outcomes]}"
    )
    assert not leftover, f"threads left behind: {leftover}"
    assert rss_after - rss_before < MAX_GROWTH_MB
    assert len(records) == JOBS
    for run_id, expected, status in outcomes:
        assert status == expected and records[run_id].status == expected, (run_id, expected, status)
        assert records[run_id].ended is not None
    assert all(records[r].message for r, expected, _ in outcomes if expected == "failed")
