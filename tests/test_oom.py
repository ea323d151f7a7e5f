"""A run the kernel killed for memory: recognised at the next start, marked so, and not offered for resume as is."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from cifar_lab import oom
from cifar_lab.config import TrainConfig
from cifar_lab.dashboard.jobs import JobManager
from cifar_lab.events import Step
from cifar_lab.resume import resume_problem
from cifar_lab.runs import ADDED_COLUMNS, RunStore

TINY = TrainConfig(
    arch="cnn", width=8, depth=1, batch_size=32, epochs=2, eval_subset=0, precision="fp32", device="cpu", threads=1
)
GB = 1_000_000_000
# A process that records a run, as training does, and is then killed as the OOM killer kills: SIGKILL, no cleanup.
KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from cifar_lab import oom
from cifar_lab.config import TrainConfig
from cifar_lab.events import Step
from cifar_lab.runs import RunStore
oom.CGROUP = Path(sys.argv[2])
store = RunStore(sys.argv[1])
run_id = store.create_run(TrainConfig(arch="cnn", width=8, epochs=2), "doomed", "synthetic")
store.listener(run_id)(Step(1, 4, 1, 2.3, 0.05, 10.0, 0.1))
print(run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def cgroup(folder, *, kills: int | None, limit: str = "8900000000", v1: bool = False):
    """A cgroup folder as the kernel shows it: v2 memory.events / memory.max, or v1 memory/memory.oom_control."""
    folder.mkdir(exist_ok=True)
    if v1:
        (folder / "memory").mkdir(exist_ok=True)
        (folder / "memory" / "memory.oom_control").write_text(f"oom_kill_disable 0\nunder_oom 0\noom_kill {kills}\n")
        (folder / "memory" / "memory.limit_in_bytes").write_text(f"{limit}\n")
    else:
        if kills is not None:
            (folder / "memory.events").write_text(f"low 0\nhigh 0\nmax 3\noom 1\noom_kill {kills}\n")
        (folder / "memory.max").write_text(f"{limit}\n")
    return folder


def killed_run(db, folder) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(db), str(folder)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize("v1", [False, True])
def test_a_run_killed_when_the_oom_count_grew_is_marked_out_of_memory_and_not_resumed(tmp_path, monkeypatch, v1):
    folder = cgroup(tmp_path / "cg", kills=2, v1=v1)
    db = tmp_path / "runs.db"
    run_id = killed_run(db, folder)
    cgroup(folder, kills=3, v1=v1)  # the kernel's OOM killer acted while it trained
    monkeypatch.setattr(oom, "CGROUP", folder)
    store = RunStore(db)
    assert store.mark_interrupted() == [run_id]
    record = store.get_run(run_id)
    assert record.status == "failed" and record.out_of_memory
    assert "ran out of memory (the kernel stopped it at about 8.9 GB)" in record.message
    assert "lower --batch-size or --width and start a new run" in record.message
    problem = resume_problem(record)
    assert "ran out of memory" in problem and "would run out again" in problem
    assert JobManager(tmp_path, store=store).resumable() == []


def test_a_run_killed_without_an_oom_kill_is_interrupted_as_before(tmp_path, monkeypatch):
    folder = cgroup(tmp_path / "cg", kills=2)
    db = tmp_path / "runs.db"
    run_id = killed_run(db, folder)
    monkeypatch.setattr(oom, "CGROUP", folder)
    store = RunStore(db)
    assert store.mark_interrupted() == [run_id]
    record = store.get_run(run_id)
    assert record.status == "interrupted" and not record.out_of_memory and "ended without finishing" in record.message


def test_without_cgroup_files_a_last_heartbeat_near_the_limit_counts(tmp_path, monkeypatch):
    folder = cgroup(tmp_path / "cg", kills=None, limit=str(4 * GB))  # no memory.events: only the limit is known
    monkeypatch.setattr(oom, "CGROUP", folder)
    store = RunStore(tmp_path / "runs.db")
    near, far = store.create_run(TINY, "near"), store.create_run(TINY, "far")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET pid = ?, peak_rss = ? WHERE id = ?", [dead.pid, int(3.9 * GB), near])
        conn.execute("UPDATE runs SET pid = ?, peak_rss = ? WHERE id = ?", [dead.pid, 1 * GB, far])
    store.mark_interrupted()
    assert store.get_run(near).out_of_memory and "about 4.0 GB" in store.get_run(near).message
    assert store.get_run(far).status == "interrupted" and not store.get_run(far).out_of_memory


def test_missing_cgroup_files_are_no_error(tmp_path, monkeypatch):
    monkeypatch.setattr(oom, "CGROUP", tmp_path / "nothing")
    assert oom.oom_kills() is None
    store = RunStore(tmp_path / "runs.db")
    run_id = store.create_run(TINY, "plain")
    store.listener(run_id)(Step(1, 4, 1, 2.3, 0.05, 10.0, 0.1))
    with sqlite3.connect(store.path) as conn:
        kills, peak = conn.execute("SELECT oom_kills, peak_rss FROM runs WHERE id = ?", [run_id]).fetchone()
    assert kills is None and peak > 10_000_000  # bytes: this Python process holds more than 10 MB


def test_an_old_database_gains_the_new_columns(tmp_path):
    db = tmp_path / "old.db"
    store = RunStore(db)
    run_id = store.create_run(TINY, "old")
    with sqlite3.connect(db) as conn:
        for column in ADDED_COLUMNS:
            conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        assert not set(ADDED_COLUMNS) & {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    record = RunStore(db).get_run(run_id)
    assert record.name == "old" and not record.out_of_memory and not record.damaged
    with sqlite3.connect(db) as conn:
        assert set(ADDED_COLUMNS) <= {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
