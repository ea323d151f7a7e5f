"""A damaged run row or database file: shown as damaged with its id and the problem; `runs --check [--repair]`."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys

import pytest
from conftest import TINY_RUN

from cifar_lab import cli
from cifar_lab.events import EpochEnd, Step
from cifar_lab.resume import resume_problem
from cifar_lab.runs import RunStore, RunStoreError

TINY = TINY_RUN


@pytest.fixture()
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs.db")


def damage(store: RunStore, run_id: str, sql: str) -> None:
    """Write raw SQL values into a run's row, as a hand edit, a bug or another program might."""
    with sqlite3.connect(store.path) as conn:
        conn.execute(f"UPDATE runs SET {sql} WHERE id = ?", [run_id])


def finished_run(store: RunStore, name: str, status: str = "completed", epochs: int = 1) -> str:
    run_id = store.create_run(TINY, name, "synthetic")
    listen = store.listener(run_id)
    for epoch in range(1, epochs + 1):
        listen(Step(epoch, 2 * epochs, epoch, 2.0, 0.05, 10.0, 0.1))
        listen(EpochEnd(epoch, 2, 2.0, 0.3, 2.1, 0.25, 1.5, 2.0))
    store.finish(run_id, status, message="on purpose")
    return run_id


def run_cli(*argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def garble(path) -> None:
    """Random bytes over the whole database file, header included."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.write(os.urandom(size))


DAMAGES = {
    "config='{bad'": "config is not valid JSON",
    "config='[1, 2]'": "config is not a JSON object",
    "metrics='{\"a\": '": "metrics is not valid JSON",
    "status='finished'": "status 'finished' is unknown",
    "test_accuracy='abc'": "test_accuracy 'abc' is not a number",
    "epochs_done='x'": "epochs_done 'x' is not a whole number",
    "name=CAST(X'FF41' AS TEXT)": "name is not valid UTF-8 text",
}


@pytest.mark.parametrize("sql", list(DAMAGES))
def test_a_damaged_row_reads_as_damaged_and_the_rest_of_the_history_works(store, sql):
    good, bad = finished_run(store, "good"), finished_run(store, "bad")
    damage(store, bad, sql)
    records = {r.id: r for r in store.list_runs()}
    assert set(records) == {good, bad}
    assert DAMAGES[sql] in records[bad].damaged and not records[good].damaged
    assert store.get_run(bad).damaged == records[bad].damaged
    assert records[good].train_config == TINY and store.epochs(good)
    record = records[bad]
    if "config" in record.unreadable:
        with pytest.raises(RunStoreError, match=f"run {bad}.*damaged"):
            _ = record.train_config  # never a default config standing in for the lost one
    assert "damaged" in resume_problem(record) and bad in resume_problem(record)


def test_runs_lists_a_damaged_row_with_its_id_and_problem_in_text_and_json(store):
    good, bad = finished_run(store, "good"), finished_run(store, "bad")
    damage(store, bad, "config='{bad'")
    code, out, err = run_cli("runs", "--runs-db", store.path)
    assert code == 0, err
    line = next(text for text in out.splitlines() if text.startswith(bad))
    assert "damaged" in line and "config is not valid JSON" in line and "bad" in line
    assert any(text.startswith(good) and "completed" in text for text in out.splitlines())
    assert "1 damaged run" in err and "runs --check --repair" in err
    code, out, _ = run_cli("runs", "--runs-db", store.path, "--json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert code == 0 and rows[good]["config"] == TINY.to_dict() and "damaged" not in rows[good]
    assert rows[bad]["damaged"].startswith("config is not valid JSON")
    assert rows[bad]["name"] == "bad" and rows[bad]["status"] == "completed" and "config" not in rows[bad]


def test_arch_filter_and_interrupt_marking_skip_damaged_rows(store):
    good = finished_run(store, "good")
    bad_config, bad_pid = store.create_run(TINY, "bad config"), store.create_run(TINY, "bad pid")
    damage(store, bad_config, "config='{bad'")
    damage(store, bad_pid, "pid='abc'")
    assert [r.id for r in store.list_runs(arch="cnn")] == [bad_pid, good]  # newest first; bad_config's arch is lost
    assert store.mark_interrupted() == []  # a running row it cannot read is left as it is, not a crash
    assert "pid 'abc' is not a whole number" in store.get_run(bad_pid).damaged


def test_check_reports_damaged_rows_and_repair_moves_them_to_quarantine(store):
    good, bad = finished_run(store, "good", epochs=2), finished_run(store, "bad", epochs=2)
    odd = finished_run(store, "odd")
    damage(store, bad, "config='{bad'")
    damage(store, odd, "status='finished'")
    assert run_cli("runs", "--runs-db", store.path, "--check")[0] == 1
    code, out, err = run_cli("runs", "--runs-db", store.path, "--check")
    lines = out.splitlines()
    assert code == 1 and len(lines) == 2 and "--check --repair" in err
    assert any(text.startswith(f"{bad}: config is not valid JSON") for text in lines)
    assert any(text.startswith(f"{odd}: status 'finished' is unknown") for text in lines)

    code, out, err = run_cli("runs", "--runs-db", store.path, "--check", "--repair")
    assert code == 0, err
    assert "moved 2 damaged run(s)" in out and "quarantine" in out and str(store.path) in out
    assert [r.id for r in store.list_runs()] == [good] and store.epochs(bad) == [] and store.steps(bad) == []
    with sqlite3.connect(store.path) as conn:
        moved = dict(conn.execute("SELECT id, reason FROM quarantine").fetchall())
        assert conn.execute("SELECT config FROM quarantine WHERE id = ?", [bad]).fetchone() == ("{bad",)
        assert conn.execute("SELECT count(*) FROM quarantine_epochs WHERE run_id = ?", [bad]).fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM quarantine_steps WHERE run_id = ?", [bad]).fetchone() == (2,)
        assert conn.execute("SELECT quarantined FROM quarantine").fetchone()[0].endswith("+00:00")
    assert set(moved) == {bad, odd} and moved[bad].startswith("config is not valid JSON")
    assert run_cli("runs", "--runs-db", store.path, "--check") == (0, f"no damaged runs in {store.path}\n", "")
    assert store.epochs(good) and run_cli("runs", "--runs-db", store.path)[0] == 0


def test_repair_leaves_a_run_still_training_in_place_but_not_one_whose_process_cannot_be_read(store):
    live, lost = store.create_run(TINY, "live"), store.create_run(TINY, "lost")  # this process: alive
    damage(store, live, "metrics='{'")
    damage(store, lost, "pid='abc'")  # never marked interrupted (its process cannot be checked), so never ends
    code, out, _ = run_cli("runs", "--runs-db", store.path, "--check", "--repair")
    assert code == 1 and f"{live}: metrics is not valid JSON" in out and "still training" in out
    assert store.get_run(live).damaged and [r.id for r in store.list_runs()] == [live]
    assert f"{lost}: pid 'abc' is not a whole number" in out and "moved 1 damaged run(s)" in out


def test_repair_needs_check(store):
    code, _, err = run_cli("runs", "--runs-db", store.path, "--repair")
    assert code == cli.EXIT_USER_ERROR and "--repair goes with --check" in err


def test_a_database_damaged_while_a_store_is_open_is_an_error_in_words(store, tmp_path):
    finished_run(store, "kept")
    garble(store.path)
    for call in (store.list_runs, store.mark_interrupted, lambda: store.create_run(TINY, "new")):
        with pytest.raises(RunStoreError, match="damaged: move it away"):
            call()
    code, _, err = run_cli("runs", "--runs-db", store.path)
    assert code == cli.EXIT_USER_ERROR and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: run store") and "file is not a database" in err and "--check" not in err


def test_a_locked_database_says_so_and_what_to_do(store, monkeypatch):
    monkeypatch.setattr("cifar_lab.runs.BUSY_TIMEOUT_S", 0.1)
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RunStoreError, match="locked. Another process"):
            store.create_run(TINY, "waits")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_runs_command_in_a_subprocess_prints_one_line_for_a_damaged_row(store):
    # The bare "Expecting property name enclosed in double quotes ... (char 1)", naming no run, came from here.
    bad = finished_run(store, "bad")
    damage(store, bad, "config='{bad'")
    proc = subprocess.run(
        [sys.executable, "-m", "cifar_lab", "runs", "--runs-db", str(store.path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and bad in proc.stdout and "Expecting property name" in proc.stdout
