"""Resuming: a run stopped or killed after epoch 1 of 3 ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import continue_run, start_run

from cifar_lab import cli, models
from cifar_lab.checkpoint import load_checkpoint
from cifar_lab.config import TrainConfig
from cifar_lab.data import synthetic_data
from cifar_lab.events import EpochEnd
from cifar_lab.resume import load_resume
from cifar_lab.runs import RunStore, RunStoreError

ROOT = Path(__file__).resolve().parents[1]

# Every source of randomness on: shuffling and augmentation (the run's generator), dropout (torch's global RNG),
# BatchNorm statistics, SGD momentum and a schedule that depends on the step.
CONFIG = TrainConfig(
    arch="cnn",
    width=8,
    depth=2,
    batchnorm=True,
    dropout=0.2,
    flip=True,
    crop_pad=2,
    cutout=4,
    batch_size=32,
    epochs=3,
    schedule="onecycle",
    lr=0.05,
    eval_subset=0,
    seed=3,
    precision="fp32",
    device="cpu",
    threads=1,
)
CLI_FLAGS = [
    "--data",
    "synthetic",
    "--preset",
    "tutorial",
    "--arch",
    "cnn",
    "--width",
    "8",
    "--depth",
    "1",
    "--batch-size",
    "32",
    "--epochs",
    "3",
    "--threads",
    "1",
    "--flip",
    "--dropout",
    "0.1",
    "--json",
]


@pytest.fixture(scope="module")
def data():
    return synthetic_data(n_train=256, n_test=64)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"tensors differ after resuming: {differ}"


def stop_after_epoch(stop: threading.Event, epoch: int):
    return lambda event: stop.set() if isinstance(event, EpochEnd) and event.epoch == epoch else None


@pytest.mark.parametrize("arch", ["cnn", "fastnet"])
def test_stopped_then_resumed_equals_uninterrupted(tmp_path, data, arch):
    config = CONFIG.replace(arch=arch)
    whole = start_run(config, data, tmp_path).run()
    store = RunStore(tmp_path / "runs.db")
    stop = threading.Event()
    first = start_run(config, data, tmp_path, store)
    assert first.run(stop=stop, on_event=stop_after_epoch(stop, 1)).status == "stopped"
    record = store.get_run(first.run_id)
    assert (record.status, record.epochs_done) == ("stopped", 1)
    assert max(s.step for s in store.steps(record.id)) == 8  # 256 / 32 steps of epoch 1 only

    resumed = continue_run(store, record.id, data).run()
    assert resumed.status == "completed" and resumed.epochs_done == 3
    assert [e.epoch for e in resumed.history] == [2, 3]
    assert_same_weights(whole.model.state_dict(), resumed.model.state_dict())
    assert resumed.test_accuracy == whole.test_accuracy
    record = store.get_run(record.id)
    assert (record.status, record.epochs_done, record.test_accuracy) == ("completed", 3, whole.test_accuracy)
    assert [e.test_acc for e in store.epochs(record.id)] == [e.test_acc for e in whole.history]
    assert [s.step for s in store.steps(record.id)] == list(range(1, 25))


def test_a_fastnet_run_stopped_before_the_third_conv_resumes_in_its_own_layout(tmp_path, data, monkeypatch):
    def two_conv_fastnet(config, num_classes):  # fastnet as it was before its last group had a third conv
        model = real_fastnet(config, num_classes)
        model.groups[2].conv3 = model.groups[2].norm3 = None
        return model

    real_fastnet = models.MODELS["fastnet"]
    config = CONFIG.replace(arch="fastnet", opt="muon", lr=0.2, weight_decay=5e-4)
    store = RunStore(tmp_path / "runs.db")
    stop = threading.Event()
    with monkeypatch.context() as old_code:
        old_code.setitem(models.MODELS, "fastnet", two_conv_fastnet)
        whole = start_run(config, data, tmp_path).run()
        first = start_run(config, data, tmp_path, store)
        assert first.run(stop=stop, on_event=stop_after_epoch(stop, 1)).status == "stopped"
    record = store.get_run(first.run_id)
    resumed = continue_run(store, record.id, data).run()
    assert resumed.status == "completed" and resumed.model.groups[2].conv3 is None
    assert_same_weights(whole.model.state_dict(), resumed.model.state_dict())


def test_a_run_cannot_be_resumed_twice_or_once_completed(tmp_path, data):
    store = RunStore(tmp_path / "runs.db")
    stop = threading.Event()
    session = start_run(CONFIG, data, tmp_path, store)
    session.run(stop=stop, on_event=stop_after_epoch(stop, 1))
    record = store.get_run(session.run_id)
    resume = load_resume(record)
    store.begin_resume(record.id, epoch=resume["epoch"], step=resume["step"])  # another process claimed it
    with pytest.raises(RunStoreError, match="is running"):
        store.begin_resume(record.id, epoch=resume["epoch"], step=resume["step"])
    store.finish(record.id, "completed")
    with pytest.raises(RunStoreError, match="only stopped, interrupted or failed"):
        load_resume(store.get_run(record.id))


def test_a_run_stopped_before_its_first_epoch_has_nothing_to_resume(tmp_path, data):
    store = RunStore(tmp_path / "runs.db")
    stop = threading.Event()
    stop.set()
    session = start_run(CONFIG, data, tmp_path, store)
    assert session.run(stop=stop).status == "stopped"
    with pytest.raises(RunStoreError, match="start it again"):
        load_resume(store.get_run(session.run_id))


@pytest.fixture()
def small_synthetic(monkeypatch, data):
    """`--data synthetic` in this process gives the module's 256-image set instead of the default 2000."""
    import cifar_lab.data

    real = cifar_lab.data.load_data
    monkeypatch.setattr(
        cifar_lab.data, "load_data", lambda source=None, **kw: data if source == "synthetic" else real(source, **kw)
    )


def cli_json(capsys, argv: list[str]) -> dict:
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_resume_after_ctrl_c_matches_an_uninterrupted_run(tmp_path, capsys, monkeypatch, small_synthetic):
    db = str(tmp_path / "runs.db")
    whole = cli_json(capsys, ["train", *CLI_FLAGS, "--out", str(tmp_path), "--name", "whole", "--runs-db", db])
    assert whole["status"] == "completed" and whole["epochs"] == 3

    class CtrlCAfterEpoch1(cli.ProgressPrinter):
        def __call__(self, event):
            super().__call__(event)
            if isinstance(event, EpochEnd) and event.epoch == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr(cli, "ProgressPrinter", CtrlCAfterEpoch1)
    assert cli.main(["train", *CLI_FLAGS, "--out", str(tmp_path), "--name", "split", "--runs-db", db]) == 130
    run_id = capsys.readouterr().err.split("run ", 1)[1].split()[0]
    assert RunStore(db).get_run(run_id).status == "interrupted"
    monkeypatch.setattr(cli, "ProgressPrinter", CtrlCAfterEpoch1.__base__)

    assert cli.main(["train", "--resume", run_id, "--runs-db", db, "--lr", "1"]) == cli.EXIT_USER_ERROR
    assert "drop --lr" in capsys.readouterr().err
    resumed = cli_json(capsys, ["train", "--resume", run_id, "--runs-db", db, "--json"])
    assert (resumed["status"], resumed["run_id"], resumed["epochs"]) == ("completed", run_id, 3)
    assert resumed["test_accuracy"] == whole["test_accuracy"] and resumed["config"] == whole["config"]
    assert_same_weights(
        load_checkpoint(whole["checkpoint"]).model.state_dict(),
        load_checkpoint(resumed["checkpoint"]).model.state_dict(),
    )

    assert cli.main(["train", "--resume", run_id, "--runs-db", db]) == cli.EXIT_USER_ERROR
    assert "is completed" in capsys.readouterr().err
    assert cli.main(["runs", "--json", "--runs-db", db]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert {r["id"]: r["status"] for r in runs} == {whole["run_id"]: "completed", run_id: "completed"}


def test_a_killed_training_process_is_marked_interrupted_and_can_be_resumed(tmp_path):
    db = tmp_path / "runs.db"
    argv = [
        sys.executable,
        "-m",
        "cifar_lab",
        "train",
        *CLI_FLAGS,
        "--epochs",
        "1000",
        "--out",
        str(tmp_path),
        "--name",
        "killed",
        "--runs-db",
        str(db),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not any(r.epochs_done >= 1 for r in RunStore(db).list_runs()):
            assert proc.poll() is None and time.monotonic() < deadline, "the training process never got going"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)  # no chance to record anything: the server was "pulled out"
        proc.wait()
    store = RunStore(db)
    (record,) = store.list_runs()
    assert record.status == "running" and record.pid == proc.pid
    assert store.mark_interrupted() == [record.id]
    record = store.get_run(record.id)
    assert record.status == "interrupted" and f"--resume {record.id}" in record.message
    resume = load_resume(record)
    assert resume["epoch"] >= 1 and set(resume) >= {"model", "optimizer", "generator", "torch_rng", "step"}
