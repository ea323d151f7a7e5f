"""`python -m cifar_lab train|evaluate|predict`: the JSON contract and exit status 2 on user errors."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import cifar_lab
from cifar_lab import devices
from cifar_lab.checkpoint import load_checkpoint
from cifar_lab.cli import build_parser, config_from_args, main
from cifar_lab.config import TrainConfig
from cifar_lab.models import build_model
from cifar_lab.preprocess import CLASSES

REPO = Path(cifar_lab.__file__).resolve().parent.parent
FAST = [
    "--data",
    "synthetic",
    "--epochs",
    "1",
    "--arch",
    "cnn",
    "--opt",
    "sgd",
    "--width",
    "8",
    "--depth",
    "2",
    "--batch-size",
    "64",
    "--precision",
    "fp32",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """The working folder of every CLI call; default outputs (the runs folder, the run history) land here too."""
    return tmp_path_factory.mktemp("cwd")


@pytest.fixture(scope="module")
def call(workdir):
    def run_cli(*argv) -> tuple[int, str, str]:
        """Run the CLI in this process; returns (exit status, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            mp.chdir(workdir)
            mp.setenv("CIFAR_LAB_RUNS", str(workdir / "runs"))
            mp.delenv("CIFAR_LAB_RUNS_DB", raising=False)
            mp.delenv("CIFAR_LAB_DATA", raising=False)
            code = main([str(a) for a in argv])
        return code, out.getvalue(), err.getvalue()

    return run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory, call):
    """One real `train --json` run; its summary and its checkpoint are shared by the tests below."""
    out = tmp_path_factory.mktemp("runs")
    code, stdout, stderr = call("train", *FAST, "--out", out, "--name", "tiny", "--json")
    assert code == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1]), stdout, stderr, out


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "red.png"
    Image.new("RGB", (48, 40), (220, 20, 20)).save(path)
    return path


def test_train_json_contract(trained):
    summary, _, stderr, out = trained
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert set(summary["per_class_accuracy"]) == set(CLASSES)
    assert all(0.0 <= v <= 1.0 for v in summary["per_class_accuracy"].values())
    assert summary["train_seconds"] > 0 and summary["epochs"] == 1
    checkpoint = Path(summary["checkpoint"])
    assert checkpoint.is_file() and checkpoint.parent == out and checkpoint.name == f"tiny-{summary['run_id']}.pth"
    assert summary["name"] == "tiny"
    assert summary["config"]["arch"] == "cnn" and summary["config"]["width"] == 8
    assert "epoch" in stderr  # the progress bar goes to stderr, leaving stdout to the JSON


def test_train_checkpoint_rebuilds_the_configured_model(trained):
    summary, *_ = trained
    ckpt = load_checkpoint(summary["checkpoint"])
    assert (ckpt.config.arch, ckpt.config.width, ckpt.config.depth, ckpt.config.epochs) == ("cnn", 8, 2, 1)
    assert ckpt.epoch == 1 and ckpt.classes == CLASSES
    assert ckpt.metrics["test_accuracy"] == summary["test_accuracy"]


def test_evaluate_json(trained, call):
    summary, *_ = trained
    code, stdout, _ = call("evaluate", summary["checkpoint"], "--data", "synthetic", "--json")
    assert code == 0
    result = json.loads(stdout.strip().splitlines()[-1])
    assert set(result["per_class_accuracy"]) == set(CLASSES)
    matrix = result["confusion_matrix"]
    assert len(matrix) == 10 and all(len(row) == 10 for row in matrix)
    n = sum(map(sum, matrix))
    assert result["test_accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(10)) / n)
    # The same weights on the same test set: the score train reported, up to a near-tie or two.
    assert result["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=2 / n)


def test_evaluate_plain_text(trained, call):
    summary, *_ = trained
    code, stdout, _ = call("evaluate", summary["checkpoint"], "--data", "synthetic")
    assert code == 0
    assert "test_accuracy" in stdout and "confusion matrix" in stdout


def test_predict_json(trained, call, picture):
    summary, *_ = trained
    code, stdout, _ = call("predict", summary["checkpoint"], picture, "--top", "2", "--json")
    assert code == 0
    results = json.loads(stdout.strip().splitlines()[-1])
    assert len(results) == 1 and results[0]["image"] == str(picture)
    top = results[0]["top"]
    assert len(top) == 2 and {t["class"] for t in top} <= set(CLASSES)
    assert top[0]["probability"] >= top[1]["probability"]
    assert sum(t["probability"] for t in top) <= 1.0 + 1e-6


def test_predict_several_images_plain_text(trained, call, picture):
    summary, *_ = trained
    code, stdout, _ = call("predict", summary["checkpoint"], picture, picture, "--top", "1")
    assert code == 0
    assert len(stdout.strip().splitlines()) == 2 and "%" in stdout


def test_every_config_field_has_a_flag():
    args = build_parser().parse_args(["train"])
    for field in dataclasses.fields(TrainConfig):
        assert hasattr(args, field.name), f"no --{field.name.replace('_', '-')} flag"


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "runs", "bench"])
def test_every_command_prints_its_help(command):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        build_parser().parse_args([command, "--help"])
    assert done.value.code == 0
    assert "usage:" in out.getvalue()


def test_flags_override_the_preset():
    args = build_parser().parse_args(
        [
            "train",
            "--preset",
            "tutorial",
            "--no-flip",
            "--rotate",
            "5",
            "--opt",
            "adam",
            "--label-smoothing",
            "0.1",
            "--epochs",
            "3",
            "--batchnorm",
        ]
    )
    config = config_from_args(args)
    assert (config.arch, config.batch_size) == ("tutorial", 4)  # from the preset
    assert (config.flip, config.rotate, config.opt, config.label_smoothing, config.epochs, config.batchnorm) == (
        False,
        5.0,
        "adam",
        0.1,
        3,
        True,
    )


# --- user errors: exit 2, one line on stderr, no traceback ---------------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.pth"
    text.write_text("these are my notes, not a model\n")
    other_arch = folder / "bare_cnn.pth"
    torch.save(build_model(TrainConfig(arch="cnn", width=8, depth=2)).state_dict(), other_arch)
    not_image = folder / "notes.png"
    not_image.write_text("not a picture")
    return {
        "text": text,
        "other_arch": other_arch,
        "not_image": not_image,
        "missing": folder / "missing.pth",
        "no_dir": folder / "no_such_data_folder",
    }


USER_ERRORS = {
    "missing checkpoint": lambda f, c: ["evaluate", f["missing"], "--data", "synthetic"],
    "text file as checkpoint": lambda f, c: ["evaluate", f["text"], "--data", "synthetic"],
    "bare state_dict of another arch": lambda f, c: ["predict", f["other_arch"], f["not_image"]],
    "bad image": lambda f, c: ["predict", c, f["not_image"]],
    "missing image": lambda f, c: ["predict", c, f["missing"]],
    "top 0": lambda f, c: ["predict", c, f["not_image"], "--top", "0"],
    "negative lr": lambda f, c: ["train", "--data", "synthetic", "--lr", "-1"],
    "unknown arch": lambda f, c: ["train", "--data", "synthetic", "--arch", "nope"],
    "zero epochs": lambda f, c: ["train", "--data", "synthetic", "--epochs", "0"],
    "epochs not a number": lambda f, c: ["train", "--data", "synthetic", "--epochs", "three"],
    "unknown preset": lambda f, c: ["train", "--preset", "nope"],
    "unknown flag": lambda f, c: ["train", "--learning-rate", "0.1"],
    "missing data dir": lambda f, c: ["train", *FAST[2:], "--data", f["no_dir"]],
    "evaluate on missing data dir": lambda f, c: ["evaluate", c, "--data", f["no_dir"]],
    "no command": lambda f, c: [],
}


@pytest.mark.parametrize("case", list(USER_ERRORS))
def test_user_errors_exit_2_with_one_line(case, bad_files, trained, call):
    checkpoint = trained[0]["checkpoint"]
    code, stdout, stderr = call(*USER_ERRORS[case](bad_files, checkpoint))
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:") and len(lines[0]) > len("error: ") + 10
    assert "Traceback" not in stderr and stdout == ""


def test_user_error_in_a_real_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "cifar_lab", "evaluate", str(tmp_path / "missing.pth"), "--data", "synthetic"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "missing.pth" in proc.stderr


def test_diverging_run_exits_2_with_the_advice(call, tmp_path):
    code, _, stderr = call(
        "train",
        "--data",
        "synthetic",
        "--arch",
        "tutorial",
        "--lr",
        "100",
        "--schedule",
        "constant",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--threads",
        "1",
        "--precision",
        "fp32",
        "--out",
        tmp_path,
        "--json",
    )
    assert code == 2
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "lower the learning rate" in last.lower()
    assert "Traceback" not in stderr


def test_a_config_mistake_is_reported_before_anything_is_written(tmp_path):
    # The config is checked first: a typo must not leave a run history behind (nor fail on an unwritable folder).
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.chdir(tmp_path)
        mp.setenv("CIFAR_LAB_RUNS", str(tmp_path / "runs"))
        mp.delenv("CIFAR_LAB_RUNS_DB", raising=False)
        code = main(["train", "--data", "synthetic", "--lr", "-1"])
    assert code == 2 and "lr" in err.getvalue()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_another_arch_on_a_muon_preset_trains_with_sgd_and_says_so():
    args = build_parser().parse_args(["train", "--preset", "classroom", "--arch", "cnn"])
    assert config_from_args(args).opt == "sgd"
    args = build_parser().parse_args(["train", "--preset", "classroom"])
    assert config_from_args(args).opt == "muon"


@pytest.mark.parametrize("fast", [True, False])
def test_train_on_auto_precision_says_when_this_cpu_falls_back_to_slow_fp32(call, tmp_path, monkeypatch, fast):
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: fast)
    argv = [a if a != "fp32" else "auto" for a in FAST]
    code, _, stderr = call("train", *argv, "--device", "cpu", "--out", tmp_path, "--name", "note")
    assert code == 0, stderr
    assert ("no native bf16" in stderr) is not fast


def test_bare_weights_of_another_net_ask_for_arch_on_the_command_line_only(call, tmp_path):
    weights, picture = tmp_path / "bare.pth", tmp_path / "cat.png"
    torch.save(build_model(TrainConfig(arch="cnn", width=8, depth=1)).state_dict(), weights)
    Image.new("RGB", (32, 32), "orange").save(picture)
    code, _, err = call("predict", weights, picture)
    assert code == 2 and "or name its architecture with --arch (one of: " in err, err
    code, _, err = call("predict", weights, picture, "--arch", "cnn", "--json")
    assert code == 2 and "does not fit the 'cnn' architecture" in err  # width 8, depth 1 against the default
