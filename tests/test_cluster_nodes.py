"""A real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster: a head and two one-CPU nodes, loopback
only): a sweep's trials spread over both nodes and come home; a node that leaves mid-trial fails its run, recorded,
and nothing hangs."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections import Counter
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from cifar_lab import cluster, sweep
from cifar_lab.cli import main
from cifar_lab.data import synthetic_data
from cifar_lab.events import EpochEnd
from cifar_lab.executors import make_executor
from cifar_lab.resume import resume_problem
from cifar_lab.runner import TrainingRun, resume_run
from cifar_lab.runs import RunStore
from cifar_lab.sweep_space import parse_param

pytestmark = pytest.mark.ray_cluster
HANG_S = 240  # far more than any of these takes; past it the test fails instead of hanging CI


@pytest.fixture()
def two_nodes():
    """A head with no CPUs (only home's mailbox lives there) and two nodes of one CPU each."""
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [nodes.add_node(num_cpus=1) for _ in range(2)]
    nodes.wait_for_nodes()
    cluster.connect(nodes.address)
    yield nodes, workers
    ray.shutdown()
    nodes.shutdown()


def finished_within(target, seconds: float = HANG_S):
    """target()'s value, run on a thread; fails the test if it has not returned in time."""
    box: dict = {}

    def call() -> None:
        try:
            box["value"] = target()
        except BaseException as err:
            box["error"] = err

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_a_sweep_runs_trials_on_both_nodes_and_brings_them_home(two_nodes, tmp_path, tiny_config):
    nodes, _ = two_nodes
    store = RunStore(tmp_path / "runs.db")
    data = synthetic_data(n_train=1000, n_test=200)
    spec = sweep.SweepSpec(tiny_config.replace(epochs=3), (parse_param("lr=0.01,0.02,0.05,0.1"),))
    stopped: list[str] = []

    def stop_the_last(what: str, trial) -> None:
        if what == "started" and trial.params["lr"] == 0.1:
            stopped.append(trial.run_id)
            job.stop_trial(trial.run_id)

    job = sweep.Sweep(spec, data, folder=tmp_path, store=store, address=nodes.address, on_trial=stop_the_last)
    summary = finished_within(job.run)
    print(json.dumps({k: v for k, v in summary.items() if k != "trials"}, indent=1))
    trials = summary["trials"]
    per_node = Counter(t["node"] for t in trials)
    print("trials per node:", dict(per_node))
    assert len(trials) == 4 and len(per_node) == 2  # both nodes trained
    runs = {r.id: r for r in store.list_runs()}
    assert {r.sweep for r in runs.values()} == {summary["sweep_id"]} and len(runs) == 4
    assert {runs[t["run_id"]].node for t in trials} == set(per_node)
    assert Counter(t["status"] for t in trials) == {"completed": 3, "stopped": 1}
    assert runs[stopped[0]].status == "stopped"
    done = next(t for t in trials if t["status"] == "completed")
    checkpoint = Path(runs[done["run_id"]].checkpoint)
    assert checkpoint.parent == tmp_path  # trained on another node, saved at home
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["evaluate", str(checkpoint), "--data", "synthetic", "--json"]) == 0
    assert json.loads(out.getvalue())["test_accuracy"] == pytest.approx(done["test_accuracy"], abs=0.02)


def test_a_node_that_leaves_mid_trial_fails_its_run_and_nothing_hangs(two_nodes, tmp_path, tiny_config):
    nodes, workers = two_nodes
    store = RunStore(tmp_path / "runs.db")
    data = synthetic_data(n_train=4000, n_test=100)
    spec = sweep.SweepSpec(tiny_config.replace(epochs=12), (parse_param("lr=0.02,0.05"),))
    removed: list[str] = []

    def remove_its_node(event) -> None:
        if isinstance(event, EpochEnd) and not removed:
            record = next(r for r in store.list_runs() if r.epochs_done and r.status == "running")
            node = next(w for w in workers if record.node.endswith(w.node_id[:8]))
            removed.append(record.id)
            nodes.remove_node(node)

    job = sweep.Sweep(spec, data, folder=tmp_path, store=store, address=nodes.address, listeners=(remove_its_node,))
    summary = finished_within(job.run)
    statuses = {t["run_id"]: t["status"] for t in summary["trials"]}
    lost = store.get_run(removed[0])
    print("lost:", lost.status, lost.epochs_done, lost.message)
    assert statuses[removed[0]] == "failed" and lost.status == "failed"
    assert "without finishing" in lost.message and "node" in lost.message
    assert lost.epochs_done >= 1 and Path(lost.checkpoint).exists()
    assert [s for r, s in statuses.items() if r != removed[0]] == ["completed"]
    assert resume_problem(lost) == ""  # its saved epochs are home: it goes on where the cluster has room
    stop = threading.Event()
    again = TrainingRun(
        resume_run(store, lost.id),
        data,
        store=store,
        listeners=(lambda e: stop.set() if isinstance(e, EpochEnd) else None,),
        executor=make_executor("ray", nodes.address),
    )
    assert finished_within(lambda: again.run(stop=stop)).epochs_done > lost.epochs_done
    assert store.get_run(lost.id).node not in ("", lost.node)  # the node that is left
