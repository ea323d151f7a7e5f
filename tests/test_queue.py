"""The class's queue: owners, limits, round-robin fairness, order changes, restarts, and who may act on a run."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cifar_lab import class_settings, run_queue
from cifar_lab.dashboard.jobs import JobManager
from cifar_lab.roles import NotAllowed, Viewer
from cifar_lab.run_queue import QueueFull
from cifar_lab.runs import RunStore
from tests.conftest import TINY_RUN

LONG = TINY_RUN.replace(epochs=500)  # trains until stopped
ADA, BOB, CY = Viewer("Ada"), Viewer("Bob"), Viewer("Cy")
TEACHER = Viewer("", teacher=True)


@pytest.fixture(autouse=True)
def own_run_store(monkeypatch):
    monkeypatch.delenv("CIFAR_LAB_RUNS_DB", raising=False)


@pytest.fixture()
def store(tmp_path):
    return RunStore(tmp_path / "runs.db", runs_dir=tmp_path)


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def queued_owners(store) -> list[str]:
    return [r.owner for r in run_queue.waiting(store)]


def test_a_queued_run_records_its_owner_preset_and_place(store):
    run_id = run_queue.enqueue(store, TINY_RUN, owner="Ada", name="first", preset="classroom")
    record = store.get_run(run_id)
    assert (record.status, record.owner, record.preset, record.checkpoint) == ("queued", "Ada", "classroom", None)
    assert record.position is not None and record.to_dict()["owner"] == "Ada"


def test_one_run_per_participant_unless_allowed_more_and_the_refusal_names_the_limit(store):
    first = run_queue.enqueue(store, TINY_RUN, owner="Ada")
    with pytest.raises(QueueFull, match=f"{first} \\(queued\\).*allows one run at a time"):
        run_queue.enqueue(store, TINY_RUN, owner=" ada")  # the same person typed on another device
    run_queue.enqueue(store, TINY_RUN, owner="Ada", limit=2)
    with pytest.raises(QueueFull, match="allows 2 runs"):
        run_queue.enqueue(store, TINY_RUN, owner="Ada", limit=2)
    run_queue.enqueue(store, TINY_RUN, owner="Ada", limit=None)  # the teacher's own runs have no limit
    assert len(run_queue.active_runs(store, "ADA")) == 3


def test_presses_of_start_at_the_same_moment_queue_one_run(store):
    barrier, refused = threading.Barrier(6), []

    def press() -> None:
        barrier.wait()
        try:
            run_queue.enqueue(store, TINY_RUN, owner="Ada")
        except QueueFull:
            refused.append(1)

    threads = [threading.Thread(target=press) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(run_queue.waiting(store)) == 1 and len(refused) == 5


def test_runs_take_turns_between_participants(store):
    for _ in range(3):
        run_queue.enqueue(store, TINY_RUN, owner="Ada", limit=3)
    run_queue.enqueue(store, TINY_RUN, owner="Bob", limit=3)
    run_queue.enqueue(store, TINY_RUN, owner="Cy", limit=3)
    run_queue.enqueue(store, TINY_RUN, owner="Bob", limit=3)
    assert queued_owners(store) == ["Ada", "Bob", "Cy", "Ada", "Bob", "Ada"]


def test_the_queue_starts_in_order_and_the_teacher_can_move_a_run_up(store):
    ids = [run_queue.enqueue(store, TINY_RUN, owner=name) for name in ("Ada", "Bob", "Cy")]
    assert run_queue.move_up(store, ids[2]) and not run_queue.move_up(store, ids[2 - 2])
    assert queued_owners(store) == ["Ada", "Cy", "Bob"]
    claimed = run_queue.claim_next(store)
    assert claimed.id == ids[0] and claimed.status == "running" and claimed.position is None
    assert [r.id for r in run_queue.waiting(store)] == [ids[2], ids[1]]
    run_queue.cancel(store, ids[1])
    assert [r.id for r in run_queue.waiting(store)] == [ids[2]]


def test_the_scheduler_trains_one_run_at_a_time_and_starts_the_next_when_one_ends(tmp_path, tiny_data):
    manager = JobManager(tmp_path, slots=1)
    first = manager.submit(LONG, owner="Ada", data=tiny_data, source="synthetic")
    second = manager.submit(TINY_RUN, owner="Bob", data=tiny_data, source="synthetic")
    assert manager.store.get_run(first).status == "running" and manager.store.get_run(second).status == "queued"
    assert [q.record.id for q in manager.waiting()] == [second]
    assert manager.stop(first, by=ADA)
    wait_for(lambda: manager.store.get_run(second).status == "completed")
    assert manager.store.get_run(first).status == "stopped" and manager.store.get_run(second).owner == "Bob"


def test_with_two_slots_two_runs_train_at_once_and_a_freed_slot_is_the_one_reused(tmp_path, tiny_data):
    manager = JobManager(tmp_path, slots=2)
    first, second, third = (manager.submit(LONG, owner=n, data=tiny_data, source="synthetic") for n in "ABC")
    assert [manager.store.get_run(r).status for r in (first, second, third)] == ["running", "running", "queued"]
    assert [manager.job(r).slot for r in (first, second)] == [0, 1]
    assert manager.stop(first)
    wait_for(lambda: manager.store.get_run(third).status == "running")
    assert manager.job(third).slot == 0  # one GPU per slot: not the second one, still training
    assert manager.stop()


def test_a_participant_cannot_stop_rename_delete_or_resume_another_s_run_and_the_teacher_can(tmp_path, tiny_data):
    manager = JobManager(tmp_path, slots=1)
    run_id = manager.submit(LONG, owner="Ada", data=tiny_data, source="synthetic")
    wait_for(lambda: manager.store.get_run(run_id).epochs_done >= 1)
    for action in (
        lambda: manager.stop(run_id, by=BOB),
        lambda: manager.rename(run_id, "mine now", by=BOB),
        lambda: manager.delete(run_id, by=BOB),
    ):
        with pytest.raises(NotAllowed, match=f"Run {run_id} is Ada's: only they or the teacher"):
            action()
    assert manager.store.get_run(run_id).status == "running"
    assert manager.stop(run_id, by=TEACHER)
    with pytest.raises(NotAllowed):
        manager.requeue(run_id, by=BOB)
    manager.requeue(run_id, by=ADA)  # continues from its saved epoch
    wait_for(lambda: manager.store.get_run(run_id).status == "running")
    manager.rename(run_id, "renamed by the teacher", by=TEACHER)
    assert manager.stop(run_id, by=ADA)
    assert manager.store.get_run(run_id).name == "renamed by the teacher"


def test_only_the_teacher_changes_the_class_and_its_queue(tmp_path):
    manager = JobManager(tmp_path, slots=1)
    ids = [manager.submit(LONG, owner=name, source="synthetic") for name in ("Ada", "Bob", "Cy")]
    with pytest.raises(NotAllowed, match="Only the teacher"):
        manager.move_up(ids[2], by=ADA)
    with pytest.raises(NotAllowed, match="Only the teacher"):
        manager.set_class(by=ADA, paused=True)
    assert manager.move_up(ids[2], by=TEACHER)
    assert [q.record.id for q in manager.waiting()] == [ids[2], ids[1]]
    manager.set_class(by=TEACHER, paused=True)
    assert manager.stop()


def test_a_paused_queue_starts_nothing_until_the_teacher_resumes_it(tmp_path, tiny_data):
    manager = JobManager(tmp_path, slots=1)
    manager.set_class(by=TEACHER, paused=True)
    run_id = manager.submit(TINY_RUN, owner="Ada", data=tiny_data, source="synthetic")
    time.sleep(0.2)
    assert manager.store.get_run(run_id).status == "queued" and manager.running is None
    manager.set_class(by=TEACHER, paused=False)
    wait_for(lambda: manager.store.get_run(run_id).status == "completed")


def test_a_restart_keeps_queued_runs_and_starts_them_and_the_running_one_can_be_resumed(tmp_path, tiny_data):
    store = RunStore(tmp_path / "cifar_lab.db", runs_dir=tmp_path)
    before = JobManager(tmp_path, store=store, slots=1)
    running = before.submit(LONG, owner="Ada", data=tiny_data, source="synthetic")
    waiting = before.submit(TINY_RUN, owner="Bob", source="synthetic")
    wait_for(lambda: store.get_run(running).epochs_done >= 1)
    class_settings.update(store, paused=True)  # so that the old server starts nothing more
    before.job(running).stop()
    before.job(running).join(30)
    with store.transaction() as conn:  # as if the server had died mid-epoch, recording nothing
        conn.execute("UPDATE runs SET status = 'running', pid = 999999999 WHERE id = ?", [running])
    class_settings.update(store, paused=False)

    after = JobManager(tmp_path, slots=1)  # the new server opens the same folder
    assert after.store.get_run(running).status == "interrupted"
    wait_for(lambda: after.store.get_run(waiting).status == "completed")
    assert after.store.get_run(waiting).owner == "Bob"
    after.requeue(running, by=ADA)
    wait_for(lambda: after.store.get_run(running).status == "running")
    assert after.stop(running, by=ADA)


def test_a_server_closing_interrupts_the_running_run_resumably_and_starts_nothing_more(tmp_path, tiny_data):
    manager = JobManager(tmp_path, slots=1)
    running = manager.submit(LONG, owner="Ada", data=tiny_data, source="synthetic")
    waiting = manager.submit(TINY_RUN, owner="Bob", source="synthetic")
    wait_for(lambda: manager.store.get_run(running).epochs_done >= 1)
    manager.shutdown(timeout=30)
    assert not manager.active
    record = manager.store.get_run(running)
    assert record.status == "interrupted" and "the server stopped after epoch" in record.message
    assert manager.store.get_run(waiting).status == "queued"  # it starts when the lab is back
    after = JobManager(tmp_path, slots=1)
    after.requeue(running, by=ADA)  # the interrupted run resumes from its saved epoch, behind Bob's
    wait_for(lambda: after.store.get_run(waiting).status == "completed")
    wait_for(lambda: after.store.get_run(running).status == "running")
    assert after.stop(running, by=ADA)


CLOSING_SERVER = """
import sys, time
from cifar_lab.dashboard.ui_state import job_manager
from cifar_lab.data import synthetic_data
from tests.conftest import TINY_RUN

manager = job_manager(sys.argv[1])
run_id = manager.submit(TINY_RUN.replace(epochs=500), owner="Ada", data=synthetic_data(512, 128), source="synthetic")
while manager.store.get_run(run_id).epochs_done < 1:
    time.sleep(0.01)
print(run_id)
"""  # then the interpreter ends with the worker mid-step, as a server's does after Ctrl+C


def test_a_process_that_ends_while_a_run_trains_exits_cleanly_and_keeps_the_run_resumable(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", CLOSING_SERVER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert "terminate called" not in done.stderr
    record = RunStore(tmp_path / "cifar_lab.db", runs_dir=tmp_path).get_run(done.stdout.strip())
    assert record.status == "interrupted" and record.epochs_done >= 1


def test_runs_from_the_command_line_are_owned_by_the_user_who_ran_them(tmp_path, monkeypatch, capsys):
    from cifar_lab import cli, roles

    monkeypatch.setattr(roles.getpass, "getuser", lambda: "ada-laptop")
    args = ["train", "--data", "synthetic", "--arch", "cnn", "--width", "8", "--depth", "1", "--epochs", "1"]
    assert cli.main([*args, "--threads", "1", "--out", str(tmp_path), "--runs-db", str(tmp_path / "r.db")]) == 0
    assert cli.main(["runs", "--json", "--runs-db", str(tmp_path / "r.db")]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert listed[0]["owner"] == "ada-laptop" and listed[0]["preset"] == "classroom"
