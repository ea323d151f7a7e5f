"""The run store: round trip, what the listener records, concurrent writers, interrupted runs, safe paths."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from conftest import TINY_RUN, start_run

from cifar_lab import paths
from cifar_lab.data import synthetic_data
from cifar_lab.events import EpochEnd, Failed, Finished, Step, Stopped
from cifar_lab.runs import RunStore, RunStoreError, _enable_wal, default_db_path, safe_child

TINY = TINY_RUN


@pytest.fixture()
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs.db")


@pytest.fixture(scope="module")
def data():
    return synthetic_data(n_train=128, n_test=32)


def set_columns(store: RunStore, run_id: str, **values) -> None:
    """Write columns directly, to stage what another (dead) process or host left behind."""
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            f"UPDATE runs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?", [*values.values(), run_id]
        )


def epoch_event(epoch: int, epochs: int = 3) -> EpochEnd:
    return EpochEnd(epoch, epochs, 2.0 / epoch, 0.3 * epoch, 2.1 / epoch, 0.25 * epoch, 1.5, 2.0 * epoch)


def test_round_trip(store, tmp_path):
    run_id = store.create_run(TINY, "first try", "synthetic", tmp_path / "a.pth")
    record = store.get_run(run_id)
    assert record.id == run_id and len(run_id) <= 12
    assert (record.name, record.status, record.data_source) == ("first try", "running", "synthetic")
    assert record.train_config == TINY and record.checkpoint == str(tmp_path / "a.pth")
    assert record.pid == os.getpid() and record.ended is None and record.started.endswith("+00:00")
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.rename(run_id, "  renamed  ")
    assert store.get_run(run_id).name == "renamed"
    with pytest.raises(ValueError, match="run name"):
        store.rename(run_id, "\x1b[31m")
    other = store.create_run(TINY.replace(arch="resnet"), "second", "synthetic", None)
    assert [r.id for r in store.list_runs()] == [other, run_id]  # newest first
    assert [r.id for r in store.list_runs(arch="cnn")] == [run_id]
    assert [r.id for r in store.list_runs(search="NAMED")] == [run_id]
    assert store.list_runs(search="%") == []  # LIKE wildcards are matched literally
    assert store.finish(other, "stopped", message="by hand") and store.list_runs(status="stopped")[0].id == other
    with pytest.raises(RunStoreError, match="no run 'nope'"):
        store.get_run("nope")


def test_default_path_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("CIFAR_LAB_RUNS_DB", raising=False)
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(tmp_path / "runs"))
    assert default_db_path() == tmp_path / "runs" / "cifar_lab.db"  # the runs folder the dashboard uses too
    monkeypatch.delenv("CIFAR_LAB_RUNS")
    assert default_db_path() == paths.runs_dir() / "cifar_lab.db"
    assert str(default_db_path("out")) == os.path.join("out", "cifar_lab.db")
    monkeypatch.setenv("CIFAR_LAB_RUNS_DB", str(tmp_path / "x.db"))
    assert RunStore().path == tmp_path / "x.db" and (tmp_path / "x.db").is_file()


def test_an_unusable_location_gives_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(RunStoreError, match="CIFAR_LAB_RUNS_DB"):
        RunStore(tmp_path / "file" / "runs.db")
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RunStoreError, match="damaged"):
        RunStore(tmp_path / "junk.db")


def test_listener_records_a_completed_training_run(store, tmp_path, data):
    session = start_run(TINY, data, tmp_path, store, name="tiny")
    result = session.run()
    record = store.get_run(session.run_id)
    assert (record.status, record.message, record.epochs_done) == ("completed", "", 2)
    assert record.test_accuracy == pytest.approx(result.test_accuracy)
    assert record.metrics["per_class_accuracy"] == result.evaluation.per_class_accuracy
    assert record.device == result.device == "cpu (fp32)" and record.ended is not None
    epochs = store.epochs(session.run_id)
    assert [e.epoch for e in epochs] == [1, 2]
    assert [e.test_acc for e in epochs] == [e.test_acc for e in result.history]
    steps = store.steps(session.run_id)
    assert [s.step for s in steps] == list(range(1, 9))  # 128 images / 32 = 4 steps per epoch, each reported
    assert session.summary(result)["run_id"] == session.run_id


def test_listener_records_stopped_and_failed_runs(store):
    stopped, failed = store.create_run(TINY, "s"), store.create_run(TINY, "f")
    listen = store.listener(stopped)
    listen(Step(1, 6, 1, 2.3, 0.05, 1000.0, 0.1))
    listen(epoch_event(1))
    listen(Stopped(1, 3))
    record = store.get_run(stopped)
    assert (record.status, record.epochs_done, record.test_accuracy) == ("stopped", 1, None)
    assert "after 1 epoch" in record.message and record.ended is not None
    store.listener(failed)(Failed("diverged at step 7: lower the learning rate", 7))
    assert store.get_run(failed).status == "failed" and "diverged" in store.get_run(failed).message
    done = store.create_run(TINY, "d")
    store.listener(done)(Finished(0.5, 2, 3.0, 900.0))
    assert store.get_run(done).test_accuracy == 0.5 and store.get_run(done).status == "completed"


def test_an_exception_in_training_marks_the_run_failed_and_ctrl_c_interrupted(store, tmp_path, data):
    def explode(event):
        if isinstance(event, EpochEnd):
            raise OSError(28, "No space left on device")

    session = start_run(TINY, data, tmp_path, store)
    with pytest.raises(OSError):
        session.run(on_event=explode)
    record = store.get_run(session.run_id)
    assert record.status == "failed" and "No space left" in record.message

    def ctrl_c(event):
        if isinstance(event, EpochEnd):
            raise KeyboardInterrupt

    session = start_run(TINY, data, tmp_path, store)
    with pytest.raises(KeyboardInterrupt):
        session.run(on_event=ctrl_c)
    record = store.get_run(session.run_id)
    assert record.status == "interrupted" and f"--resume {session.run_id}" in record.message


def test_a_database_error_in_the_listener_never_stops_training(store, tmp_path, data, caplog):
    session = start_run(TINY, data, tmp_path, store, name="doomed")
    store.path.unlink()  # the database vanishes under the running session,
    store.path.mkdir()  # and its path cannot even be opened as a file any more
    with caplog.at_level(logging.WARNING, logger="cifar_lab"):
        result = session.run()
    assert result.status == "completed" and session.checkpoint_path.is_file()
    lost = [r for r in caplog.records if r.name == "cifar_lab.run_recorder"]
    assert len(lost) == 1 and session.run_id in lost[0].getMessage()  # said once, not once per event


def test_four_threads_writing_at_once_lose_no_rows(store):
    run_ids, errors = [], []

    def worker() -> None:
        try:
            run_id = store.create_run(TINY, "concurrent")
            listen = store.listener(run_id)
            for step in range(1, 41):
                listen(Step(step, 40, 1 + (step - 1) // 10, 1.0, 0.1, 100.0, 0.0))
                if step % 10 == 0:
                    listen(epoch_event(step // 10, 4))
            listen(Finished(0.9, 4, 1.0, 100.0))
            run_ids.append(run_id)
            assert listen.error is None
        except Exception as err:  # reported below; an exception in a thread would be lost
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(set(run_ids)) == 4
    for run_id in run_ids:
        assert len(store.steps(run_id)) == 40 and len(store.epochs(run_id)) == 4
        assert store.get_run(run_id).status == "completed"


class _LockedAtFirst:
    """A connection whose first `failures` statements fail the way SQLite reports a WAL switch collision."""

    def __init__(self, failures: int, message: str = "database is locked") -> None:
        self.failures, self.message, self.calls = failures, message, 0

    def execute(self, sql: str) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise sqlite3.OperationalError(self.message)


def test_switching_to_wal_waits_out_a_collision_and_reports_other_errors():
    conn = _LockedAtFirst(failures=3)
    _enable_wal(conn)
    assert conn.calls == 4
    broken = _LockedAtFirst(failures=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _enable_wal(broken)
    assert broken.calls == 1


def test_processes_opening_the_same_new_store_at_once_all_succeed(tmp_path):
    # Training runs started together from the CLI create the default store together. Each process opens file i
    # at the same agreed moment; before the WAL switch waited, this failed in every trial of a few.
    script = (
        "import sys, time; from cifar_lab.runs import RunStore\n"
        "start = float(sys.argv[2])\n"
        "for i in range(20):\n"
        "    time.sleep(max(0.0, start + 0.1 * i - time.time()))\n"
        "    RunStore(sys.argv[1] + f'/{i}.db')\n"
    )
    start = str(time.time() + 4.0)  # leaves time for the imports
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), start], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors


def test_mark_interrupted_finds_runs_whose_process_is_gone(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs = {k: store.create_run(TINY, k) for k in ("dead", "reused_pid", "alive", "remote_old", "remote_new")}
    set_columns(store, runs["dead"], pid=dead.pid)
    set_columns(store, runs["reused_pid"], proc_start=1)  # our pid, but a process that started at another time
    set_columns(store, runs["remote_old"], host="elsewhere", updated="2000-01-01T00:00:00+00:00")
    set_columns(store, runs["remote_new"], host="elsewhere")
    store.finish(store.create_run(TINY, "finished"), "completed")
    marked = store.mark_interrupted()
    assert sorted(marked) == sorted([runs["dead"], runs["reused_pid"], runs["remote_old"]])
    record = store.get_run(runs["dead"])
    assert record.status == "interrupted" and f"pid {dead.pid}" in record.message and record.ended
    assert store.get_run(runs["alive"]).status == "running"
    assert store.get_run(runs["remote_new"]).status == "running"
    assert store.mark_interrupted() == []


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "../x.pth",
        "a/../../b",
        "/etc/passwd",
        "sub/x.pth",
        "a\\b.pth",
        "C:evil.pth",
        ".hidden",
        "x\x00.pth",
        "new\nline",
        "x" * 201,
    ],
)
def test_safe_child_rejects_names_that_could_leave_the_folder(tmp_path, name):
    with pytest.raises(ValueError, match="not a valid file name"):
        safe_child(tmp_path, name)


def test_safe_child_accepts_plain_names_and_refuses_links_out(tmp_path):
    assert safe_child(tmp_path, "fastnet-2024 run (2).pth") == tmp_path / "fastnet-2024 run (2).pth"
    outside = tmp_path.parent / f"{tmp_path.name}-outside.pth"
    (tmp_path / "link.pth").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the runs folder"):
        safe_child(tmp_path, "link.pth")


def test_delete_removes_rows_and_only_checkpoints_inside_the_runs_folder(tmp_path):
    store = RunStore(tmp_path / "runs" / "cifar_lab.db")
    inside, outside = tmp_path / "runs" / "a.pth", tmp_path / "elsewhere.pth"
    for path in (inside, outside):
        path.write_bytes(b"weights")
    a, b = store.create_run(TINY, "a", None, inside), store.create_run(TINY, "b", None, outside)
    store.listener(a)(epoch_event(1))
    with pytest.raises(RunStoreError, match="still training"):
        store.delete(a)
    for run_id in (a, b):
        store.finish(run_id, "completed")
    assert store.delete(a, delete_checkpoint=True) and not inside.exists()
    assert store.epochs(a) == [] and store.list_runs() == [store.get_run(b)]
    assert not store.delete(b, delete_checkpoint=True) and outside.exists()
    assert store.list_runs() == []


def test_exports(store):
    run_id = store.create_run(TINY, "exported")
    listen = store.listener(run_id)
    listen(Step(1, 2, 1, 2.0, 0.05, 10.0, 0.1))
    listen(epoch_event(1, 1))
    rows = list(csv.DictReader(io.StringIO(store.export_csv([run_id]))))
    assert len(rows) == 1 and rows[0]["name"] == "exported" and float(rows[0]["test_acc"]) == 0.25
    exported = json.loads(store.export_json([run_id]))
    assert exported[0]["run"]["config"] == TINY.to_dict()
    assert [e["epoch"] for e in exported[0]["epochs"]] == [1] and exported[0]["steps"][0]["loss"] == 2.0
