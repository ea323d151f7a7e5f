"""Runs and sweeps on Ray, against a real two-CPU Ray instance on this machine (ray.init(num_cpus=2), loopback)."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
from pathlib import Path

import pytest
import ray

from cifar_lab import cluster, sweep
from cifar_lab.cli import main
from cifar_lab.data import synthetic_data
from cifar_lab.events import EpochEnd, Finished, Step
from cifar_lab.executors import RAY_INSTALL, ThreadExecutor, make_executor
from cifar_lab.runner import TrainingRun, new_run, resume_run
from cifar_lab.runs import RunStore
from cifar_lab.sweep_record import stored_trials

FAST = ["--data", "synthetic", "--arch", "cnn", "--opt", "sgd", "--width", "8", "--depth", "1"]
FAST += ["--batch-size", "64", "--precision", "fp32", "--threads", "1", "--eval-subset", "0"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, **cluster.init_options())  # loopback only: conftest.py
    yield
    ray.shutdown()


def cli(workdir: Path, *argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.chdir(workdir)
        mp.setenv("CIFAR_LAB_RUNS", str(workdir / "runs"))
        mp.delenv("CIFAR_LAB_RUNS_DB", raising=False)
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_train_on_ray_records_its_node_and_brings_the_checkpoint_home(local_ray, tmp_path):
    code, out, err = cli(tmp_path, "train", *FAST, "--epochs", "2", "--ray", "local", "--json")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "completed"
    here = cluster.this_ray_node()  # a task of this one-node instance reports the same node
    assert summary["node"] == here
    assert Path(summary["checkpoint"]).parent == tmp_path / "runs"
    code, out, err = cli(tmp_path, "runs", "--json")
    assert [r["node"] for r in json.loads(out)] == [here]
    code, out, err = cli(tmp_path, "evaluate", summary["checkpoint"], "--data", "synthetic", "--json")
    assert code == 0, err
    assert json.loads(out)["test_accuracy"] == pytest.approx(summary["test_accuracy"])


def test_a_ray_run_streams_the_same_events_and_saves_every_epoch_at_home(local_ray, tmp_path, tiny_data, tiny_config):
    config = tiny_config.replace(epochs=2)
    store = RunStore(tmp_path / "runs.db")
    seen: list = []
    saved: list[int] = []
    run = TrainingRun(
        new_run(config, folder=tmp_path, store=store), tiny_data, store=store, executor=make_executor("ray")
    )
    run.listeners = (seen.append, lambda e: saved.append(run.saved_epoch) if isinstance(e, EpochEnd) else None)
    result = run.run()
    assert result.status == "completed"
    kinds = [type(e).__name__ for e in seen if not isinstance(e, Step)]
    assert kinds == ["EarlyScore"] * kinds.count("EarlyScore") + ["EpochEnd", "EpochEnd", "Finished"]
    assert saved == [1, 2]  # each epoch's checkpoint was written here before the next listener heard of it
    assert isinstance(seen[-1], Finished) and seen[-1].test_accuracy == result.test_accuracy
    record = store.get_run(run.run_id)
    assert record.status == "completed" and record.node == cluster.this_ray_node()
    here = TrainingRun(new_run(config, folder=tmp_path, store=store), tiny_data, store=store).run()
    assert here.test_accuracy == pytest.approx(result.test_accuracy)  # same seed, same result, wherever it trained


def test_stop_ends_a_ray_run_early_and_it_resumes_from_home(local_ray, tmp_path, tiny_config):
    data = synthetic_data(n_train=4000, n_test=100)
    config = tiny_config.replace(
        epochs=12
    )  # seconds of steps: the stop (0.25 s on its way) arrives long before the end
    store = RunStore(tmp_path / "runs.db")
    stop = threading.Event()
    steps: list[int] = []

    def stop_after_first_epoch(event) -> None:
        if isinstance(event, Step):
            steps.append(event.step)
        if isinstance(event, EpochEnd):
            stop.set()

    plan = new_run(config, folder=tmp_path, store=store)
    run = TrainingRun(plan, data, store=store, listeners=(stop_after_first_epoch,), executor=make_executor("ray"))
    result = run.run(stop=stop)
    assert result.status == "stopped"
    assert 1 <= result.epochs_done < config.epochs
    record = store.get_run(plan.run_id)
    assert record.status == "stopped" and record.epochs_done == result.epochs_done
    resumed = TrainingRun(resume_run(store, plan.run_id), data, store=store, executor=make_executor("ray")).run()
    assert resumed.status == "completed" and resumed.epochs_done == config.epochs
    assert store.get_run(plan.run_id).status == "completed"


def test_a_run_that_fails_on_its_node_is_recorded_failed_with_why(local_ray, tmp_path, tiny_data, tiny_config):
    store = RunStore(tmp_path / "runs.db")
    config = tiny_config.replace(epochs=1, minutes=0.001)  # no run fits in 0.06 s: refused where it would train
    plan = new_run(config, folder=tmp_path, store=store)
    result = TrainingRun(plan, tiny_data, store=store, executor=make_executor("ray")).run()
    assert result.status == "failed"
    record = store.get_run(plan.run_id)
    assert record.status == "failed" and "minute" in record.message


def test_a_sweep_compares_trials_on_the_hold_out_and_tags_them(local_ray, tmp_path):
    code, out, err = cli(
        tmp_path, "sweep", *FAST, "--epochs", "1", "--param", "lr=0.02,0.05", "--ray", "local", "--json"
    )
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert set(summary) >= {"sweep_id", "best", "trials"}
    trials = summary["trials"]
    assert len(trials) == 2
    for trial in trials:
        assert set(trial) >= {"run_id", "config", "val_accuracy", "test_accuracy", "status", "node"}
        assert trial["status"] == "completed" and trial["node"]
        assert trial["config"]["validation"] == 200  # a tenth of synthetic data's 2,000 training images
    assert {t["config"]["lr"] for t in trials} == {0.02, 0.05}
    best = max(trials, key=lambda t: t["val_accuracy"])
    assert summary["best"]["run_id"] == best["run_id"]  # chosen on the hold-out, whatever the test set says
    code, out, err = cli(tmp_path, "runs", "--json")
    runs = {r["id"]: r for r in json.loads(out)}
    assert {runs[t["run_id"]]["sweep"] for t in trials} == {summary["sweep_id"]}


def test_a_sweep_trial_stopped_from_home_is_recorded_stopped(local_ray, tmp_path, tiny_data, tiny_config):
    from cifar_lab.sweep_space import parse_param

    store = RunStore(tmp_path / "runs.db")
    spec = sweep.SweepSpec(tiny_config.replace(epochs=3), (parse_param("lr=0.02,0.05"),))
    stopped: list[str] = []

    def stop_first(what: str, trial) -> None:
        if what == "started" and not stopped:
            stopped.append(trial.run_id)
            job.stop_trial(trial.run_id)

    job = sweep.Sweep(spec, tiny_data, folder=tmp_path, store=store, address="local", on_trial=stop_first)
    summary = job.run()
    statuses = {t["run_id"]: t["status"] for t in summary["trials"]}
    assert statuses.pop(stopped[0]) == "stopped"
    assert list(statuses.values()) == ["completed"]


def test_asha_ends_a_trailing_trial_early_and_says_so(local_ray, tmp_path, tiny_data, tiny_config):
    from cifar_lab.sweep_space import parse_param

    store = RunStore(tmp_path / "runs.db")
    spec = sweep.SweepSpec(
        tiny_config.replace(epochs=4), (parse_param("lr=0.05,0.03,0.00001"),), scheduler="asha"
    )  # the last learns nothing in four epochs: at chance when the first two are far above it
    summary = sweep.Sweep(spec, tiny_data, folder=tmp_path, store=store, address="local").run()
    by_lr = {t["params"]["lr"]: t for t in summary["trials"]}
    weak = store.get_run(by_lr[0.00001]["run_id"])
    assert weak.status == "stopped" and weak.epochs_done < 4
    assert "ASHA" in weak.message
    assert weak.epochs_done >= 1 and Path(weak.checkpoint).exists()  # the epoch Tune judged was saved at home
    assert by_lr[0.05]["status"] == "completed"
    assert summary["best"]["run_id"] in (by_lr[0.05]["run_id"], by_lr[0.03]["run_id"])
    kept = {t.run_id: t for t in stored_trials(store, summary["sweep_id"])}  # as a later page reads the sweep
    assert kept[weak.id].val_accuracy == by_lr[0.00001]["val_accuracy"] is not None
    assert kept[weak.id].params == {"lr": 0.00001}


def test_asking_for_ray_without_it_exits_2_naming_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    for argv in (["train", *FAST, "--ray", "local"], ["sweep", *FAST, "--param", "lr=0.1,0.2"]):
        code, _out, err = cli(tmp_path, *argv)
        assert code == 2
        assert RAY_INSTALL in err
    monkeypatch.setenv("CIFAR_LAB_EXECUTOR", "ray")
    code, _out, err = cli(tmp_path, "train", *FAST)
    assert code == 2 and RAY_INSTALL in err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*.pth"))


def test_a_run_here_records_this_computer_as_its_node(tmp_path, tiny_data, tiny_config):
    import socket

    store = RunStore(tmp_path / "runs.db")
    plan = new_run(tiny_config, folder=tmp_path, store=store)
    TrainingRun(plan, tiny_data, store=store).run()
    assert store.get_run(plan.run_id).node == socket.gethostname()


def test_the_thread_executor_stays_the_default(monkeypatch):
    monkeypatch.delenv("CIFAR_LAB_EXECUTOR", raising=False)
    assert isinstance(make_executor(), ThreadExecutor)
    monkeypatch.setenv("CIFAR_LAB_EXECUTOR", "slurm")
    with pytest.raises(ValueError, match="thread, ray"):
        make_executor()
