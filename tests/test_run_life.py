"""A run's life (runner.py): every run owns its checkpoint file, a run that cannot be saved is refused before
training or failed with the cause and the fix, and a resume continues only from a sound saved state."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY_RUN, start_run

import cifar_lab
from cifar_lab import checkpoint as ckpt_module
from cifar_lab import cli, run_files
from cifar_lab.checkpoint import load_checkpoint
from cifar_lab.config import TrainConfig
from cifar_lab.dashboard.jobs import JobManager
from cifar_lab.data import load_data, synthetic_data
from cifar_lab.run_files import claim_checkpoint, sweep_stale_temporaries
from cifar_lab.runner import TrainingRun, new_run, resume_run
from cifar_lab.runs import RunStore, RunStoreError
from cifar_lab.train import train

REPO = Path(cifar_lab.__file__).resolve().parent.parent
TINY = TINY_RUN
FLAGS = [
    "--data",
    "synthetic",
    "--arch",
    "cnn",
    "--opt",
    "sgd",
    "--width",
    "8",
    "--depth",
    "1",
    "--batch-size",
    "64",
    "--epochs",
    "1",
    "--precision",
    "fp32",
    "--threads",
    "1",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def data():
    return synthetic_data(n_train=128, n_test=32)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- 1. a run's files are its own --------------------------------------------------------------------------------


def test_reusing_a_name_never_touches_another_runs_file(tmp_path, capsys):
    db = tmp_path / "runs.db"
    summaries = []
    for seed in (1, 2):
        code, out, err = run_cli(
            capsys, "train", *FLAGS, "--out", tmp_path, "--runs-db", db, "--name", "dup", "--seed", seed, "--json"
        )
        assert code == 0, err
        summaries.append(json.loads(out.splitlines()[-1]))
    first, second = summaries
    assert first["checkpoint"] != second["checkpoint"] and first["name"] == second["name"] == "dup"
    store = RunStore(db)
    for summary in summaries:
        record = store.get_run(summary["run_id"])
        assert record.checkpoint == summary["checkpoint"] and record.name == "dup"
        assert load_checkpoint(record.checkpoint).config.seed == record.train_config.seed


def test_a_claimed_file_is_never_claimed_twice(tmp_path):
    path = claim_checkpoint(tmp_path, "a name", "261207-abcd")
    assert path.name == "a-name-261207-abcd.pth" and path.stat().st_size == 0
    with pytest.raises(FileExistsError):
        claim_checkpoint(tmp_path, "a name", "261207-abcd")


def test_a_clash_with_a_file_from_another_store_draws_another_id(tmp_path, monkeypatch):
    """Two machines sharing a folder keep separate run stores: the same id there must not share a file."""
    ids = iter(["261207-0001", "261207-0001", "261207-0002"])
    monkeypatch.setattr("cifar_lab.runner.new_run_id", lambda: next(ids))
    other = RunStore(tmp_path / "other.db")
    mine = RunStore(tmp_path / "mine.db")
    theirs = new_run(TINY, folder=tmp_path, store=other, name="same")
    ours = new_run(TINY, folder=tmp_path, store=mine, name="same")
    assert (theirs.run_id, ours.run_id) == ("261207-0001", "261207-0002")
    assert theirs.checkpoint != ours.checkpoint


def test_a_long_or_exotic_name_makes_a_short_safe_file_name(tmp_path, data):
    name = "🦊" * 60  # passes the 100-character limit, but its UTF-8 would be 240 bytes before any suffix
    result = start_run(TINY.replace(epochs=1), data, tmp_path, RunStore(tmp_path / "runs.db"), name=name)
    assert result.run().status == "completed"
    path = result.checkpoint_path
    assert path.parent == tmp_path and path.name.isascii() and len(path.name.encode()) < 80
    assert RunStore(tmp_path / "runs.db").get_run(result.run_id).name == name  # the label keeps what was typed


# --- 2. refuse before training what cannot be saved --------------------------------------------------------------


def test_out_naming_a_file_is_refused_before_anything_is_written(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    code, _, err = run_cli(capsys, "train", *FLAGS, "--out", target, "--runs-db", tmp_path / "runs.db")
    assert code == cli.EXIT_USER_ERROR and len(err.strip().splitlines()) == 1
    assert f"{target} is a file, not a folder" in err and "--out" in err
    assert target.read_text() == "keep me" and not (tmp_path / "runs.db").exists()


def test_a_read_only_file_system_is_refused_before_training(tmp_path, monkeypatch, capsys):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(run_files.os, "open", read_only)
    code, _, err = run_cli(capsys, "train", *FLAGS, "--out", tmp_path, "--runs-db", tmp_path / "runs.db")
    assert code == cli.EXIT_USER_ERROR and "read-only file system: choose another --out folder" in err
    assert "epoch" not in err  # no training happened
    assert RunStore(tmp_path / "runs.db").list_runs() == []


def test_too_little_free_space_is_refused_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_files.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    code, _, err = run_cli(capsys, "train", *FLAGS, "--out", tmp_path)
    assert code == cli.EXIT_USER_ERROR and "MB free in" in err and "free some disk space" in err


def test_a_full_disk_at_a_save_exits_2_with_the_cause_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    real_fsync, calls = os.fsync, []

    def full_after_one(fd):
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(ckpt_module.os, "fsync", full_after_one)
    db = tmp_path / "runs.db"
    code, _, err = run_cli(capsys, "train", *FLAGS, "--epochs", "3", "--out", tmp_path, "--runs-db", db)
    assert code == cli.EXIT_USER_ERROR
    message = err.strip().splitlines()[-1]
    assert message.startswith("error: could not save epoch 2: the disk holding") and "is full" in message
    assert "enforce fail" not in err  # exit status 2 above: caught and worded, not a traceback
    record = RunStore(db).list_runs()[0]
    assert record.status == "failed" and record.message in message and record.epochs_done == 1
    assert load_checkpoint(record.checkpoint).epoch == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_device_cuda_without_cuda_records_nothing(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run_cli(
        capsys, "train", *FLAGS, "--device", "cuda", "--out", tmp_path, "--runs-db", tmp_path / "runs.db"
    )
    assert code == cli.EXIT_USER_ERROR and "no CUDA GPU" in err
    assert not (tmp_path / "runs.db").exists() and not list(tmp_path.glob("*.pth"))


def test_temporaries_of_dead_saves_are_swept_at_the_next_start(tmp_path):
    dead = tmp_path / ".old.pth.4000000.abcd.tmp"  # no such pid
    live = tmp_path / f".busy.pth.{os.getpid()}.efgh.tmp"
    other = tmp_path / ".unrelated.tmp"
    for path in (dead, live, other):
        path.write_bytes(b"partial")
        os.utime(path, (time.time() - 120, time.time() - 120))
    assert sweep_stale_temporaries(tmp_path) == [dead]
    assert live.exists() and other.exists()
    os.utime(live, (time.time() - 3600, time.time() - 3600))
    assert sweep_stale_temporaries(tmp_path) == [live]  # an hour-old temporary is dead whoever wrote it


def test_a_run_that_never_saved_leaves_no_empty_file(tmp_path, data):
    stop_at_once = threading.Event()
    stop_at_once.set()
    run = start_run(TINY, data, tmp_path, RunStore(tmp_path / "runs.db"))
    assert run.checkpoint_path.exists()  # claimed before training
    assert run.run(stop=stop_at_once).status == "stopped"
    assert not run.checkpoint_path.exists()


# --- 5 and 6. resume tells the truth -----------------------------------------------------------------------------


def test_an_empty_resume_id_is_an_error(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--resume", "", "--runs-db", tmp_path / "runs.db")
    assert code == cli.EXIT_USER_ERROR and "--resume needs a run id" in err


@pytest.fixture()
def stopped_run(tmp_path, data):
    """A run stopped after its first of two epochs: (store, run id, its checkpoint)."""
    store = RunStore(tmp_path / "runs.db")
    stop = threading.Event()
    run = start_run(TINY, data, tmp_path, store)
    run.run(stop=stop, on_event=lambda e: stop.set() if type(e).__name__ == "EpochEnd" else None)
    return store, run.run_id, run.checkpoint_path


def rewrite(path: Path, **resume_changes) -> None:
    """Re-save the checkpoint with parts of its resume state replaced, as a hand edit would."""
    raw = torch.load(path, weights_only=True)
    raw["resume"].update(resume_changes)
    torch.save(raw, path)


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(epoch=99), "epoch 99 is not between 1 and the run's 2 epochs"),
        (dict(step=0), "step 0"),
        (dict(generator=torch.zeros(3)), "generator is not a random-number generator state"),
        (dict(optimizer={"state": {}, "param_groups": []}), "the optimizer state does not fit this model"),
    ],
)
def test_damaged_resume_state_is_refused_with_a_message(stopped_run, change, words):
    store, run_id, path = stopped_run
    rewrite(path, **change)
    with pytest.raises(RunStoreError, match="saved training state is damaged") as err:
        resume_run(store, run_id)
    assert words in str(err.value) and f"start run {run_id} again" in str(err.value)


def test_an_optimizer_buffer_of_the_wrong_shape_is_refused(stopped_run):
    store, run_id, path = stopped_run
    raw = torch.load(path, weights_only=True)
    first = next(iter(raw["resume"]["optimizer"]["state"].values()))
    first["momentum_buffer"] = torch.zeros(1, 2, 3)
    torch.save(raw, path)
    with pytest.raises(RunStoreError, match="optimizer buffer momentum_buffer has shape"):
        resume_run(store, run_id)


def test_a_sound_stopped_run_resumes(stopped_run):
    store, run_id, _ = stopped_run
    plan = resume_run(store, run_id)
    assert plan.saved_epoch == 1 and plan.run_id == run_id


# --- eight processes at once -------------------------------------------------------------------------------------

CONCURRENT = 8
STARTER = """
import os, sys, time
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.001)
from cifar_lab.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_eight_processes_and_the_dashboard_starting_in_the_same_instant_lose_no_checkpoint(tmp_path, monkeypatch):
    """Same name, same folder, same database, one start signal: 8 CLI runs and a dashboard job, 9 files, each
    holding the model its own row's seed trains."""
    out, db, go = tmp_path / "runs", tmp_path / "runs" / "cifar_lab.db", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                STARTER,
                str(go),
                "train",
                *FLAGS,
                "--out",
                str(out),
                "--runs-db",
                str(db),
                "--name",
                "same",
                "--seed",
                str(seed),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for seed in range(CONCURRENT)
    ]
    monkeypatch.setenv("CIFAR_LAB_RUNS_DB", str(db))
    dashboard = JobManager(out)
    config = cli.config_from_args(cli.build_parser().parse_args(["train", *FLAGS, "--seed", "100"]))
    time.sleep(3)  # every interpreter is up and waiting
    go.touch()
    job = dashboard.start(config, source="synthetic", name="same")
    results = [p.communicate(timeout=300) for p in procs]
    assert job.join(300) and job.status == "completed", job.snapshot().message
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in results]
    summaries = [json.loads(stdout.splitlines()[-1]) for stdout, _ in results]
    summaries.append({"checkpoint": str(job.checkpoint_path), "config": config.to_dict()})
    records = RunStore(db).list_runs()
    print(
        f"\n{CONCURRENT} processes and a dashboard job: {len(records)} runs, "
        f"{len({r.checkpoint for r in records})} files"
    )
    assert len(records) == CONCURRENT + 1 and len({r.checkpoint for r in records}) == CONCURRENT + 1
    for record in records:
        saved = load_checkpoint(record.checkpoint)
        assert saved.config == record.train_config  # file and row agree: nothing crossed
    data = load_data("synthetic")  # what each process trained on
    for summary in summaries:  # the weights in each file are those its row's seed trains
        config = TrainConfig.from_dict(summary["config"])
        expected = train(config, data).model.state_dict()
        saved = load_checkpoint(summary["checkpoint"]).model.state_dict()
        assert all(torch.equal(expected[k], saved[k]) for k in expected), f"seed {config.seed}: weights differ"


# --- 3. limits from the machine ----------------------------------------------------------------------------------


def test_more_memory_than_is_free_is_refused_before_any_record_or_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("cifar_lab.limits.available_memory", lambda *args, **kwargs: 50_000_000)
    code, _, err = run_cli(
        capsys, "train", *FLAGS, "--batch-size", "1024", "--out", tmp_path, "--runs-db", tmp_path / "runs.db"
    )
    assert code == cli.EXIT_USER_ERROR and "is free: lower --batch-size" in err
    assert RunStore(tmp_path / "runs.db").list_runs() == [] and not list(tmp_path.glob("*.pth"))


def test_more_threads_than_cores_are_lowered_and_said(tmp_path, capsys):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    code, _, err = run_cli(
        capsys, "train", *FLAGS, "--threads", "1024", "--out", tmp_path, "--runs-db", tmp_path / "runs.db"
    )
    assert code == 0 and f"note: --threads 1024 lowered to {cores}" in err


def test_a_run_that_ran_out_of_memory_is_failed_and_not_offered_for_resume(tmp_path, data, monkeypatch):
    store = RunStore(tmp_path / "runs.db")
    run = start_run(TINY.replace(epochs=3), data, tmp_path, store)

    def allocator_gives_up(event):
        if type(event).__name__ == "EpochEnd" and event.epoch == 2:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    result = run.run(on_event=allocator_gives_up)
    record = store.get_run(run.run_id)
    assert result.status == record.status == "failed" and record.out_of_memory
    assert "ran out of memory" in record.message and "--batch-size" in record.message
    with pytest.raises(RunStoreError):
        resume_run(store, run.run_id)


def test_a_folder_on_a_read_only_mount_is_named_as_such_before_any_space_check(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_files.os, "access", lambda path, mode: False)
    monkeypatch.setattr(run_files.os, "statvfs", lambda path: SimpleNamespace(f_flag=os.ST_RDONLY))
    monkeypatch.setattr(run_files.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    code, _, err = run_cli(capsys, "train", *FLAGS, "--out", tmp_path, "--runs-db", tmp_path / "runs.db")
    assert code == cli.EXIT_USER_ERROR and f"{tmp_path} is on a read-only file system" in err and "MB free" not in err


def test_the_memory_is_checked_once_per_start(tmp_path, data, monkeypatch):
    import cifar_lab.runner as runner_module

    calls = []
    real = runner_module.check_memory
    monkeypatch.setattr(runner_module, "check_memory", lambda *a, **k: calls.append(a) or real(*a, **k))
    plan = new_run(TINY.replace(epochs=1), folder=tmp_path, data=data)  # checked here, with the data
    assert TrainingRun(plan, data).run().status == "completed" and len(calls) == 1
    plan = new_run(TINY.replace(epochs=1), folder=tmp_path)  # no data yet (a job loading its own): checked at start
    assert TrainingRun(plan, data).run().status == "completed" and len(calls) == 2
