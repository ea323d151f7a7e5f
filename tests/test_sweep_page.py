"""The dashboard on Ray: the class queue trains on a Ray executor, the Class page shows the cluster's nodes, and the
Sweep page (the teacher's) fills a table live and sends a trial's settings to the Train form. A real two-CPU Ray
instance on this machine."""

from __future__ import annotations

import pytest
import ray
from apptest_helpers import button_starting, lab_environment, lab_manager, open_page, stop_everything

from cifar_lab import cluster
from cifar_lab.config import TrainConfig
from cifar_lab.dashboard.jobs import JobManager
from cifar_lab.dashboard.sweeps import SweepDesk, shared_desk
from cifar_lab.data import synthetic_data
from cifar_lab.executors import ENV_EXECUTOR, ThreadExecutor, make_executor
from cifar_lab.roles import NotAllowed, Viewer
from cifar_lab.sweep import SweepSpec
from cifar_lab.sweep_space import parse_param

SWEEP = "pages/10_Sweep.py"
CLASS = "pages/8_Class.py"
TINY = dict(arch="cnn", opt="sgd", width=8, depth=1, batch_size=64, epochs=2, eval_subset=0, precision="fp32")
TINY_RUN = TrainConfig(**TINY, threads=1, device="cpu")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, **cluster.init_options())  # loopback only: conftest.py
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def lab_env(tmp_path, monkeypatch):
    yield lab_environment(tmp_path, monkeypatch)
    stop_everything(lab_manager())


def test_the_class_queue_trains_on_ray_and_records_the_node(local_ray, tmp_path):
    jobs = JobManager(tmp_path / "queue", executor=make_executor("ray"))
    run_id = jobs.submit(TINY_RUN, owner="Ada", source="synthetic")
    job = jobs.job(run_id)
    assert job is not None and job.join(120)
    record = jobs.store.get_run(run_id)
    assert record.status == "completed" and record.node == cluster.this_ray_node()
    assert jobs.slots == 1  # one run of every core fits the one two-CPU node


def test_a_cluster_asked_for_without_ray_trains_here_and_says_why(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setenv(ENV_EXECUTOR, "ray")
    jobs = JobManager(tmp_path / "queue")
    assert isinstance(jobs.executor, ThreadExecutor)
    assert "pip install 'ray[tune]'" in jobs.executor_problem


def test_the_class_page_shows_the_cluster_s_nodes(local_ray, monkeypatch):
    monkeypatch.setenv(ENV_EXECUTOR, "ray")
    at = open_page(CLASS, name="", teacher=True)
    assert "Cluster" in [s.value for s in at.subheader]
    assert "1 computer(s) up, room for 1 run(s) at a time." in [c.value for c in at.caption]
    nodes = next(d for d in at.dataframe if "node" in d.value.columns).value
    assert list(nodes["node"]) == [cluster.this_ray_node()] and next(iter(nodes["CPUs free"])).endswith("of 2")


def test_only_the_teacher_starts_a_sweep(local_ray, tmp_path):
    at = open_page(SWEEP)
    assert not [b for b in at.button if b.label == "Start sweep"]
    assert any("Only the teacher starts sweeps" in c.value for c in at.caption)
    spec = SweepSpec(TINY_RUN, (parse_param("lr=0.01,0.02"),))
    with pytest.raises(NotAllowed):
        SweepDesk().start(spec, synthetic_data(), folder=str(tmp_path), store=lab_manager().store, by=Viewer("Ada"))


def test_a_bad_value_in_the_sweep_form_is_refused_with_the_fix(local_ray):
    at = open_page(SWEEP, name="", teacher=True)
    at.text_input(key="sweep_values_0").set_value("0.5, fast").run()
    button_starting(at, "Start sweep").click().run()
    assert "'fast' is not a valid lr" in at.error[0].value


def test_a_sweep_run_from_the_command_line_is_shown_from_the_store(local_ray, tmp_path):
    from cifar_lab.sweep import Sweep

    spec = SweepSpec(TINY_RUN.replace(epochs=1), (parse_param("width=8,16"),), preset="classroom")
    summary = Sweep(spec, synthetic_data(), folder=str(tmp_path), store=lab_manager().store, address="local").run()
    at = open_page(SWEEP)
    at.selectbox(key="sweep_shown").set_value(summary["sweep_id"]).run()
    table = next(d for d in at.dataframe if "validation accuracy" in d.value.columns).value
    assert sorted(table["width"]) == [8, 16] and set(table["status"]) == {"completed"}
    assert at.selectbox(key="sweep_trial").value == summary["best"]["run_id"]


def test_a_teacher_s_sweep_fills_the_table_and_a_trial_s_settings_go_to_the_train_form(local_ray, tmp_path):
    at = open_page(SWEEP, name="", teacher=True)
    spec = SweepSpec(TINY_RUN, (parse_param("lr=0.01,0.05"),), preset="classroom", owner="teacher")
    job = shared_desk().start(spec, synthetic_data(), folder=str(tmp_path), store=lab_manager().store, by=None)
    assert job.join(180) and job.status == "finished", job.error
    at.run()
    table = next(d for d in at.dataframe if "validation accuracy" in d.value.columns).value
    assert sorted(table["lr"]) == [0.01, 0.05] and set(table["status"]) == {"completed"}
    assert at.get("plotly_chart")  # the parallel-coordinates chart
    best = job.sweep.best()
    assert best is not None and at.selectbox(key="sweep_trial").value == best.run_id  # the best is offered first
    button_starting(at, "Use this config").click().run()
    assert at.session_state["train_form"]["lr"] == best.config["lr"]
    assert at.session_state["train_form"]["validation"] == best.config["validation"] > 0
